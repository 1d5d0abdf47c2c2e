"""Ephemeral and swap disks: formatted once per size into a cached base, an overlay per instance."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from stratus.image.backends.base import DiskInfo
from stratus.image.backends.blank import BlankDisks

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("qemu-img", "mkfs.ext4", "mkswap")),
                                reason="needs qemu-img, mkfs.ext4 and mkswap (qemu-utils, e2fsprogs, util-linux)")


def _info(path: str) -> dict[str, object]:
    out = subprocess.run(["qemu-img", "info", "--output=json", path], capture_output=True, check=True).stdout
    return dict(orjson.loads(out))


def _check_ephemeral(base_dir: Path, disks: list[DiskInfo]) -> None:
    base = base_dir / "ephemeral_1_ext4"
    assert sorted(os.listdir(base_dir)) == ["ephemeral_1_ext4"]  # formatted once, no partial file left
    label = subprocess.run(["e2label", str(base)], capture_output=True, text=True, check=True).stdout.strip()
    assert label == "ephemeral0"
    assert base.stat().st_blocks * 512 < 64 * 1024**2  # sparse: a 1 GiB base costs a few MiB
    for disk in disks:
        info = _info(disk.path)
        assert disk.driver_format == "qcow2" and info["format"] == "qcow2"
        assert info["backing-filename"] == str(base) and info["virtual-size"] == 1024**3


def _check_swap(base: Path, disk: DiskInfo) -> None:
    with open(base, "rb") as handle:
        handle.seek(4096 - 10)
        assert handle.read(10) == b"SWAPSPACE2"
    assert _info(disk.path)["virtual-size"] == 64 * 1024**2


async def test_ephemeral_disks_share_one_formatted_base(tmp_path: Path) -> None:
    blank = BlankDisks(str(tmp_path / "_base"))
    disks = await asyncio.gather(*(blank.ephemeral(str(tmp_path / f"disk.local.{i}"), 1) for i in range(3)))
    _check_ephemeral(tmp_path / "_base", list(disks))


async def test_swap_disk(tmp_path: Path) -> None:
    disk = await BlankDisks(str(tmp_path / "_base")).swap(str(tmp_path / "disk.swap"), 64)
    _check_swap(tmp_path / "_base" / "swap_64", disk)
