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


def qcow2_backing_file(path: str) -> str | None:
    """The backing file a qcow2 image names in its header (None for another format or no backing file)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
            if len(header) < 20 or header[:4] != b"QFI\xfb":
                return None
            offset, size = int.from_bytes(header[8:16], "big"), int.from_bytes(header[16:20], "big")
            if not offset or not size or size > 4096:
                return None
            handle.seek(offset)
            return handle.read(size).decode(errors="replace")
    except OSError:
        return None


def backing_names(instances_path: str) -> set[str]:
    """The file names of the bases the disks under ``instances_path`` stand on: every instance directory's, also
    those no instance row names here (a ``<uuid>_resize`` kept for a revert, a rescue disk), so that the image
    cache manager never removes a base a disk still needs."""
    names = set()
    try:
        entries = list(os.scandir(instances_path))
    except FileNotFoundError:
        return names
    for entry in entries:
        if not entry.is_dir() or entry.name.startswith("_") or entry.name == "snapshots":
            continue
        for disk in os.scandir(entry.path):
            if disk.name.startswith("disk") and (backing := qcow2_backing_file(disk.path)):
                names.add(os.path.basename(backing))
    return names
