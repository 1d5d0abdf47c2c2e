"""Resize and cold migration of libvirt guests between compute hosts that share no file system (Nova's
``migrate_disk_and_power_off``, ``finish_migration``, ``confirm_migration``, ``finish_revert_migration``).

How the disks travel: the destination keeps a libvirt storage pool of its own, ``stratus-inbox-<host>``, a
directory pool on ``instances_path/_inbox`` (made, transient, by ``prepare_migration_destination``, the first
step of every move on the destination). The source powers the guest off, renames its directory to
``<uuid>_resize`` (what a revert comes back to) and, on a connection to the destination's libvirtd (``[libvirt]
live_migration_uri`` with the destination's host name), creates a volume ``<uuid>.<file>`` in that pool for each
file of the guest (root, ephemeral and swap disks, config drive, kernel, ramdisk, console log) and uploads the
file into it with a libvirt stream. That is a channel two real machines have whenever they can live-migrate
(peer libvirtds reaching each other, over TLS in production), it needs no SSH keys between the compute hosts
(Nova's ``ssh``/``rsync`` remote filesystem driver does) and no shared storage, and libvirtd writes the files
with its own permissions on the destination. Only what differs from the image travels: a qcow2 overlay is sent
as it is and, on the destination, put on that host's own cached copy of its base (fetched from the image service
like a boot's; ephemeral and swap bases are formatted there) with an unsafe rebase, which rewrites only the
pointer.

The destination (``finish_migration``) takes the files out of its inbox into ``instances_path/<uuid>/``, grows
the root disk to the new flavor's size, and defines the guest anew from the instance (new flavor) and its image
properties, on its own paths. The source undefines its domain once the files are across (its definition is kept
in ``<uuid>_resize/libvirt.xml``): confirm removes ``<uuid>_resize``; revert renames it back and defines the
guest again from that definition, with its old flavor and disks untouched.

An RBD root disk (``images_type = rbd``) does not travel: both hosts use the same image of the shared pool. The
destination snapshots it (``nova-resize``, as Nova) before growing it in place; a revert rolls it back to that
snapshot (old size and contents) before the source defines its guest again, and a confirm removes the snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import libvirt

from stratus import exception
from stratus.context import RequestContext
from stratus.image.backends.base import image_info, qemu_img
from stratus.image.cache import base_name as cache_base_name
from stratus.objects.states import power_state
from stratus.virt.driver import ConfigDrive
from stratus.virt.libvirt import config as guest_config
from stratus.virt.libvirt import files
from stratus.virt.libvirt.host import peer_uri

if TYPE_CHECKING:
    from stratus.virt.libvirt.driver import LibvirtDriver

LOG = logging.getLogger(__name__)
GiB = 1024**3
INBOX = "_inbox"
RESIZE_SUFFIX = "_resize"
#: seconds after which a file left in an inbox is litter (a day, as for the image cache's partial downloads)
STALE_AFTER = 86400
#: the files of a guest that go with it, in the order they are sent
MOVED_FILES = ("disk", "disk.local", "disk.swap", ConfigDrive.FILE_NAME, "kernel", "ramdisk", "console.log")
_DISKS = ("disk", "disk.local", "disk.swap")


class ResizeError(exception.StratusException):
    """The move cannot be made (Nova's ``ResizeError``); raised before the guest is touched, the server stays."""

    msg_fmt = "Resize error: %(reason)s"


def inbox_pool(host: str) -> str:
    """The name of the storage pool a host receives moving guests' files in (one per host: libvirtds may be shared)."""
    return f"stratus-inbox-{host}"


def image_meta_of(instance: dict[str, Any]) -> dict[str, Any]:
    """The instance's image as it was at boot (its ``image_*`` system metadata; Nova's ``instance.image_meta``)."""
    meta = {k[len("image_"):]: v for k, v in (instance.get("system_metadata") or {}).items()
            if k.startswith("image_")}
    if instance.get("image_ref"):
        meta["id"] = str(instance["image_ref"])
    return meta


def _ensure_pool(conn: libvirt.virConnect, name: str, path: str) -> None:
    """The transient directory pool ``name`` on ``path``, running (made if missing: after a libvirtd restart)."""
    for _attempt in range(2):
        try:
            pool = conn.storagePoolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise
        else:
            if not pool.isActive():
                pool.create(0)
            return
        try:
            conn.storagePoolCreateXML(f"<pool type='dir'><name>{escape(name)}</name><target><path>{escape(path)}"
                                      f"</path></target></pool>", 0)
            return
        except libvirt.libvirtError:  # made meanwhile by a move arriving at the same time: look it up again
            continue
    raise ResizeError(reason=f"storage pool {name} could not be made")


def _upload(conn: libvirt.virConnect, pool: libvirt.virStoragePool, name: str, path: str) -> int:
    """The file at ``path`` as the volume ``name`` of ``pool`` (replacing one left by an earlier attempt), sent in
    a libvirt stream; on failure the volume goes. Returns the bytes sent."""
    size = os.path.getsize(path)
    with contextlib.suppress(libvirt.libvirtError):
        pool.storageVolLookupByName(name).delete(0)
    vol = pool.createXML(f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{size}</capacity>"
                         f"<allocation unit='bytes'>0</allocation><target><format type='raw'/></target></volume>", 0)
    stream = conn.newStream(0)
    try:
        vol.upload(stream, 0, size, 0)
        with open(path, "rb") as handle:
            stream.sendAll(lambda _stream, nbytes, fh: fh.read(nbytes), handle)
        stream.finish()
    except BaseException:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        with contextlib.suppress(libvirt.libvirtError):
            vol.delete(0)
        raise
    return size


def _open_inbox(conn: libvirt.virConnect, uri: str, pool_name: str) -> libvirt.virStoragePool:
    try:
        pool = conn.storagePoolLookupByName(pool_name)
        if pool.isActive():
            return pool
    except libvirt.libvirtError as exc:
        raise ResizeError(reason=f"the destination's libvirtd at {uri} has no storage pool {pool_name}: "
                                 f"{exc.get_error_message()}") from None
    raise ResizeError(reason=f"the storage pool {pool_name} of the destination's libvirtd at {uri} is not active")


def check_destination(uri: str, pool_name: str) -> None:
    """The destination's libvirtd answers and its inbox is ready (blocking): asked before the guest stops, so that
    an unreachable or unprepared destination costs the guest no downtime."""
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise ResizeError(reason=f"the destination's libvirtd at {uri} cannot be reached: "
                                 f"{exc.get_error_message()}") from None
    try:
        _open_inbox(conn, uri, pool_name)
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


def send_files(uri: str, pool_name: str, uuid: str, from_dir: str) -> int:
    """Every file of the guest in ``from_dir`` into the destination's inbox pool (blocking: a worker thread's).
    All or nothing: on a failure the volumes made so far are deleted. Returns the bytes sent."""
    conn = libvirt.open(uri)
    try:
        pool = _open_inbox(conn, uri, pool_name)
        with contextlib.suppress(libvirt.libvirtError):  # forget the files a finished move took away
            pool.refresh(0)
        sent: list[str] = []
        total = 0
        try:
            for name in MOVED_FILES:
                path = os.path.join(from_dir, name)
                if not os.path.isfile(path) or os.path.getsize(path) == 0:
                    continue
                total += _upload(conn, pool, f"{uuid}.{name}", path)
                sent.append(f"{uuid}.{name}")
        except BaseException:
            for vol_name in sent:
                with contextlib.suppress(libvirt.libvirtError):
                    pool.storageVolLookupByName(vol_name).delete(0)
            raise
        return total
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


def _take_from_inbox(inbox: str, uuid: str, inst_dir: str, root_travels: bool = True) -> list[str]:
    """The files that arrived for ``uuid`` moved into the instance's directory; their names. With
    ``root_travels`` (a root disk that is a file, not an RBD image) the root disk must be among them."""
    if root_travels and not os.path.isfile(os.path.join(inbox, f"{uuid}.disk")):
        raise ResizeError(reason=f"the disks of instance {uuid} did not arrive in {inbox}")
    os.makedirs(inst_dir, exist_ok=True)
    taken = []
    for name in MOVED_FILES:
        src = os.path.join(inbox, f"{uuid}.{name}")
        if os.path.isfile(src):
            os.replace(src, os.path.join(inst_dir, name))
            taken.append(name)
    return taken


def _clear_stale(inbox: str, max_age: float = STALE_AFTER) -> list[str]:
    """Files left in the inbox longer than ``max_age`` seconds (an upload whose source died, a move never
    finished) go: a move in flight is minutes old at most. Returns their names."""
    cutoff = time.time() - max_age
    gone = []
    for entry in os.scandir(inbox):
        if entry.stat(follow_symlinks=False).st_mtime < cutoff:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            gone.append(entry.name)
    return gone


def _clear_inbox(inbox: str, uuid: str) -> None:
    for name in MOVED_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(inbox, f"{uuid}.{name}"))


