"""The backend interface and ``qemu-img``, the one tool every file backend uses (as Nova's do)."""

from __future__ import annotations

import abc
import asyncio
import dataclasses

import orjson

from stratus import exception


class DiskCreateFailed(exception.StratusException):
    msg_fmt = "Could not create disk %(path)s: %(reason)s"


class ImageNotDiskImage(exception.StratusException):
    msg_fmt = "Image %(image_id)s cannot be a disk: %(reason)s"


@dataclasses.dataclass(frozen=True)
class DiskInfo:
    """What a backend made: where the guest's disk is and how libvirt should read it."""

    path: str
    driver_format: str  # qcow2 | raw


async def qemu_img(*args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec("qemu-img", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise DiskCreateFailed(path=args[-1], reason=err.decode(errors="replace").strip() or f"qemu-img {args[0]}")
    return out


async def image_info(path: str, force_share: bool = False) -> dict[str, object]:
    """``qemu-img info`` of a file: its real format (never trust the image's disk_format alone) and size.
    ``force_share`` reads a disk a running guest holds open."""
    args = ["info", "--output=json", *(["-U"] if force_share else []), path]
    return dict(orjson.loads(await qemu_img(*args)))


class Backend(abc.ABC):
    name: str

    @abc.abstractmethod
    async def create(self, base: str, base_format: str, path: str, size_bytes: int) -> DiskInfo:
        """Make the instance's root disk at ``path`` from the cached ``base``, at least ``size_bytes`` big
        (0: the image's own size). Leaves nothing at ``path`` when it fails."""


def backend_for(images_type: str) -> Backend:
    from stratus.image.backends.qcow2 import Qcow2Backend
    from stratus.image.backends.raw import RawBackend

    if images_type in ("qcow2", "default"):
        return Qcow2Backend()
    if images_type in ("raw", "flat"):
        return RawBackend(images_type)
    raise ValueError(f"[libvirt] images_type {images_type!r} is not supported by this build")
