"""Small blocking file helpers of the libvirt driver's modules (run them in a worker thread)."""

from __future__ import annotations

import contextlib
import os
import shutil


def write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def read(path: str) -> str | None:
    """The file's text, None if there is no such file."""
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def link_or_copy(src: str, dst: str) -> None:
    """``dst`` as a hard link to ``src`` (a copy across file systems), replacing what was there."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dst)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