def _restore_dir(inst_dir: str) -> str:
    """``<uuid>_resize`` back as ``<uuid>`` (whatever a same-host move left at ``<uuid>`` goes first); the
    definition it keeps."""
    kept = inst_dir + RESIZE_SUFFIX
    if os.path.isdir(kept):
        if os.path.exists(inst_dir):
            shutil.rmtree(inst_dir)
        os.rename(kept, inst_dir)
    with open(os.path.join(inst_dir, "libvirt.xml")) as handle:
        return handle.read()


async def _grow(path: str, disk_format: str, size: int) -> None:
    """The disk image at ``path`` made ``size`` bytes big if it is smaller (never shrunk)."""
    if size > int(str((await image_info(path))["virtual-size"])):
        await qemu_img("resize", "-q", "-f", disk_format, path, str(size))


class MigrationMixin:
    """LibvirtDriver's move methods (the driver class mixes this in; ``self`` is the driver)."""

    async def prepare_migration_destination(self: LibvirtDriver, instance: dict[str, Any],
                                            flavor: dict[str, Any]) -> None:
        """This host's inbox pool, ready for the source to upload into (and rid of what earlier moves left)."""
        inbox = os.path.join(self.instances_path, INBOX)
        await asyncio.to_thread(os.makedirs, inbox, exist_ok=True)
        if gone := await asyncio.to_thread(_clear_stale, inbox):
            LOG.info("removed from the inbox of %s what moves left there: %s", self.host_name, ", ".join(gone))
        await self.host.call(lambda conn: _ensure_pool(conn, inbox_pool(self.host_name), inbox))

    async def migrate_disk_and_power_off(self: LibvirtDriver, instance: dict[str, Any], dest_host: str,
                                         flavor: dict[str, Any], timeout: int = 0, retry_interval: int = 0) -> None:
        """Refuse what cannot move (a smaller root or ephemeral disk, a destination whose libvirtd does not
        answer or has no inbox) before touching the guest; power it off, keep its directory as
        ``<uuid>_resize``, upload its files to ``dest_host``'s inbox (an RBD root disk stays where it is, in the
        pool both hosts use), undefine it here. A failed upload puts everything back (the guest running again if
        it ran)."""
        uuid = instance["uuid"]
        if (int(flavor.get("root_gb") or 0) < int(instance.get("root_gb") or 0)
                or int(flavor.get("ephemeral_gb") or 0) < int(instance.get("ephemeral_gb") or 0)):
            raise ResizeError(reason="Unable to resize disk down.")
        uri, pool = peer_uri(self.conf.libvirt.live_migration_uri, dest_host), inbox_pool(dest_host)
        await asyncio.to_thread(check_destination, uri, pool)
        was_running = (await self.get_info(instance)).power_state == power_state.RUNNING
        await self.power_off(instance, timeout, retry_interval)
        inst_dir = self.instance_dir(instance)
        kept = inst_dir + RESIZE_SUFFIX

        def keep() -> None:
            if os.path.exists(kept):  # left by a move that never ended: this one replaces it
                shutil.rmtree(kept)
            os.rename(inst_dir, kept)

        def definition(conn: libvirt.virConnect) -> str:
            return str(self._domain(conn, instance).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))

        xml = await self.host.call(definition)
        await asyncio.to_thread(keep)
        started = time.monotonic()
        try:
            await asyncio.to_thread(files.write, os.path.join(kept, "libvirt.xml"), xml)
            sent = await asyncio.to_thread(send_files, uri, pool, uuid, kept)
        except BaseException as exc:
            LOG.warning("the files of %s could not be sent to %s: %s", uuid, dest_host, exc)
            await asyncio.to_thread(os.rename, kept, inst_dir)
            if was_running:
                with contextlib.suppress(Exception):
                    await self.power_on(instance)
            if isinstance(exc, libvirt.libvirtError):
                raise ResizeError(reason=f"sending the disks to {dest_host} failed: {exc.get_error_message()}"
                                  ) from None
            raise
        LOG.info("instance %s: %d bytes sent to %s in %.2f s", uuid, sent, dest_host, time.monotonic() - started)

        def undefine(conn: libvirt.virConnect) -> None:
            with contextlib.suppress(exception.InstanceNotFound):
                self._domain(conn, instance).undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                                           | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)

        self._owned.pop(uuid, None)
        await self.host.call(undefine)

    async def finish_migration(self: LibvirtDriver, instance: dict[str, Any], image_meta: dict[str, Any], *,
                               power_on: bool, network_info: list[dict[str, Any]] | None = None) -> None:
        """The guest made here from the files that arrived, with the instance's (new) flavor; on failure nothing
        of it is left here (files, inbox, domain)."""
        uuid = instance["uuid"]
        inbox = os.path.join(self.instances_path, INBOX)
        inst_dir = self.instance_dir(instance)
        vifs = list(network_info or [])
        try:
            taken = await asyncio.to_thread(_take_from_inbox, inbox, uuid, inst_dir, self.rbd is None)
            with contextlib.suppress(libvirt.libvirtError):
                await self.host.call(lambda conn: conn.storagePoolLookupByName(inbox_pool(self.host_name))
                                     .refresh(0))
            meta = {**image_meta_of(instance), **image_meta}
            guest = self._guest_config(instance, meta)
            guest.vifs = vifs
            await self._plug_vifs(vifs)
            await self._adopt_disks(instance, guest, taken)
            xml = guest.to_xml()
            await asyncio.to_thread(files.write, os.path.join(inst_dir, "libvirt.xml"), xml)
            self._owned[uuid] = True

            def define(conn: libvirt.virConnect) -> None:
                dom = conn.defineXML(xml)
                if power_on:
                    dom.create()

            await self.host.call(define)
        except BaseException:
            await asyncio.to_thread(_clear_inbox, inbox, uuid)
            with contextlib.suppress(Exception):
                await self.destroy(instance, network_info=vifs)
            raise
        LOG.info("instance %s arrived on %s (%s)", uuid, self.host_name, ", ".join(taken))

    async def _adopt_disks(self: LibvirtDriver, instance: dict[str, Any], guest: guest_config.GuestConfig,
                           taken: list[str]) -> None:
        """The guest's disks as they came: each overlay on this host's own base, the root grown to the flavor,
        then the blank disks, boot files and config drive in the places a spawn gives them."""
        inst_dir = self.instance_dir(instance)
        root = guest.disks[0]
        formats = {}
        for name in (n for n in _DISKS if n in taken):
            path = os.path.join(inst_dir, name)
            info = await image_info(path)
            await self._rebase_here(instance, path, info)
            formats[name] = str(info["format"])
        root_bytes = int(instance.get("root_gb") or 0) * GiB
        if self.rbd is not None:  # shared storage: the same image, grown to the flavor (Nova's ``rbd resize``)
            disk = await self.rbd.existing_root(instance["uuid"], root_bytes)
            guest.disks[0] = guest_config.Disk(
                path=disk.path, driver_format="raw", target_dev=root.target_dev, bus=root.bus,
                network=guest_config.NetworkSource("rbd", disk.path, disk.hosts, disk.user, disk.secret_uuid))
        else:
            await _grow(root.path, formats["disk"], root_bytes)
            guest.disks[0] = guest_config.Disk(path=root.path, driver_format=formats["disk"],
                                               target_dev=root.target_dev, bus=root.bus)
        if "disk.local" in taken:  # the one ephemeral disk, grown to the new flavor's (Nova's finish_migration)
            await _grow(os.path.join(inst_dir, "disk.local"), formats["disk.local"],
                        int(instance.get("ephemeral_gb") or 0) * GiB)
        prefix = root.target_dev[:-1]
        for index, name in enumerate((n for n in ("disk.local", "disk.swap") if n in taken), start=1):
            guest.disks.append(guest_config.Disk(path=os.path.join(inst_dir, name), driver_format=formats[name],
                                                 target_dev=prefix + "abcdefghijklmnop"[index], bus=root.bus))
        if "kernel" in taken:
            guest.kernel = os.path.join(inst_dir, "kernel")
            if "ramdisk" in taken:
                guest.ramdisk = os.path.join(inst_dir, "ramdisk")
        if ConfigDrive.FILE_NAME in taken:
            guest.disks.append(guest_config.config_drive_disk(os.path.join(inst_dir, ConfigDrive.FILE_NAME),
                                                              guest.machine_type))

    async def _rebase_here(self: LibvirtDriver, instance: dict[str, Any], path: str, info: dict[str, Any]) -> None:
        """An overlay that came from another host names that host's base: point it at this host's copy (the
        image's from the image service, or a blank disk's formatted here), which holds the same data."""
        backing = info.get("backing-filename")
        if not backing:
            return
        name = os.path.basename(str(backing))
        own = os.path.join(self.instances_path, "_base", name)
        if not await asyncio.to_thread(os.path.exists, own):
            made = await self.blank.base_named(name)
            if made is not None:
                own = made
            elif instance.get("image_ref") and name == cache_base_name(str(instance["image_ref"])):
                if self.images is None or self.cache is None:
                    raise ResizeError(reason="this compute host has no image service")
                image = await self.images.show(RequestContext.admin().to_dict(), str(instance["image_ref"]))
                own = await self.cache.fetch(image)
            else:
                raise ResizeError(reason=f"{path} is backed by {name}, which this host cannot make")
        backing_format = str(info.get("backing-filename-format") or (await image_info(own))["format"])
        await qemu_img("rebase", "-u", "-f", "qcow2", "-F", backing_format, "-b", own, path)

    async def confirm_migration(self: LibvirtDriver, instance: dict[str, Any]) -> None:
        """What the source kept for a revert goes (its guest was undefined when the files left), and so does an
        RBD root disk's ``nova-resize`` snapshot (Nova's ``_cleanup_resize``; errors only logged)."""
        await asyncio.to_thread(shutil.rmtree, self.instance_dir(instance) + RESIZE_SUFFIX, True)
        if self.rbd is not None:
            await self.rbd.drop_resize_snapshot(instance["uuid"])

    async def finish_revert_migration(self: LibvirtDriver, instance: dict[str, Any], *, power_on: bool,
                                      network_info: list[dict[str, Any]] | None = None) -> None:
        """The guest back from ``<uuid>_resize`` with the definition it had (old flavor, old disks); an RBD root
        disk, which the destination grew in place, rolled back to its ``nova-resize`` snapshot first and the
        snapshot removed (Nova's ``finish_revert_migration``): old size, old contents."""
        inst_dir = self.instance_dir(instance)
        try:
            xml = await asyncio.to_thread(_restore_dir, inst_dir)
        except FileNotFoundError:
            raise exception.InstanceNotFound(instance_id=instance["uuid"]) from None
        if self.rbd is not None:
            await self.rbd.revert_root(instance["uuid"])
        await self._plug_vifs(list(network_info or []))
        self._owned[instance["uuid"]] = True

        def define(conn: libvirt.virConnect) -> None:
            dom = conn.defineXML(xml)
            if power_on and not dom.isActive():
                dom.create()

        await self.host.call(define)
        LOG.info("instance %s is back on %s as it was", instance["uuid"], self.host_name)

