"""rbd: the instance's root disk is an RBD image in ``[libvirt] images_rbd_pool`` of the host's Ceph cluster.

How the disk is made, cheapest first (Nova's ``Rbd`` image backend, plus a cached base Nova does not have):

1. the image service keeps the image in this cluster (an ``rbd://<our fsid>/…/snap`` location, raw data):
   a copy-on-write clone of that snapshot; no byte is copied;
2. ``[libvirt] images_rbd_glance_store_name`` names the image service's store in this cluster: ask it to copy
   the image there (``copy-image`` import), wait for it, then clone as in 1; only a raw image, since a copy of
   anything else could not be cloned either (it would only be stored twice);
3. ``[workarounds] never_download_image_if_on_rbd``: refuse the boot, at once and for good (no other host of
   this cluster could do better);
4. otherwise download the image (through the host's image cache, verified), convert it to raw into the pool
   **once** as a cached base ``_base_<image id>`` with a protected snapshot, and clone that; the next instance
   from the same image, on any host of the cluster, is a clone of the same base.

Every librbd call blocks, so each runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from typing import Any

from stratus import exception
from stratus.image import rbd
from stratus.image.backends.base import image_info, qemu_img
from stratus.image.cache import ImageCache
from stratus.image.client import ImageClient

LOG = logging.getLogger(__name__)
DEFAULT_CEPH_CONF = "/etc/ceph/ceph.conf"
BASE_PREFIX = "_base_"
#: waiting for a copy-image import: the first look after FIRST_POLL s, each wait BACKOFF times the one before,
#: up to [libvirt] images_rbd_glance_copy_poll_interval (MIN_POLL s when that is 0)
FIRST_POLL = 0.2
BACKOFF = 1.5
MIN_POLL = 0.05


@dataclasses.dataclass(frozen=True)
class RbdDisk:
    """A guest disk in Ceph, as libvirt's ``<disk type='network'>`` names it."""

    pool: str
    name: str
    hosts: tuple[tuple[str, str], ...]
    user: str | None = None
    secret_uuid: str | None = None
    how: str = ""  # clone | copied-then-clone | cached-base-clone | imported (how it was made; for logs and tests)

    @property
    def path(self) -> str:
        return f"{self.pool}/{self.name}"


class ImageNotCloneable(exception.StratusException):
    msg_fmt = "Image %(image_id)s is not clone-able in this Ceph cluster: %(reason)s"


class DiskNotFound(exception.NotFound):
    msg_fmt = "No disk at %(location)s"


