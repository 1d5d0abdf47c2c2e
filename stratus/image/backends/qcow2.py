"""qcow2: a copy-on-write overlay on the cached base, made in constant time whatever the image's size."""

from __future__ import annotations

import contextlib
import os

from stratus.image.backends.base import Backend, DiskInfo, qemu_img


class Qcow2Backend(Backend):
    name = "qcow2"

    async def create(self, base: str, base_format: str, path: str, size_bytes: int) -> DiskInfo:
        args = ["create", "-q", "-f", "qcow2", "-F", base_format, "-b", base, path]
        if size_bytes:
            args.append(str(size_bytes))
        try:
            await qemu_img(*args)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise
        return DiskInfo(path=path, driver_format="qcow2")
