"""The config drive: the instance's metadata documents on an ISO 9660 volume labelled ``config-2``.

What Nova's ``ConfigDriveBuilder`` makes with ``genisoimage -ldots -allow-lowercase -allow-multidot -l -J -r -V
config-2``: ISO 9660 names as given (lower case, several dots, long), Joliet and Rock Ridge, so cloud-init and a
plain ``mount`` read ``openstack/latest/meta_data.json`` either way. Written here with pycdlib instead of a
helper process. Blocking: callers run it in a worker thread.
"""

from __future__ import annotations

import io
import os
import posixpath
from collections.abc import Iterable

import pycdlib

VOLUME_LABEL = "config-2"
PUBLISHER = "Stratus (OpenStack Compute)"


def make_drive(path: str, files: Iterable[tuple[str, bytes]]) -> None:
    """Write the volume holding ``files`` ((relative path, content), directories implied) to ``path``,
    atomically: a half-written drive is never found at ``path``."""
    iso = pycdlib.PyCdlib()
    # interchange level 4 keeps Nova's -l -allow-lowercase -allow-multidot names in the ISO 9660 tree too
    iso.new(interchange_level=4, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL, pub_ident_str=PUBLISHER)
    made: set[str] = set()
    try:
        for name, content in files:
            name = posixpath.normpath("/" + name)
            parts = name.split("/")[1:]
            for depth in range(1, len(parts)):
                directory = "/" + "/".join(parts[:depth])
                if directory not in made:
                    iso.add_directory(directory, rr_name=parts[depth - 1], joliet_path=directory)
                    made.add(directory)
            iso.add_fp(io.BytesIO(content), len(content), name, rr_name=parts[-1], joliet_path=name)
        partial = path + ".part"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        iso.write(partial)
        os.replace(partial, path)
    finally:
        iso.close()


def read_drive(path: str) -> tuple[str, dict[str, bytes]]:
    """The volume label and every file (by Rock Ridge path) of a config drive: what a guest would read."""
    iso = pycdlib.PyCdlib()
    iso.open(path)
    try:
        label = iso.pvd.volume_identifier.decode().rstrip()
        out: dict[str, bytes] = {}
        for root, _dirs, names in iso.walk(rr_path="/"):
            for name in names:
                full = posixpath.join(root, name)
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, rr_path=full)
                out[full.lstrip("/")] = buf.getvalue()
        return label, out
    finally:
        iso.close()
