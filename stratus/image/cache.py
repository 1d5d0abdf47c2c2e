"""The image cache of one compute host: each image's data fetched once into ``instances_path/_base``.

However many instances boot from an image at once, one download runs (a lock per image) and the others wait
for it; data lands under a temporary name and is renamed into place only once complete and verified, so a
crash mid-download never leaves a truncated base that a later boot would trust. Files are named by the sha1 of
the image id, as Nova names them, so an operator's tools for Nova's cache read this one too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from typing import Any

from stratus import exception
from stratus.context import RequestContext
from stratus.image.client import ImageClient

LOG = logging.getLogger(__name__)


class ImageChecksumMismatch(exception.StratusException):
    """The bytes received are not the image's (``os_hash_value``): another host, or a retry, may fare better."""

    msg_fmt = "Image %(image_id)s failed verification: %(algo)s of the data is %(got)s, the image says %(want)s"


def base_name(image_id: str) -> str:
    return hashlib.sha1(image_id.encode()).hexdigest()


class ImageCache:
    def __init__(self, base_dir: str, images: ImageClient) -> None:
        self.base_dir = base_dir
        self.images = images
        self._locks: dict[str, asyncio.Lock] = {}
        #: downloads this cache has made, by image id (what a test counts to prove "once per host")
        self.downloads: dict[str, int] = {}

    def path_of(self, image_id: str) -> str:
        return os.path.join(self.base_dir, base_name(image_id))

    async def fetch(self, image: dict[str, Any], context: dict[str, Any] | None = None) -> str:
        """The cached file of ``image`` (a Glance v2 image body), downloading it first if this host has none."""
        image_id = image["id"]
        path = self.path_of(image_id)
        if await asyncio.to_thread(os.path.exists, path):
            return path
        lock = self._locks.setdefault(image_id, asyncio.Lock())
        async with lock:
            if await asyncio.to_thread(os.path.exists, path):
                return path
            await asyncio.to_thread(os.makedirs, self.base_dir, exist_ok=True)
            await self._download(image, path, context or RequestContext.admin().to_dict())
            self.downloads[image_id] = self.downloads.get(image_id, 0) + 1
        return path

    async def _download(self, image: dict[str, Any], path: str, context: dict[str, Any]) -> None:
        image_id = image["id"]
        algo = image.get("os_hash_algo") or None
        want = image.get("os_hash_value") or None
        digest = hashlib.new(algo) if algo and want and algo in hashlib.algorithms_available else None
        part = f"{path}.part-{os.getpid()}"
        handle = await asyncio.to_thread(open, part, "wb")
        try:
            async for chunk in self.images.download(context, image_id):
                if digest is not None:
                    digest.update(chunk)
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(handle.close)
            if digest is not None and digest.hexdigest() != want:
                raise ImageChecksumMismatch(image_id=image_id, algo=algo, got=digest.hexdigest(), want=want)
            await asyncio.to_thread(os.replace, part, path)
        except BaseException:
            handle.close()
            try:
                os.unlink(part)
            except FileNotFoundError:
                pass
            raise
        LOG.info("image %s cached at %s", image_id, path)

    def touch(self, image_id: str) -> None:
        """Mark a base as in use now (the cache ager reads modification times)."""
        try:
            os.utime(self.path_of(image_id))
        except FileNotFoundError:
            pass
