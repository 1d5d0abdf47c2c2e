"""The image cache of one compute host: each image's data fetched once into ``instances_path/_base``.

However many instances boot from an image at once, one download runs (a lock per image) and the others wait
for it; data lands under a temporary name and is renamed into place only once complete and verified, so a
crash mid-download never leaves a truncated base that a later boot would trust. Files are named by the sha1 of
the image id, as Nova names them, so an operator's tools for Nova's cache read this one too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
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
        if await asyncio.to_thread(_touch, path):  # a hit is a use: the ager keeps recently used bases
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

    def age(self, in_use: set[str], min_age: float, remove: bool = True, now: float | None = None) -> list[str]:
        """Remove the cached files (by file name) no instance uses that were last used ``min_age`` seconds ago or
        more; returns their names. Partial downloads older than a day are litter from a crash and go too.
        Runs in a worker thread (it stats every file)."""
        now = time.time() if now is None else now
        removed = []
        try:
            names = os.listdir(self.base_dir)
        except FileNotFoundError:
            return []
        for name in names:
            path = os.path.join(self.base_dir, name)
            partial = ".part-" in name
            if (name in in_use and not partial) or not os.path.isfile(path):
                continue
            try:
                idle = now - os.stat(path).st_mtime
            except FileNotFoundError:
                continue
            if idle < (max(min_age, 86400) if partial else min_age):
                continue
            if remove:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                LOG.info("removed unused base image %s (unused for %d s)", path, idle)
            else:
                LOG.info("base image %s is unused (for %d s); [image_cache] remove_unused_base_images is off",
                         path, idle)
            removed.append(name)
        return removed


def _touch(path: str) -> bool:
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True