class RbdBackend:
    name = "rbd"

    def __init__(self, conf: Any, images: ImageClient, cache: ImageCache) -> None:
        opts = conf.libvirt
        self.conf = conf
        self.images = images
        self.cache = cache
        self.pool = opts.images_rbd_pool
        self.conffile = opts.images_rbd_ceph_conf or DEFAULT_CEPH_CONF
        self.user = opts.rbd_user or None
        self.secret_uuid = opts.rbd_secret_uuid or None
        self.cluster = rbd.cluster(self.conffile, self.user)
        self._locks: dict[str, asyncio.Lock] = {}
        self._hosts: tuple[tuple[str, str], ...] | None = None
        #: how each disk this process made came to be, by instance uuid (for logs and tests)
        self.made: dict[str, str] = {}
        #: when this host last used each cached base (monotonic), for the ager
        self._last_used: dict[str, float] = {}

    def disk_name(self, instance_uuid: str, suffix: str = "disk") -> str:
        return f"{instance_uuid}_{suffix}"

    async def _disk(self, name: str, how: str) -> RbdDisk:
        if self._hosts is None:
            self._hosts = tuple(await asyncio.to_thread(self.cluster.monitors))
        return RbdDisk(self.pool, name, self._hosts, self.user, self.secret_uuid, how)

    async def fsid(self) -> str:
        return await asyncio.to_thread(lambda: self.cluster.fsid)

    # --- the root disk ------------------------------------------------------------------------------------
    async def create_root(self, context: dict[str, Any], image: dict[str, Any], instance_uuid: str,
                          size_bytes: int) -> RbdDisk:
        """The instance's root disk, at least ``size_bytes`` big (see the module's docstring for how)."""
        image_id = str(image["id"])
        name = self.disk_name(instance_uuid)
        await asyncio.to_thread(self._remove_quietly, name)  # a retry on this host after a failed attempt
        reason = await self._try_clone(context, image, name, size_bytes)
        if reason is None:
            return await self._made(instance_uuid, name, "clone")
        store = self.conf.libvirt.images_rbd_glance_store_name
        if store and store not in _csv(image.get("stores")):  # there already: the clone above was the try
            if not cloneable_format(image):
                # a copy could not be cloned either: go on at once, and do not store the image twice
                reason += f"; not copied to store {store}: {_not_raw(image)}"
            else:
                copied, why = await self._copy_to_store(context, image, store)
                if copied is not None:
                    why = await self._try_clone(context, copied, name, size_bytes) or ""
                    if not why:
                        return await self._made(instance_uuid, name, "copied-then-clone")
                reason += f"; its copy to store {store}: {why}"
        if self.conf.workarounds.never_download_image_if_on_rbd:
            raise refusal(instance_uuid, image_id, await self.fsid(), reason)
        base = await self._cached_base(context, image)
        await asyncio.to_thread(self.cluster.clone, rbd.Location("", self.pool, base, rbd.SNAPSHOT), self.pool,
                                name, size_bytes)
        return await self._made(instance_uuid, name, "cached-base-clone")

    async def existing_root(self, instance_uuid: str, size_bytes: int = 0) -> RbdDisk:
        """The instance's root disk that is in the pool already (a resize or cold migration: the destination
        uses the source's image, shared storage), grown to ``size_bytes`` if it is smaller (Nova's
        ``resize_image``: never shrunk). First the image gets its ``nova-resize`` snapshot, as Nova's
        ``finish_migration`` takes it whatever the new size: a revert rolls the disk back to it (old size, old
        contents), a confirm removes it. A snapshot there already stays (a finish tried again after the disk
        grew: the first one holds the disk as it was). ``DiskNotFound`` when the pool has no such image."""
        name = self.disk_name(instance_uuid)

        def snapshot_and_grow() -> tuple[int, bool]:
            if not self.cluster.exists(self.pool, name, snapshot=None):
                raise DiskNotFound(location=f"{self.pool}/{name}")
            taken = self.cluster.create_snapshot(self.pool, name, rbd.RESIZE_SNAPSHOT)
            size = self.cluster.size(self.pool, name)
            if size_bytes > size:
                self.cluster.resize(self.pool, name, size_bytes)
                return size_bytes, taken
            return size, taken

        size, taken = await asyncio.to_thread(snapshot_and_grow)
        LOG.info("root disk of %s: %s/%s (existing, %d bytes; snapshot %s %s)", instance_uuid, self.pool, name,
                 size, rbd.RESIZE_SNAPSHOT, "taken" if taken else "kept")
        return await self._disk(name, "existing")

    async def revert_root(self, instance_uuid: str) -> bool:
        """A reverted move's root disk as it was before the move (Nova's ``finish_revert_migration``:
        ``rollback_to_snap`` then ``remove_snap`` of ``nova-resize``); the guest must not be running on it.
        False, and the disk left as it is, when it has no such snapshot (the move failed before it grew the
        disk, or the disk was never snapshotted)."""
        name = self.disk_name(instance_uuid)

        def rollback() -> bool:
            if not self.cluster.rollback(self.pool, name, rbd.RESIZE_SNAPSHOT):
                return False
            self.cluster.remove_snapshot(self.pool, name, rbd.RESIZE_SNAPSHOT)
            return True

        rolled = await asyncio.to_thread(rollback)
        if rolled:
            LOG.info("root disk of %s: %s/%s rolled back to its snapshot %s", instance_uuid, self.pool, name,
                     rbd.RESIZE_SNAPSHOT)
        else:
            LOG.warning("root disk of %s: %s/%s has no snapshot %s to roll back to; left as it is", instance_uuid,
                        self.pool, name, rbd.RESIZE_SNAPSHOT)
        return rolled

    async def drop_resize_snapshot(self, instance_uuid: str) -> None:
        """A confirmed move's ``nova-resize`` snapshot removed (Nova's ``_cleanup_resize``); a failure is only
        logged (no snapshot, no image: nothing to do)."""
        name = self.disk_name(instance_uuid)
        try:
            if await asyncio.to_thread(self.cluster.remove_snapshot, self.pool, name, rbd.RESIZE_SNAPSHOT):
                LOG.info("root disk of %s: snapshot %s removed", instance_uuid, rbd.RESIZE_SNAPSHOT)
        except Exception:
            LOG.warning("could not remove snapshot %s of %s/%s", rbd.RESIZE_SNAPSHOT, self.pool, name,
                        exc_info=True)

    async def _made(self, instance_uuid: str, name: str, how: str) -> RbdDisk:
        self.made[instance_uuid] = how
        LOG.info("root disk of %s: %s/%s (%s)", instance_uuid, self.pool, name, how)
        return await self._disk(name, how)

    async def _try_clone(self, context: dict[str, Any], image: dict[str, Any], name: str, size_bytes: int
                         ) -> str | None:
        """Clone the image from a location in this cluster; None if done, else why not."""
        fsid = await self.fsid()
        try:
            found = await self.images.locations(context, image)
        except exception.StratusException as exc:
            return f"its locations could not be read: {exc.message}"
        ours = [loc for loc in (rbd.parse_location(str(x.get("url") or "")) for x in found)
                if loc is not None and loc.fsid == fsid and loc.snapshot]
        if not ours:
            where = ", ".join(sorted({str(x.get("store") or str(x.get("url", "")).split(":", 1)[0])
                                      for x in found})) or "nowhere the image service shows"
            return f"its data is in {where}, not in the Ceph cluster {fsid}"
        if not cloneable_format(image):
            return _not_raw(image)
        last = ""
        for loc in ours:
            try:
                await asyncio.to_thread(self.cluster.clone, loc, self.pool, name, size_bytes)
                return None
            except Exception as exc:  # e.g. a pool this client may not read: try the next location
                last = f"cloning {loc.url} failed: {exc}"
                LOG.warning("image %s: %s", image["id"], last)
        return last

    async def _copy_to_store(self, context: dict[str, Any], image: dict[str, Any], store: str
                             ) -> tuple[dict[str, Any] | None, str]:
        """Nova's ``copy_image_to_store``: ask, then look at the image until ``stores`` has the store (the image
        as it is then), the copy failed, or ``images_rbd_glance_copy_timeout`` passed (None, and why).

        The looks back off from ``FIRST_POLL`` s up to ``images_rbd_glance_copy_poll_interval`` s, and the
        image client may end each wait early when it hears the copy ended (the embedded service does): a copy
        of a few seconds makes the build wait a few seconds, not one whole poll interval."""
        image_id = str(image["id"])
        opts = self.conf.libvirt
        try:
            await self.images.copy_to_store(context, image_id, store)
        except exception.StratusException as exc:
            if "already" not in exc.message:  # a copy under way (another host asked): wait for it
                LOG.warning("image %s: asking for a copy to store %s failed: %s", image_id, store, exc.message)
                return None, f"asking for it failed: {exc.message}"
        started = time.monotonic()
        deadline = started + opts.images_rbd_glance_copy_timeout
        ceiling = max(MIN_POLL, opts.images_rbd_glance_copy_poll_interval)
        delay = min(FIRST_POLL, ceiling)
        while True:
            shown = await self.images.show(context, image_id)
            if store in _csv(shown.get("stores")):
                LOG.info("image %s copied to store %s by the image service in %.1f s", image_id, store,
                         time.monotonic() - started)
                return shown, ""
            if store in _csv(shown.get("os_glance_failed_import")):
                LOG.warning("image %s: the image service failed to copy it to store %s", image_id, store)
                return None, "the image service failed to make it"
            left = deadline - time.monotonic()
            if left <= 0:
                LOG.warning("image %s: no copy in store %s after %d s", image_id, store,
                            opts.images_rbd_glance_copy_timeout)
                return None, f"not there after {opts.images_rbd_glance_copy_timeout} s"
            await self.images.wait_changed(context, image_id, min(delay, left))
            delay = min(delay * BACKOFF, ceiling)

    async def _cached_base(self, context: dict[str, Any], image: dict[str, Any]) -> str:
        """The pool's base of ``image`` (``_base_<id>`` with its protected snapshot), imported if missing: one
        import per image per cluster, whichever host needs it first (the others find it, or lose the rename
        race and use the winner's)."""
        image_id = str(image["id"])
        base = BASE_PREFIX + image_id
        if await asyncio.to_thread(self.cluster.exists, self.pool, base, rbd.SNAPSHOT):
            return base
        async with self._locks.setdefault(image_id, asyncio.Lock()):
            if await asyncio.to_thread(self.cluster.exists, self.pool, base, rbd.SNAPSHOT):
                return base
            local = await self.cache.fetch(image, context)
            fmt = str((await image_info(local))["format"])
            part = f"{base}.part-{uuid.uuid4().hex[:8]}"
            target = f"rbd:{self.pool}/{part}:conf={self.conffile}" + (f":id={self.user}" if self.user else "")
            started = time.monotonic()
            try:
                await qemu_img("convert", "-q", "-f", fmt, "-O", "raw", local, target)
                await asyncio.to_thread(self.cluster.snapshot_and_protect, self.pool, part)
                if not await asyncio.to_thread(self.cluster.rename, self.pool, part, base):
                    LOG.info("image %s: another host imported %s first", image_id, base)
                    await asyncio.to_thread(self._remove_quietly, part)
            except BaseException:
                await asyncio.shield(asyncio.to_thread(self._remove_quietly, part))
                raise
            LOG.info("image %s imported into %s/%s in %.1f s", image_id, self.pool, base,
                     time.monotonic() - started)
        return base

    def qemu_uri(self, name: str) -> str:
        """qemu's name of an image of the pool (``qemu-img convert`` reads and writes RBD directly)."""
        return f"rbd:{self.pool}/{name}:conf={self.conffile}" + (f":id={self.user}" if self.user else "")

    # --- snapshots ----------------------------------------------------------------------------------------
    async def direct_snapshot(self, context: dict[str, Any], instance: dict[str, Any], image_id: str) -> bool:
        """Nova's direct snapshot: when the instance's image lives in this cluster, its disk is snapshotted,
        cloned into the image's pool as the new image, flattened there and given the store's protected
        snapshot, and the image service is told the location; no byte leaves Ceph. False when the image is
        not in this cluster (the caller uploads the disk instead)."""
        fsid = await self.fsid()
        try:
            base = await self.images.show(context, str(instance.get("image_ref") or ""))
            found = await self.images.locations(context, base)
        except exception.StratusException:
            return False
        pools = [loc.pool for loc in (rbd.parse_location(str(x.get("url") or "")) for x in found)
                 if loc is not None and loc.fsid == fsid]
        if not pools:
            return False
        pool, disk = pools[0], self.disk_name(instance["uuid"])
        snap = f"snapshot-{image_id}"
        target = rbd.Location(fsid, pool, image_id, rbd.SNAPSHOT)

        def copy() -> None:
            made = False
            try:
                self.cluster.snapshot_and_protect(self.pool, disk, snap)
                self.cluster.clone(rbd.Location(fsid, self.pool, disk, snap), pool, image_id)
                made = True
                self.cluster.flatten(pool, image_id)
                self.cluster.snapshot_and_protect(pool, image_id, rbd.SNAPSHOT)
            except BaseException:
                if made:
                    self._remove_in(pool, image_id)
                raise
            finally:
                self._drop_snapshot(disk, snap)

        started = time.monotonic()
        await asyncio.to_thread(copy)
        try:
            await self.images.update(context, image_id, {"disk_format": "raw", "container_format": "bare"})
            await self.images.add_location(context, image_id, target.url, None)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self._remove_in, pool, image_id))
            raise
        LOG.info("direct snapshot of %s into %s in %.2f s", instance["uuid"], target.url, time.monotonic() - started)
        return True

    def _drop_snapshot(self, name: str, snap: str) -> None:
        try:
            self.cluster.remove_snapshot(self.pool, name, snap)
        except Exception:
            LOG.exception("could not remove snapshot %s of %s/%s", snap, self.pool, name)

    def _remove_in(self, pool: str, name: str) -> None:
        try:
            self.cluster.remove(pool, name)
        except Exception:
            LOG.exception("could not remove RBD image %s/%s", pool, name)

    # --- removal ------------------------------------------------------------------------------------------
    def _remove_quietly(self, name: str) -> None:
        try:
            self.cluster.remove(self.pool, name)
        except Exception:
            LOG.exception("could not remove RBD image %s/%s", self.pool, name)

    async def remove_instance_disks(self, instance_uuid: str) -> list[str]:
        """Every RBD image of the instance (``<uuid>_*``, as Nova names them) in the pool. One with a watcher
        still (the qemu of a guest just destroyed, or of a live migration's source that is still going away)
        is tried again ``[libvirt] rbd_destroy_volume_retries`` times, ``rbd_destroy_volume_retry_interval``
        seconds apart, as Nova's ``_cleanup_rbd``."""
        prefix = f"{instance_uuid}_"
        opts = self.conf.libvirt

        def remove() -> list[str]:
            removed = []
            for name in self.cluster.list(self.pool):
                if name.startswith(prefix) and self.cluster.remove(
                        self.pool, name, attempts=max(1, opts.rbd_destroy_volume_retries + 1),
                        interval=opts.rbd_destroy_volume_retry_interval):
                    removed.append(name)
            return removed

        return await asyncio.to_thread(remove)

    async def age_bases(self, in_use: set[str], min_age: float, remove: bool) -> list[str]:
        """Cached bases of images no instance of the cluster uses (no clone of them remains) are removed once
        this host has not used them for ``min_age`` seconds; ``in_use``: image ids this host's instances use."""
        now = time.monotonic()

        def sweep() -> list[str]:
            removed = []
            for name in self.cluster.list(self.pool):
                if not name.startswith(BASE_PREFIX) or ".part-" in name:
                    continue
                image_id = name[len(BASE_PREFIX):]
                if image_id in in_use:
                    self._last_used[image_id] = now
                    continue
                if now - self._last_used.setdefault(image_id, now) < min_age:
                    continue
                try:
                    if self.cluster.children(self.pool, name):
                        continue  # instances of other hosts use it
                except Exception:
                    continue
                if remove:
                    try:
                        self.cluster.remove(self.pool, name)
                    except rbd.RbdImageBusy:
                        continue  # cloned meanwhile
                    LOG.info("removed unused RBD base %s/%s", self.pool, name)
                removed.append(name)
            return removed

        return await asyncio.to_thread(sweep)


def cloneable_format(image: dict[str, Any]) -> bool:
    """Whether an RBD clone of the image's data could be a guest's disk: raw data only (a clone of qcow2 bytes
    would be a qcow2 file on a raw block device)."""
    return image.get("disk_format") == "raw"


def _not_raw(image: dict[str, Any]) -> str:
    return f"a clone needs raw data and the image's disk_format is {image.get('disk_format')}"


def refusal(instance_uuid: str, image_id: str, fsid: str, reason: str) -> exception.BuildAbortException:
    """The build's end under ``never_download_image_if_on_rbd``. The fault's message (255 characters, the only
    part its owner sees) says the cause: which image, which cluster, which option; why the image cannot be
    cloned there (where its data is, its format, a failed copy) goes to the fault's details, for admins."""
    return exception.BuildAbortException(
        instance_uuid=instance_uuid,
        reason=f"Image {image_id} is not clone-able in Ceph cluster {fsid} and [workarounds] "
               "never_download_image_if_on_rbd refuses to download it",
        details=f"Image {image_id} cannot be cloned in Ceph cluster {fsid}: {reason}")


def _csv(value: Any) -> list[str]:
    return [v for v in str(value or "").split(",") if v]
