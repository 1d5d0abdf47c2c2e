"""Blank disks a flavor asks for besides the root disk: ephemeral (``disk.local``, ext4 labelled
``ephemeral0``) and swap (``disk.swap``), as Nova makes them.

Each size is formatted once per host into a cached base (``_base/ephemeral_<GiB>_ext4``, ``_base/swap_<MiB>``:
sparse files, so a big one costs no disk until written) and every instance gets a qcow2 overlay on it, made in
constant time, instead of a fresh ``mkfs`` per boot.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re

from stratus.image.backends.base import DiskCreateFailed, DiskInfo, qemu_img

MiB = 1024**2
GiB = 1024**3


async def _run(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise DiskCreateFailed(path=args[-1], reason=err.decode(errors="replace").strip() or args[0])


class BlankDisks:
    def __init__(self, base_dir: str) -> None:
        self.base_dir = base_dir
        self._locks: dict[str, asyncio.Lock] = {}

    async def _base(self, name: str, size_bytes: int, *formatter: str) -> str:
        path = os.path.join(self.base_dir, name)
        async with self._locks.setdefault(name, asyncio.Lock()):
            if await asyncio.to_thread(os.path.exists, path):
                return path
            await asyncio.to_thread(os.makedirs, self.base_dir, exist_ok=True)
            part = f"{path}.part-{os.getpid()}"
            try:
                await asyncio.to_thread(_sparse, part, size_bytes)
                await _run(*formatter, part)
                await asyncio.to_thread(os.replace, part, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part)
                raise
        return path

    async def _overlay(self, base: str, path: str) -> DiskInfo:
        await qemu_img("create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, path)
        return DiskInfo(path=path, driver_format="qcow2")

    async def ephemeral_base(self, size_gb: int) -> str:
        """The formatted base of every ephemeral disk of this size (made once)."""
        return await self._base(f"ephemeral_{size_gb}_ext4", size_gb * GiB, "mkfs.ext4", "-q", "-F", "-L", "ephemeral0")

    async def swap_base(self, size_mb: int) -> str:
        return await self._base(f"swap_{size_mb}", size_mb * MiB, "mkswap")

    async def ephemeral(self, path: str, size_gb: int) -> DiskInfo:
        return await self._overlay(await self.ephemeral_base(size_gb), path)

    async def swap(self, path: str, size_mb: int) -> DiskInfo:
        return await self._overlay(await self.swap_base(size_mb), path)

    async def base_named(self, name: str) -> str | None:
        """The base called ``name`` (``ephemeral_<GiB>_ext4``, ``swap_<MiB>``), made if missing; None for a name
        that is not one of these (a disk that came from another host names its base by the file name)."""
        if match := re.fullmatch(r"ephemeral_(\d+)_ext4", name):
            return await self.ephemeral_base(int(match.group(1)))
        if match := re.fullmatch(r"swap_(\d+)", name):
            return await self.swap_base(int(match.group(1)))
        return None


def _sparse(path: str, size: int) -> None:
    with open(path, "wb") as handle:
        handle.truncate(size)
