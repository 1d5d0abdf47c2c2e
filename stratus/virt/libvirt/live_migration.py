"""Live migration of libvirt guests, as Nova's libvirt driver does it: peer to peer, the source's libvirtd talking
to the destination's (``[libvirt] live_migration_uri``), QEMU's stream to the destination's
``live_migration_inbound_addr``.

Storage decides how (``block_migration: auto``): a guest whose disks the destination already reaches (an RBD root
disk in the destination's own pool with no local ephemeral or swap disk, or an instance directory both hosts
share) moves its memory only; any other is a block migration, the destination making empty disks of the same
size on the same bases first (``pre_live_migration``) and libvirt copying the source's top layers into them
(``VIR_MIGRATE_NON_SHARED_INC``, the local writable disks only). The domain goes over with the destination's
paths and host name in its XML, persistent there and undefined here once the copy is done.

While the copy runs the source watches it every half second: the progress for the migration record, the
allowed downtime raised in Nova's steps, the completion timeout (``live_migration_completion_timeout`` per GiB,
then ``live_migration_timeout_action``), and what the API asked (abort: ``abortJob``; force-complete: the
guest paused for the last copy, or switched to post-copy where ``live_migration_permit_post_copy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import libvirt

from stratus import exception
from stratus.context import RequestContext
from stratus.objects.states import power_state
from stratus.virt.driver import LiveMigrationControl
from stratus.virt.libvirt import config as guest_config
from stratus.virt.libvirt import vif as vif_driver
from stratus.virt.libvirt.host import peer_uri

if TYPE_CHECKING:
    from oslo_config import cfg

    from stratus.image.backends.rbd import RbdBackend
    from stratus.image.client import ImageClient
    from stratus.virt.libvirt.host import Host

LOG = logging.getLogger(__name__)
T = TypeVar("T")
GiB = 1024**3
#: Nova's flags for a live migration; a block migration adds VIR_MIGRATE_NON_SHARED_INC
LIVE_FLAGS = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_PERSIST_DEST
              | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
NOT_SHARED = ("Shared storage live-migration requires either shared storage or boot-from-volume with no local "
              "disks.")
SHARED = "Block migration can not be used with shared storage."
CONFIG_DRIVE = ("Live migration of instances with config drives is not supported in libvirt unless libvirt "
                "instance path and drive data is shared across compute nodes.")
#: seconds between two looks at a running migration
POLL = 0.5
#: what libvirt's job info says of a guest whose migration can no longer move it (Nova's ``find_job_type``)
JOB_OVER = (libvirt.VIR_DOMAIN_JOB_NONE, libvirt.VIR_DOMAIN_JOB_FAILED, libvirt.VIR_DOMAIN_JOB_CANCELLED)
#: seconds ``migrateToURI3`` may go on after its abort (or after the guest left) before the source stops waiting
#: for it and decides from where libvirt shows the guest: an abort that lands during the switch-over can leave the
#: call blocked for good, and it must not hold the compute (and the instance's lock) with it
STUCK_AFTER = 20.0
LOOPBACK = "127.0.0.1"


def on_this_machine(uri: str) -> bool:
    """Whether a libvirt URI reaches a libvirtd of this machine (a unix socket, or no host): QEMU's stream to a
    destination there goes over loopback (libvirt refuses a host name that resolves to it)."""
    parsed = urllib.parse.urlsplit(uri)
    return parsed.scheme.endswith("+unix") or not parsed.hostname


def data_gb(memory_mb: int, disk_sizes: list[int]) -> float:
    """Nova's ``_live_migration_data_gb``: the guest's RAM and (block migration) local disks in GiB, each at
    least 2."""
    return max(2.0, memory_mb / 1024) + sum(max(2.0, size / GiB) for size in disk_sizes)


def downtime_steps(downtime: int, steps: int, delay: int, gb: float) -> Iterator[tuple[int, int]]:
    """Nova's ``downtime_steps``: (seconds after the start, allowed downtime in ms), growing in ``steps`` steps
    from downtime/steps to ``downtime``, ``delay`` seconds per GiB apart."""
    delay = int(delay * gb)
    base = downtime / steps
    offset = (downtime - base) / steps
    for i in range(steps + 1):
        yield int(delay * i), int(base + offset * i)


def dest_xml(xml: str, src_dir: str, dst_dir: str, dest_host: str) -> str:
    """The domain as the destination must define it: its instance directory in every file path (disks,
    kernel, ramdisk, console log), no backing chain of the source's (the destination's disks name their own
    bases), and Nova's metadata naming the destination's compute host, which owns it from now on."""
    root = ET.fromstring(xml)

    def moved(path: str | None) -> str | None:
        if path and (path == src_dir or path.startswith(src_dir + "/")):
            return dst_dir + path[len(src_dir):]
        return None

    for el in root.iter():
        for attr in ("file", "path"):
            new = moved(el.get(attr))
            if new is not None:
                el.set(attr, new)
        if el.tag in ("kernel", "initrd"):
            new = moved(el.text)
            if new is not None:
                el.text = new
    for disk in root.iter("disk"):
        for chain in disk.findall("backingStore"):
            disk.remove(chain)
    for host in root.iter(f"{{{guest_config.NOVA_NS}}}host"):
        host.text = dest_host
    return ET.tostring(root, encoding="unicode")


def local_disks(xml: str) -> list[tuple[str, str]]:
    """(target dev, file) of the domain's local writable disks: what a block migration copies (network disks
    such as RBD, and read-only ones such as a config drive CD-ROM, stay as they are)."""
    out = []
    for disk in ET.fromstring(xml).iter("disk"):
        source, target = disk.find("source"), disk.find("target")
        if (disk.get("type") != "file" or disk.get("device", "disk") != "disk" or disk.find("readonly") is not None
                or source is None or target is None or not source.get("file")):
            continue
        out.append((str(target.get("dev")), str(source.get("file"))))
    return out


class LiveMigrationMixin:
    """The live-migration methods of ``LibvirtDriver`` (see the module's docstring); what they use of the driver
    is declared here."""

    conf: cfg.ConfigOpts
    host: Host
    host_name: str
    rbd: RbdBackend | None
    images: ImageClient | None
    _owned: dict[str, bool]

    if TYPE_CHECKING:
        def instance_dir(self, instance: dict[str, Any]) -> str: ...
        def _guest_config(self, instance: dict[str, Any], image_meta: dict[str, Any]) -> Any: ...
        async def _create_file_root(self, instance: dict[str, Any], image_meta: dict[str, Any], guest: Any,
                                    root_bytes: int) -> None: ...
        async def _create_blank_disks(self, instance: dict[str, Any], guest: Any) -> None: ...
        async def _fetch_boot_files(self, instance: dict[str, Any], image_meta: dict[str, Any],
                                    guest: Any) -> None: ...
        async def _plug_vifs(self, network_info: list[dict[str, Any]]) -> None: ...

    #: instance uuid → whether this host (a destination) made the instance's directory for an incoming migration
    _incoming: dict[str, bool]

    # --- destination ---------------------------------------------------------------------------------------
    async def _shared_storage(self, instance: dict[str, Any]) -> tuple[bool, bool]:
        """(shared block storage, shared instance path) with the instance's source, as this host sees them."""
        uuid = instance["uuid"]

        def has_domain(conn: libvirt.virConnect) -> bool:
            try:
                conn.lookupByUUIDString(uuid)
                return True
            except libvirt.libvirtError:
                return False

        shared_path = (await asyncio.to_thread(os.path.isfile, os.path.join(self.instance_dir(instance),
                                                                            "libvirt.xml"))
                       and not await self.host.call(has_domain))
        local_extra = int(instance.get("ephemeral_gb") or 0) or int((instance.get("flavor") or {}).get("swap") or 0)
        shared_block = False
        if self.rbd is not None and not local_extra:
            rbd = self.rbd
            names = await asyncio.to_thread(rbd.cluster.list, rbd.pool)
            shared_block = rbd.disk_name(uuid) in names
        return shared_block, shared_path

    async def check_can_live_migrate_destination(self, instance: dict[str, Any], block_migration: bool | None
                                                 ) -> bool:
        """``auto`` (None) is a block migration unless the storage is shared; a block migration onto shared
        storage, a non-block one off local disks, and a config drive on a directory not shared are refused."""
        uuid = instance["uuid"]
        shared_block, shared_path = await self._shared_storage(instance)
        shared = shared_block or shared_path
        if block_migration is None:
            block_migration = not shared
        if block_migration and shared:
            raise exception.MigrationPreCheckError(reason=f"{uuid} is not on local storage: {SHARED}")
        if not block_migration and not shared:
            raise exception.MigrationPreCheckError(reason=f"{uuid} is not on shared storage: {NOT_SHARED}")
        if instance.get("config_drive") and not shared_path:
            raise exception.MigrationPreCheckError(reason=CONFIG_DRIVE)
        LOG.info("live migration of %s to %s: %s", uuid, self.host_name,
                 "block migration" if block_migration else "shared storage")
        return block_migration

    async def pre_live_migration(self, instance: dict[str, Any], block_migration: bool, *,
                                 network_info: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The guest's VIFs plugged here (their bridges in this host's namespace: QEMU puts the incoming guest's
        taps on them, and libvirt refuses a guest whose bridge is missing), the instance's directory with its
        kernel and ramdisk, and for a block migration empty disks the size of the source's on this host's
        cached bases; returns this host's side of the move."""
        uuid = instance["uuid"]
        vifs = list(network_info or [])
        try:
            for vif in vifs:
                vif_driver.check(vif)
        except vif_driver.UnsupportedVIFType as exc:
            raise exception.MigrationPreCheckError(reason=str(exc)) from None
        await self._plug_vifs(vifs)
        shared_block, shared_path = await self._shared_storage(instance)
        inst_dir = self.instance_dir(instance)
        if not shared_path:
            self._incoming[uuid] = not await asyncio.to_thread(os.path.isdir, inst_dir)
            await asyncio.to_thread(os.makedirs, inst_dir, exist_ok=True)
            try:
                image_meta = await self._image_meta(instance)
                guest = self._guest_config(instance, image_meta)
                if block_migration:
                    if self.rbd is None:
                        await self._create_file_root(instance, image_meta, guest,
                                                     int(instance.get("root_gb") or 0) * GiB)
                    await self._create_blank_disks(instance, guest)
                await self._fetch_boot_files(instance, image_meta, guest)
            except BaseException:
                await self.rollback_live_migration_at_destination(instance)
                raise
        self._owned.pop(uuid, None)  # read again from the domain's metadata once it is here
        return {"instance_dir": inst_dir, "host": self.host_name,
                "target_connect_addr": self.conf.libvirt.live_migration_inbound_addr or None,
                "shared_instance_path": shared_path, "shared_block_storage": shared_block}

    async def _image_meta(self, instance: dict[str, Any]) -> dict[str, Any]:
        if self.images is None or not instance.get("image_ref"):
            raise exception.MigrationPreCheckError(reason="the destination cannot fetch the instance's image")
        return await self.images.show(RequestContext.admin().to_dict(), str(instance["image_ref"]))

    async def post_live_migration_at_destination(self, instance: dict[str, Any], power: int) -> None:
        """The guest is this host's: running again if it ran before the move (a forced completion paused it),
        its definition written to ``libvirt.xml`` as at spawn."""
        uuid = instance["uuid"]

        def finish(conn: libvirt.virConnect) -> str:
            dom = conn.lookupByUUIDString(uuid)
            if power == power_state.RUNNING and dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
                dom.resume()
            return str(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))

        xml = await self.host.call(finish)
        self._incoming.pop(uuid, None)
        self._owned[uuid] = True
        await asyncio.to_thread(_write, os.path.join(self.instance_dir(instance), "libvirt.xml"), xml)

    async def post_live_migration_at_source(self, instance: dict[str, Any],
                                            network_info: list[dict[str, Any]]) -> None:
        """The taps the guest's NICs had here removed, should any outlive its QEMU (the bridges stay: they are
        the networks')."""
        for vif in network_info:
            await asyncio.to_thread(vif_driver.unplug, self.host_name, vif)

    async def rollback_live_migration_at_destination(self, instance: dict[str, Any]) -> None:
        """What ``pre_live_migration`` made goes: the instance's directory, if this host made it (never a shared
        one, never the RBD disks, which are the source's). libvirt removes its incoming domain itself."""
        made = self._incoming.pop(instance["uuid"], False)
        if made:
            await asyncio.to_thread(shutil.rmtree, self.instance_dir(instance), True)

    # --- source --------------------------------------------------------------------------------------------
    async def live_migration(self, instance: dict[str, Any], dest_host: str, block_migration: bool,
                             control: LiveMigrationControl, migrate_data: dict[str, Any]) -> int:
        """``migrateToURI3`` in a worker thread, watched from here (see the module's docstring); on success the
        domain is the destination's and this host's files of it go (not shared ones, not RBD disks)."""
        uuid = instance["uuid"]
        src_dir = self.instance_dir(instance)
        dst_dir = str(migrate_data.get("instance_dir") or src_dir)
        opts = self.conf.libvirt

        def prepare(conn: libvirt.virConnect) -> tuple[int, str, str]:
            dom = conn.lookupByUUIDString(uuid)
            state = dom.state()[0]
            live = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
            persistent = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE | libvirt.VIR_DOMAIN_XML_INACTIVE)
            return int(state), live, persistent

        try:
            state, live, persistent = await self.host.call(prepare)
        except libvirt.libvirtError as exc:
            raise exception.InstanceNotFound(instance_id=uuid) from exc
        power = power_state.PAUSED if state == libvirt.VIR_DOMAIN_PAUSED else power_state.RUNNING
        flags = LIVE_FLAGS
        params: dict[str, Any] = {libvirt.VIR_MIGRATE_PARAM_DEST_XML: dest_xml(live, src_dir, dst_dir, dest_host),
                                  libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: dest_xml(persistent, src_dir, dst_dir,
                                                                                  dest_host)}
        dconnuri = peer_uri(self.conf.libvirt.live_migration_uri, dest_host)
        target = migrate_data.get("target_connect_addr") or (LOOPBACK if on_this_machine(dconnuri) else None)
        if target:
            params[libvirt.VIR_MIGRATE_PARAM_URI] = f"tcp://{target}"
            params[libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS] = str(target)
        disks = local_disks(live)
        sizes: list[int] = []
        if block_migration:
            flags |= libvirt.VIR_MIGRATE_NON_SHARED_INC
            params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = [dev for dev, _ in disks]
            sizes = [await asyncio.to_thread(_size, path) for _, path in disks]
        if opts.live_migration_bandwidth:
            params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = int(opts.live_migration_bandwidth)
        post_copy = bool(opts.live_migration_permit_post_copy)
        if post_copy:
            flags |= libvirt.VIR_MIGRATE_POSTCOPY
        elif opts.live_migration_permit_auto_converge:
            flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
        gb = data_gb(int(instance["memory_mb"]), sizes)
        LOG.info("live migration of %s to %s (%s, %s) started: %.1f GiB to move", uuid, dest_host, dconnuri,
                 "block migration" if block_migration else "shared storage", gb)

        def migrate() -> None:
            dom = self.host.get_connection().lookupByUUIDString(uuid)
            dom.migrateToURI3(dconnuri, params, flags)

        copy = _in_own_thread(migrate)
        outcome = await self._monitor(instance, copy, control, gb, post_copy, dconnuri)
        if outcome.stuck is not None:  # the call never came back: the guest's whereabouts decide
            LOG.warning("live migration of %s to %s: migrateToURI3 has not returned %.0f s after the guest %s; "
                        "not waiting for it", uuid, dest_host, STUCK_AFTER,
                        "left" if outcome.stuck else "stayed after the abort")
            copy.add_done_callback(functools.partial(_late_return, uuid))
            if not outcome.stuck:
                raise exception.LiveMigrationAborted(instance_uuid=uuid)
        else:
            try:
                await copy
            except libvirt.libvirtError as exc:
                if outcome.paused:
                    with contextlib.suppress(libvirt.libvirtError):
                        await self.host.call(lambda conn: conn.lookupByUUIDString(uuid).resume())
                if outcome.aborted and not await self._arrived(uuid, dconnuri):
                    raise exception.LiveMigrationAborted(instance_uuid=uuid) from None
                if not outcome.aborted:
                    LOG.warning("live migration of %s to %s failed: %s", uuid, dest_host, exc)
                    raise exception.MigrationError(reason=str(exc)) from None
                LOG.warning("live migration of %s to %s: its abort came too late (%s); the guest is there",
                            uuid, dest_host, exc)
        if outcome.aborted:
            LOG.info("live migration of %s to %s completed although aborted: the abort came too late", uuid,
                     dest_host)
        self._owned.pop(uuid, None)
        if not migrate_data.get("shared_instance_path"):
            await asyncio.to_thread(shutil.rmtree, src_dir, True)
        LOG.info("instance %s live-migrated to %s in %.1fs", uuid, dest_host, outcome.elapsed)
        return power

    async def _where(self, uuid: str, dconnuri: str) -> tuple[bool | None, bool | None]:
        """(whether the guest still runs here, whether it runs on the destination), each None when its libvirtd
        does not answer within a few seconds."""
        def here(conn: libvirt.virConnect) -> bool:
            try:
                return bool(conn.lookupByUUIDString(uuid).isActive())
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return False
                raise

        def there() -> bool:
            conn = libvirt.open(dconnuri)
            try:
                return here(conn)
            finally:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.close()

        async def ask(call: Awaitable[bool]) -> bool | None:
            try:
                return await asyncio.wait_for(call, timeout=10)
            except (TimeoutError, libvirt.libvirtError, exception.StratusException):
                return None

        return await ask(self.host.call(here)), await ask(_in_own_thread(there))

    async def _job_over(self, uuid: str) -> bool:
        """Whether libvirt says the guest here has no job running, or its migration failed or was cancelled (a
        call still blocked, in the destination's finish, has nothing left to move: QEMU's stream is over);
        False when it does not answer within a few seconds."""
        def none(conn: libvirt.virConnect) -> bool:
            try:
                return int(conn.lookupByUUIDString(uuid).jobInfo()[0]) in JOB_OVER
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                    return True  # a hypervisor without jobs to report (libvirt's test driver) runs none
                raise

        try:
            return await asyncio.wait_for(self.host.call(none), timeout=10)
        except (TimeoutError, libvirt.libvirtError, exception.StratusException):
            return False

    async def _arrived(self, uuid: str, dconnuri: str) -> bool:
        """Whether the guest runs on the destination and no longer here: the migration happened."""
        here, there = await self._where(uuid, dconnuri)
        return here is False and there is True

    async def _monitor(self, instance: dict[str, Any], copy: asyncio.Future[None], control: LiveMigrationControl,
                       gb: float, post_copy: bool, dconnuri: str) -> _Outcome:
        """Nova's ``_live_migration_monitor``: progress, downtime steps, completion timeout, abort and
        force-complete, until the copy ends; or, if the call is still blocked ``STUCK_AFTER`` seconds after an
        abort, or after the guest ran on the destination only, until libvirt shows where the guest is
        (``outcome.stuck``: True if it left, False if it stayed)."""
        uuid = instance["uuid"]
        opts = self.conf.libvirt
        outcome = _Outcome()
        steps = list(downtime_steps(opts.live_migration_downtime, opts.live_migration_downtime_steps,
                                    opts.live_migration_downtime_delay, gb))
        timeout = opts.live_migration_completion_timeout * gb
        started = time.monotonic()

        def on_domain(fn: Any) -> Any:
            return self.host.call(lambda conn: fn(conn.lookupByUUIDString(uuid)))

        aborted_at: float | None = None
        gone_at: float | None = None
        while not copy.done():
            await asyncio.wait({copy}, timeout=POLL)
            if copy.done():
                break
            outcome.elapsed = time.monotonic() - started
            now = time.monotonic()
            waited = max(now - aborted_at if aborted_at is not None else 0.0,
                         now - gone_at if gone_at is not None else 0.0)
            if waited > STUCK_AFTER:
                here, there = await self._where(uuid, dconnuri)
                if here is False and there is True:
                    outcome.stuck = True
                    break
                if here is True and aborted_at is not None:
                    if await self._job_over(uuid):  # no migration job left: nothing can move it any more
                        outcome.stuck = False
                        break
                    with contextlib.suppress(libvirt.libvirtError, TimeoutError):  # the job goes on: again
                        await asyncio.wait_for(on_domain(lambda dom: dom.abortJob()), timeout=10)
                # nothing certain yet: look again in a while
                LOG.warning("live migration of %s: migrateToURI3 still blocked (running here: %s, on the "
                            "destination: %s); looking again in %.0f s", uuid, here, there, STUCK_AFTER)
                aborted_at = now if aborted_at is not None else None
                gone_at = now if gone_at is not None else None
            try:
                stats = await asyncio.wait_for(on_domain(lambda dom: dom.jobStats()), timeout=10)
            except libvirt.libvirtError as exc:
                stats = {}  # the job just ended, or no stats now: what was asked is still done below
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN and gone_at is None:
                    gone_at = time.monotonic()  # undefined here: the copy is over, the call should return soon
            except TimeoutError:
                stats = {}  # libvirtd busy with the domain (a job's end): look again at the next turn
            if stats.get("memory_total"):
                control.memory_total = int(stats["memory_total"])
                control.memory_processed = int(stats.get("memory_processed", 0))
                control.disk_total = int(stats.get("disk_total", 0))
                control.disk_processed = int(stats.get("disk_processed", 0))
            while steps and outcome.elapsed >= steps[0][0]:
                _, downtime = steps.pop(0)
                with contextlib.suppress(libvirt.libvirtError):
                    await on_domain(lambda dom, d=downtime: dom.migrateSetMaxDowntime(d, 0))
            action = None
            if control.abort.is_set() and not outcome.aborted:
                action = "abort"
            elif control.force_complete.is_set() and not outcome.forced:
                action = "force_complete"
            elif timeout and outcome.elapsed > timeout and not outcome.timed_out:
                outcome.timed_out = True
                action = opts.live_migration_timeout_action
                LOG.warning("live migration of %s not done after %.0fs (%s s per GiB): %s", uuid, outcome.elapsed,
                            opts.live_migration_completion_timeout, action)
            if action == "abort":
                outcome.aborted = True
                aborted_at = time.monotonic()
                try:  # refused once the switch-over began (Nova's abort fails too): the migration completes
                    await asyncio.wait_for(on_domain(lambda dom: dom.abortJob()), timeout=10)
                except (libvirt.libvirtError, TimeoutError) as exc:
                    LOG.warning("live migration of %s: the abort was not taken: %s", uuid, exc)
            elif action == "force_complete":
                outcome.forced = True
                try:
                    if post_copy:
                        await on_domain(lambda dom: dom.migrateStartPostCopy(0))
                        LOG.info("live migration of %s switched to post-copy", uuid)
                    else:
                        await on_domain(lambda dom: dom.suspend())
                        outcome.paused = True
                        LOG.info("live migration of %s: guest paused for the last copy", uuid)
                except libvirt.libvirtError as exc:
                    LOG.warning("could not force the live migration of %s to complete: %s", uuid, exc)
        outcome.elapsed = time.monotonic() - started
        return outcome


class _Outcome:
    """What the monitor did to one migration."""

    def __init__(self) -> None:
        self.aborted = False
        self.forced = False
        self.paused = False
        self.timed_out = False
        self.elapsed = 0.0
        #: set when the migration call did not return: whether the guest left (True) or stayed (False)
        self.stuck: bool | None = None


def _late_return(uuid: str, copy: asyncio.Future[None]) -> None:
    """What a migration call no longer waited for said when it came back at last (logged, never raised)."""
    error = None if copy.cancelled() else copy.exception()
    LOG.info("the abandoned migration call of %s returned: %s", uuid, error or "no error")


def _in_own_thread(fn: Callable[[], T]) -> asyncio.Future[T]:
    """``fn()`` in a daemon thread of its own (not the loop's executor, whose few workers a call blocked for good
    would keep), its outcome as a future of the running loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def done(result: T | None, error: BaseException | None) -> None:
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the service stopped
                loop.call_soon_threadsafe(done, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(done, result, None)

    threading.Thread(target=run, name="libvirt-migration", daemon=True).start()
    return future


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
