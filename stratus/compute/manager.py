"""The compute agent of one host: builds, terminates and powers instances through its virt driver, and keeps
the database in step with the hypervisor (start-up reconciliation, power-state sync, lifecycle events).

Every state change is a compare-and-swap on (vm_state, task_state), so a delete that lands while a build or a
power action is under way wins: the action notices at its next step and stops there. A hypervisor that stops
answering disables the service (with Nova's ``AUTO: `` reason) instead of crashing it; the first periodic pass
that reaches it again enables the service back.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from oslo_config import cfg

from stratus import exception
from stratus.compute import build_timeout, config_drive, power_sync, resource_tracker, startup
from stratus.compute.api import SNAPSHOT_TASKS
from stratus.compute.locks import InstanceLocks
from stratus.compute.rpcapi import NotSupportedByDriver
from stratus.conductor.rpcapi import ConductorAPI
from stratus.context import RequestContext
from stratus.db import actions, builds, instances, placement
from stratus.db import services as services_db
from stratus.db.engine import Database
from stratus.image.client import ImageClient
from stratus.objects import states
from stratus.objects.states import power_state, task_states
from stratus.rpc.transport import Transport
from stratus.scheduler.rpcapi import SchedulerAPI
from stratus.utils import utcnow
from stratus.virt.driver import ComputeDriver, HypervisorUnavailable, LifecycleEvent

LOG = logging.getLogger(__name__)
BUILD_EVENT = "compute__do_build_and_run_instance"
TERMINATE_EVENT = "compute_terminate_instance"
#: Nova's prefix for a reason the service wrote itself; only such a disable is undone by the service
DISABLE_PREFIX = "AUTO: "


#: failures no other host could fix: the build goes straight to ERROR, no reschedule
NOT_RESCHEDULABLE = (exception.BuildAbortException, exception.ImageUnacceptable, exception.ImageNotFound)


class BuildInterrupted(Exception):
    """The instance left the build's expected state (deleted, usually): stop and clean up."""


class UnexpectedTaskState(exception.StratusException):
    """Nova's ``UnexpectedTaskStateError``: another request (a delete, a HARD reboot) took the instance over
    while this action ran; the action stops there and leaves the instance to it."""

    msg_fmt = "Unexpected task state: expecting %(expected)s but the actual state is %(actual)s"


#: the result of a power action's driver step: the columns to set (with task_state None) when it worked
Outcome = dict[str, Any]


class ComputeManager:
    def __init__(self, conf: cfg.ConfigOpts, db: Database, transport: Transport, *, host: str,
                 driver: ComputeDriver, images: ImageClient | None) -> None:
        self.conf = conf
        self.db = db
        self.host = host
        self.driver = driver
        self.images = images
        self.conductor = ConductorAPI(transport)
        self.scheduler = SchedulerAPI(transport)
        self.service_id = 0
        self.node: dict[str, Any] = {}
        self.locks = InstanceLocks()
        #: consecutive failed builds, reported in the node's stats for the BuildFailureWeigher; a success resets it
        self.failed_builds = 0
        #: the hypervisor stopped answering (the service disabled itself); cleared by the first pass that reaches it
        self.hypervisor_down = False
        self._driver_ready = False  # driver.init_host succeeded
        self._reconciled = False  # the start-up reconciliation ran (it waits for a reachable hypervisor)
        self._background: set[asyncio.Task[Any]] = set()
        self._pending_syncs: set[str] = set()  # instances with a lifecycle-event sync queued
        # the periodic tasks' next run, in time.monotonic(); the service runner calls periodic_tasks every beat
        self._next_resources = self._next_sync = self._next_reap = self._next_image_cache = 0.0
        self._next_build_check = 0.0

    def driver_instance(self, row: dict[str, Any]) -> dict[str, Any]:
        """An instance row as the driver sees it: with its hypervisor name."""
        return {**row, "name": self.conf.instance_name_template % row["id"]}

    def dispatch(self, action: Coroutine[Any, Any, Any]) -> None:
        """Run an action in the background, as a cast to this host would (the sync's stops, start-up retries)."""
        task = asyncio.get_running_loop().create_task(action)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            LOG.error("background action on %s failed", self.host, exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until no background action runs (tests use it to see the outcome of what a sync started)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # --- start-up, periodic tasks, hypervisor health -------------------------------------------------------
    async def init_host(self) -> None:
        """Register the service, then bring the database in step with the hypervisor (Nova's ``init_host``). A
        hypervisor that cannot be reached leaves the service registered but disabled; the rest waits for it."""
        self.driver.register_event_listener(self._lifecycle_event)
        async with self.db.write() as conn:
            service = await services_db.register(conn, self.host, "nova-compute", "compute")
            self.service_id = service["id"]
        # disabled by an earlier run of this service that lost its hypervisor: enabled again once it answers
        self_disabled = bool(service["disabled"]) and (service["disabled_reason"] or "").startswith(DISABLE_PREFIX)
        await self._reach_hypervisor(at_start=self_disabled)
        now = time.monotonic()
        self._next_resources = now + self.conf.update_resources_interval
        # spread each host's syncs over the interval, so a fleet simulated in one process does not query at once
        spread = (zlib.crc32(self.host.encode()) % 1000) / 1000
        self._next_sync = now + spread * max(0, self.conf.sync_power_state_interval)
        self._next_reap = now + spread * max(0, self.conf.running_deleted_instance_poll_interval)
        self._next_image_cache = now + spread * max(0, self.conf.image_cache.manager_interval)
        self._next_build_check = now + spread * build_timeout.spacing(self.conf.instance_build_timeout)

    async def periodic_tasks(self, now: float | None = None) -> None:
        """Whatever is due of: the resource report (``update_resources_interval``; it also notices the
        hypervisor going and coming back), the power-state sync (``sync_power_state_interval``, negative:
        never), the check for guests of deleted instances (``running_deleted_instance_poll_interval``, 0:
        only at start-up) and the check for builds past ``instance_build_timeout`` (every minute, or as often as
        the timeout is long; one indexed query). Called every heartbeat; costs nothing when nothing is due."""
        now = time.monotonic() if now is None else now
        if now >= self._next_resources:
            self._next_resources = now + self.conf.update_resources_interval
            await self._reach_hypervisor()
        build_timeout_s = self.conf.instance_build_timeout
        if build_timeout_s and now >= self._next_build_check:  # a database check: due with the hypervisor down too
            self._next_build_check = now + build_timeout.spacing(build_timeout_s)
            await build_timeout.check_instance_build_time(self)
        if self.hypervisor_down or not self._reconciled:
            return
        sync_interval = self.conf.sync_power_state_interval
        if sync_interval >= 0 and now >= self._next_sync:
            self._next_sync = now + sync_interval
            await self._guarded(power_sync.sync_host(self, RequestContext.admin().to_dict()))
        reap_interval = self.conf.running_deleted_instance_poll_interval
        if reap_interval > 0 and now >= self._next_reap:
            self._next_reap = now + reap_interval
            await self._guarded(startup.running_deleted(self))
        cache_interval = self.conf.image_cache.manager_interval
        if cache_interval >= 0 and now >= self._next_image_cache:
            self._next_image_cache = now + (cache_interval or 60)  # 0: Nova's default periodic spacing
            await self._guarded(self._manage_image_cache())

    async def _manage_image_cache(self) -> None:
        """Nova's ``_run_image_cache_manager_pass``: the driver drops what none of the host's instances use."""
        async with self.db.read() as conn:
            rows = await power_sync.host_instances(conn, self.host, full=True)
        removed = await self.driver.manage_image_cache(rows)
        if removed:
            LOG.info("image cache of %s: %d unused base images %s", self.host, len(removed),
                     "removed" if self.conf.image_cache.remove_unused_base_images else "found")

    async def _guarded(self, task: Awaitable[Any]) -> None:
        try:
            await task
        except HypervisorUnavailable as exc:
            await self._hypervisor_lost(exc)

    async def _reach_hypervisor(self, at_start: bool = False) -> None:
        """Initialise the driver if that has not worked yet, report resources, run the start-up reconciliation
        if it has not run; a HypervisorUnavailable on the way disables the service, success enables it again
        (``at_start``: it may be disabled by a previous run)."""
        try:
            if not self._driver_ready:
                await self.driver.init_host(self.host)
                self._driver_ready = True
            resources = await self.driver.read_available_resources()
            async with self.db.write() as conn:
                self.node = await resource_tracker.update_available_resource(conn, self.conf, resources,
                                                                             self.service_id, self.host,
                                                                             self.failed_builds)
            if not self._reconciled:
                done = await startup.reconcile(self)
                self._reconciled = True
                if done:
                    LOG.info("start-up of %s: %s", self.host, ", ".join(f"{u} {w}" for u, w in done))
        except HypervisorUnavailable as exc:
            await self._hypervisor_lost(exc)
            return
        if self.hypervisor_down or at_start:
            await self._hypervisor_back()

    async def _hypervisor_lost(self, error: HypervisorUnavailable) -> None:
        """Disable the service with the driver's reason (an operator's disable is kept) and tell schedulers."""
        first = not self.hypervisor_down
        self.hypervisor_down = True
        async with self.db.write() as conn:
            disabled = await services_db.auto_disable(conn, self.service_id, DISABLE_PREFIX + error.message)
        if first:
            LOG.error("hypervisor of %s unavailable: %s; the service is %s", self.host, error.message,
                      "disabled until it answers again" if disabled else "left as it is")
        if disabled:
            await self.scheduler.refresh_hosts(RequestContext.admin().to_dict())

    async def _hypervisor_back(self) -> None:
        """Enable the service again if it disabled itself (Nova's ``AUTO: `` reason), and tell schedulers."""
        self.hypervisor_down = False
        async with self.db.write() as conn:
            enabled = await services_db.auto_enable(conn, self.service_id, DISABLE_PREFIX)
        if enabled:
            LOG.info("hypervisor of %s answers again: the service is enabled", self.host)
            await self.scheduler.refresh_hosts(RequestContext.admin().to_dict())

    def _lifecycle_event(self, event: LifecycleEvent) -> None:
        """A guest changed state on its own: sync that instance at once (one queued sync per instance; none while
        an action of ours holds it: its own result is the truth)."""
        uuid = event.instance_uuid
        LOG.info("lifecycle event on %s: instance %s %s", self.host, uuid, event.transition)
        if uuid in self._pending_syncs or self.locks.held(uuid):
            return
        self._pending_syncs.add(uuid)

        async def sync() -> None:
            try:
                await power_sync.sync_instance(self, RequestContext.admin().to_dict(), uuid)
            except HypervisorUnavailable as exc:
                await self._hypervisor_lost(exc)
            finally:
                self._pending_syncs.discard(uuid)

        self.dispatch(sync())

    async def cleanup_host(self) -> None:
        """Service stop: no more events, background actions cancelled, the driver's connection released."""
        self.driver.register_event_listener(None)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*list(self._background), return_exceptions=True)
        try:
            await self.driver.cleanup_host()
        except Exception:
            LOG.exception("driver cleanup of %s failed", self.host)

    # --- build -----------------------------------------------------------------------------------------
    async def build_and_run_instance(self, context: dict[str, Any], instance_uuid: str,
                                     request_spec: dict[str, Any], selection: dict[str, Any],
                                     alternates: list[dict[str, Any]], tried_hosts: list[str] | None = None
                                     ) -> None:
        """Build on this host; a failure another host could fix goes back to the conductor with the remaining
        alternates and every host tried so far (``tried_hosts``: those before this one)."""
        async with self.locks(instance_uuid):
            retry = await self._build(context, instance_uuid, request_spec)
        if retry is not None:  # cast after the lock is released
            await self.conductor.build_instances(context, instance_uuid, request_spec, alternates, self.host,
                                                 retry, tried_hosts=[*(tried_hosts or []), self.host])

    async def _report_stats(self, conn: Any) -> None:
        """The node's stats after a change (none to write while the hypervisor has never answered)."""
        if self.node:
            self.node = await resource_tracker.report_stats(conn, self.node, self.failed_builds)

    async def _send_stats(self, context: dict[str, Any]) -> None:
        if self.node:
            await self.scheduler.update_host_stats(context, self.node["hypervisor_hostname"], self.node["stats"])

    async def _step(self, uuid: str, values: dict[str, Any], expected: tuple[str | None, ...]) -> None:
        async with self.db.write() as conn:
            if not await instances.update_instance(conn, uuid, values, expected_task_state=expected,
                                                   expected_vm_state=(states.BUILDING,)):
                raise BuildInterrupted(uuid)

    async def _build(self, context: dict[str, Any], uuid: str, request_spec: dict[str, Any]) -> str | None:
        """Build; returns the reason to reschedule elsewhere, or None when done (active, error or deleted)."""
        async with self.db.write() as conn:
            instance = await instances.get_plain(conn, uuid)
            if instance is not None and not instance["deleted"] and instance["host"] != self.host:
                # a cast that waited in this host's queue while it was down: the conductors' recovery pass
                # scheduled the build again elsewhere (conductor/recovery.py), and it is that host's now
                LOG.warning("build of %s cast to %s is no longer this host's (host %s): left alone", uuid,
                            self.host, instance["host"])
                return None
            await actions.event_start(conn, context, uuid, BUILD_EVENT, host=self.host)
            moved = instance is not None and await instances.update_instance(
                conn, uuid, {"task_state": task_states.NETWORKING, "host": self.host,
                             "node": self.node.get("hypervisor_hostname", self.host)},
                expected_task_state=(task_states.SCHEDULING,), expected_vm_state=(states.BUILDING,),
                expected_host=(self.host,))
        if not moved or instance is None:
            await self._abandon(context, uuid, None, spawned=False)
            return None
        instance["name"] = self.conf.instance_name_template % instance["id"]
        touched = False  # the driver was asked to do something: destroy undoes it (and is fine if it did nothing)
        try:
            touched = True
            await self.driver.prepare_networks_before_block_device_mapping(instance, [])
            await self._step(uuid, {"task_state": task_states.BLOCK_DEVICE_MAPPING}, (task_states.NETWORKING,))
            await self.driver.prepare_for_spawn(instance)
            await self._step(uuid, {"task_state": task_states.SPAWNING}, (task_states.BLOCK_DEVICE_MAPPING,))
            image_meta = request_spec.get("image") or {}
            drive = await config_drive.prepare(self.conf, self.db, self.driver, instance, image_meta,
                                               admin_password=request_spec.get("admin_password"),
                                               injected_files=request_spec.get("personality") or [])
            await self.driver.spawn(instance, image_meta, network_info=[], config_drive=drive)
            async with self.db.write() as conn:
                done = await instances.update_instance(
                    conn, uuid, {"vm_state": states.ACTIVE, "task_state": None, "power_state": power_state.RUNNING,
                                 "launched_at": utcnow(), "progress": 0},
                    expected_task_state=(task_states.SPAWNING,), expected_vm_state=(states.BUILDING,))
                had_failures = self.failed_builds
                if done:
                    await actions.event_finish(conn, context, uuid, BUILD_EVENT)
                    self.failed_builds = 0
                    await self._report_stats(conn)
            if not done:
                raise BuildInterrupted(uuid)
            if had_failures:  # the run of failures is over: schedulers may prefer this host again
                await self._send_stats(context)
            LOG.info("instance %s is active on %s", uuid, self.host)
        except BuildInterrupted:
            await self._abandon(context, uuid, instance, spawned=touched)
        except NOT_RESCHEDULABLE as exc:
            abort = exc if isinstance(exc, exception.BuildAbortException) else exception.BuildAbortException(
                instance_uuid=uuid, reason=str(exc))
            await self._fail(context, uuid, instance, abort, reschedule=False)
        except Exception as exc:
            if await self._fail(context, uuid, instance, exc, reschedule=True):
                return str(exc)
        return None

    async def _abandon(self, context: dict[str, Any], uuid: str, instance: dict[str, Any] | None,
                       spawned: bool) -> None:
        """The instance was deleted under us: undo whatever we did; terminate (if cast) finishes the delete."""
        LOG.info("build of %s on %s interrupted (deleted while building)", uuid, self.host)
        if spawned and instance is not None:
            await self.driver.destroy(instance, network_info=[])
        async with self.db.write() as conn:
            current = await instances.get_plain(conn, uuid)
            if current is None or current["deleted"] or current["task_state"] == task_states.DELETING:
                await placement.remove_allocations(conn, uuid)
            await actions.event_finish(conn, context, uuid, BUILD_EVENT,
                                       error=exception.InstanceDeleted(instance_uuid=uuid))

    async def _fail(self, context: dict[str, Any], uuid: str, instance: dict[str, Any], error: Exception,
                    reschedule: bool) -> bool:
        """Clean up a failed build; True when the instance went back to the conductor for a retry.

        Only failures another host could fix count against this host (a refused image is the request's
        fault): they feed the BuildFailureWeigher and, past ``[compute]
        consecutive_build_service_disable_threshold`` in a row, disable this compute service.
        """
        LOG.warning("build of %s on %s failed: %s", uuid, self.host, error)
        if reschedule:
            self.failed_builds += 1
        try:
            await self.driver.destroy(instance, network_info=[])
        except Exception:
            LOG.exception("cleanup of %s on %s failed", uuid, self.host)
        disabled = False
        async with self.db.write() as conn:
            await placement.remove_allocations(conn, uuid)
            await actions.event_finish(conn, context, uuid, BUILD_EVENT, error=error)
            moved = False
            if reschedule:
                moved = await instances.update_instance(
                    conn, uuid, {"task_state": task_states.SCHEDULING, "host": None, "node": None},
                    expected_vm_state=(states.BUILDING,),
                    expected_task_state=(task_states.NETWORKING, task_states.BLOCK_DEVICE_MAPPING,
                                         task_states.SPAWNING))
                if moved:  # the conductor that receives the cast takes it (or a recovery pass, should it be lost)
                    await builds.release(conn, uuid)
            elif await instances.update_instance(conn, uuid, {"vm_state": states.ERROR, "task_state": None},
                                                 expected_vm_state=(states.BUILDING,)):
                await actions.add_fault(conn, uuid, error, host=self.host)
            threshold = self.conf.compute.consecutive_build_service_disable_threshold
            if reschedule and threshold and self.failed_builds >= threshold:
                disabled = await services_db.auto_disable(
                    conn, self.service_id, f"Auto-disabled due to {self.failed_builds} build failures")
            await self._report_stats(conn)
        if reschedule:  # schedulers weigh this failure from their next request, not their next re-read
            await self._send_stats(context)
        if disabled:
            LOG.warning("compute service of %s disabled after %d build failures in a row", self.host,
                        self.failed_builds)
            await self.scheduler.refresh_hosts(context)
        return moved

    # --- delete ----------------------------------------------------------------------------------------
    async def terminate_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        async with self.locks(instance_uuid):
            async with self.db.write() as conn:
                instance = await instances.get_plain(conn, instance_uuid)
                if instance is None or instance["deleted"]:
                    await placement.remove_allocations(conn, instance_uuid)
                    return
                await actions.event_start(conn, context, instance_uuid, TERMINATE_EVENT, host=self.host)
            error: Exception | None = None
            try:
                await self.driver.destroy(self.driver_instance(instance), network_info=[])
            except Exception as exc:
                error = exc
            async with self.db.write() as conn:
                if error is None:
                    await placement.remove_allocations(conn, instance_uuid)
                    await instances.soft_delete(conn, instance_uuid)
                    if self.node:  # none yet while the hypervisor has never answered
                        await self._report_stats(conn)
                else:
                    await instances.update_instance(conn, instance_uuid, {"vm_state": states.ERROR,
                                                                          "task_state": None})
                    await actions.add_fault(conn, instance_uuid, error, host=self.host)
                await actions.event_finish(conn, context, instance_uuid, TERMINATE_EVENT, error=error)

    # --- power actions (casts from the API; the instance is already in the action's task_state) ----------
    async def stop_instance(self, context: dict[str, Any], instance_uuid: str, clean_shutdown: bool = True) -> None:
        """Power the guest off: an ACPI shutdown for up to the image's ``os_shutdown_timeout`` (or ``[DEFAULT]
        shutdown_timeout``), then forcibly. ``stopped`` after."""
        async def run(instance: dict[str, Any]) -> Outcome:
            timeout, retry_interval = self._power_off_values(instance, clean_shutdown)
            await self.driver.power_off(instance, timeout, retry_interval)
            return {"vm_state": states.STOPPED, "power_state": await self._power_state(instance)}

        await self._power_action(context, instance_uuid, "compute_stop_instance", (task_states.POWERING_OFF,), run)

    async def start_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        async def run(instance: dict[str, Any]) -> Outcome:
            await self.driver.power_on(instance)
            return {"vm_state": states.ACTIVE, "power_state": await self._power_state(instance)}

        await self._power_action(context, instance_uuid, "compute_start_instance", (task_states.POWERING_ON,), run)

    async def reboot_instance(self, context: dict[str, Any], instance_uuid: str, reboot_type: str = "SOFT") -> None:
        """Nova's steps: ``reboot_pending`` (the host has it), ``reboot_started`` (the driver has it), then
        active. A failed reboot leaves the instance active if its guest still runs, otherwise in ERROR."""
        soft = reboot_type == "SOFT"
        family = startup.SOFT_REBOOT_TASKS if soft else startup.HARD_REBOOT_TASKS
        pending = task_states.REBOOT_PENDING if soft else task_states.REBOOT_PENDING_HARD
        started = task_states.REBOOT_STARTED if soft else task_states.REBOOT_STARTED_HARD

        async def run(instance: dict[str, Any]) -> Outcome:
            current = await self._power_state(instance)
            await self._advance(instance_uuid, {"task_state": pending, "power_state": current}, family)
            if current != power_state.RUNNING:
                LOG.warning("rebooting %s whose guest is not running (power state %s)", instance_uuid, current)
            await self._advance(instance_uuid, {"task_state": started}, family)
            await self.driver.reboot(instance, "SOFT" if soft else "HARD")
            return {"vm_state": self._after_reboot(instance), "power_state": await self._power_state(instance)}

        async def failed(instance: dict[str, Any], _error: Exception) -> Outcome:
            current = await self._power_state(instance)
            if current == power_state.RUNNING:
                LOG.warning("reboot of %s failed but its guest runs", instance_uuid)
                return {"vm_state": self._after_reboot(instance), "power_state": current}
            return {"vm_state": states.ERROR, "power_state": current}

        await self._power_action(context, instance_uuid, "compute_reboot_instance", family, run, failed)

    async def snapshot_instance(self, context: dict[str, Any], instance_uuid: str, image_id: str) -> None:
        """createImage: the driver copies the root disk and uploads it into the queued image ``image_id``,
        moving the task_state through Nova's ``image_snapshot`` → ``image_pending_upload`` →
        ``image_uploading``; the instance keeps its vm_state. A failed snapshot deletes the image, as Nova's does."""
        family = SNAPSHOT_TASKS

        async def update_task_state(task_state: str, expected: str) -> None:
            await self._advance(instance_uuid, {"task_state": task_state}, (expected,))

        async def run(instance: dict[str, Any]) -> Outcome:
            await update_task_state(task_states.IMAGE_SNAPSHOT, task_states.IMAGE_SNAPSHOT_PENDING)
            await self.driver.snapshot(context, instance, image_id, update_task_state)
            return {"power_state": await self._power_state(instance)}

        async def failed(_instance: dict[str, Any], _error: Exception) -> Outcome:
            if self.images is not None:
                await self.images.delete(context, image_id)
            return {}

        await self._power_action(context, instance_uuid, "compute_snapshot_instance", family, run, failed)

    @staticmethod
    def _after_reboot(instance: dict[str, Any]) -> str:
        return states.RESCUED if instance["vm_state"] == states.RESCUED else states.ACTIVE

    async def pause_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        async def run(instance: dict[str, Any]) -> Outcome:
            self._require(self.driver.capabilities.supports_pause)
            await self.driver.pause(instance)
            return {"vm_state": states.PAUSED, "power_state": await self._power_state(instance)}

        await self._power_action(context, instance_uuid, "compute_pause_instance", (task_states.PAUSING,), run)

    async def unpause_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        async def run(instance: dict[str, Any]) -> Outcome:
            self._require(self.driver.capabilities.supports_pause)
            await self.driver.unpause(instance)
            return {"vm_state": states.ACTIVE, "power_state": await self._power_state(instance)}

        await self._power_action(context, instance_uuid, "compute_unpause_instance", (task_states.UNPAUSING,), run)

    async def suspend_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        """Save the guest's memory to disk. A failure the driver did not plan for leaves the instance in ERROR,
        as Nova's (the guest may be half saved); a driver that cannot suspend leaves it as it was."""
        async def run(instance: dict[str, Any]) -> Outcome:
            self._require(self.driver.capabilities.supports_suspend)
            await self.driver.suspend(instance)
            return {"vm_state": states.SUSPENDED, "power_state": await self._power_state(instance)}

        await self._power_action(context, instance_uuid, "compute_suspend_instance", (task_states.SUSPENDING,), run,
                                 self._error_unless_unsupported)

    async def resume_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        async def run(instance: dict[str, Any]) -> Outcome:
            self._require(self.driver.capabilities.supports_suspend)
            await self.driver.resume(instance)
            return {"vm_state": states.ACTIVE, "power_state": await self._power_state(instance)}

        await self._power_action(context, instance_uuid, "compute_resume_instance", (task_states.RESUMING,), run,
                                 self._error_unless_unsupported)

    async def get_console_output(self, context: dict[str, Any], instance_uuid: str, tail_length: int | None = None
                                 ) -> str:
        """The guest's console log, its last ``tail_length`` lines (an RPC call, as Nova's)."""
        async with self.db.read() as conn:
            row = await instances.get_plain(conn, instance_uuid)
        if row is None or row["deleted"]:
            raise exception.InstanceNotFound(instance_id=instance_uuid)
        self._require(self.driver.capabilities.supports_console_output)
        try:
            output = await self.driver.get_console_output(self.driver_instance(row))
        except NotImplementedError:
            raise NotSupportedByDriver() from None
        return tail(output, tail_length).decode("ascii", "replace")

    async def get_host_uptime(self, context: dict[str, Any]) -> str:
        """The host's ``uptime`` output (an RPC call, as Nova's); a driver without it is the API's 501."""
        try:
            return await self.driver.get_host_uptime()
        except NotImplementedError:
            raise NotSupportedByDriver() from None

    @staticmethod
    def _require(capability: bool) -> None:
        if not capability:
            raise NotSupportedByDriver()

    async def _error_unless_unsupported(self, _instance: dict[str, Any], error: Exception) -> Outcome:
        return {} if isinstance(error, NotSupportedByDriver) else {"vm_state": states.ERROR}

    async def _power_action(self, context: dict[str, Any], uuid: str, event: str, expected: tuple[str | None, ...],
                            run: Callable[[dict[str, Any]], Awaitable[Outcome]],
                            failed: Callable[[dict[str, Any], Exception], Awaitable[Outcome]] | None = None) -> None:
        """One power action under the instance's lock: its event, the driver step, then the outcome with a
        compare-and-swap on the action's task states. A failure puts the task_state back (plus what ``failed``
        says), records a fault and fails the event; an instance deleted or taken over meanwhile is left alone."""
        async with self.locks(uuid):
            async with self.db.write() as conn:
                row = await instances.get_plain(conn, uuid)
                if row is None or row["deleted"] or row["task_state"] not in expected:
                    LOG.info("%s of %s skipped: the instance is %s", event, uuid,
                             "gone" if row is None or row["deleted"] else f"in task_state {row['task_state']}")
                    return
                await actions.event_start(conn, context, uuid, event, host=self.host)
            instance = self.driver_instance(row)
            try:
                outcome = await run(instance)
            except UnexpectedTaskState as exc:
                async with self.db.write() as conn:
                    await actions.event_finish(conn, context, uuid, event, error=exc)
                return
            except Exception as exc:
                error = NotSupportedByDriver() if isinstance(exc, NotImplementedError) else exc
                await self._action_failed(context, instance, event, expected, error, failed)
                return
            async with self.db.write() as conn:
                done = await instances.update_instance(conn, uuid, {**outcome, "task_state": None},
                                                       expected_task_state=expected)
                await actions.event_finish(conn, context, uuid, event,
                                           error=None if done else await self._unexpected(conn, uuid, expected))
            LOG.info("%s of %s on %s done", event, uuid, self.host)

    async def _action_failed(self, context: dict[str, Any], instance: dict[str, Any], event: str,
                             expected: tuple[str | None, ...], error: Exception,
                             failed: Callable[[dict[str, Any], Exception], Awaitable[Outcome]] | None) -> None:
        uuid = instance["uuid"]
        LOG.warning("%s of %s on %s failed: %s", event, uuid, self.host, error)
        extra: Outcome = {}
        if failed is not None:
            try:
                extra = await failed(instance, error)
            except Exception:
                LOG.exception("reading the state of %s after its failed %s", uuid, event)
        async with self.db.write() as conn:
            if await instances.update_instance(conn, uuid, {**extra, "task_state": None}, expected_task_state=expected):
                await actions.add_fault(conn, uuid, error, host=self.host)
            await actions.event_finish(conn, context, uuid, event, error=error)

    async def _advance(self, uuid: str, values: dict[str, Any], expected: tuple[str | None, ...]) -> None:
        async with self.db.write() as conn:
            if not await instances.update_instance(conn, uuid, values, expected_task_state=expected):
                raise await self._unexpected(conn, uuid, expected)

    @staticmethod
    async def _unexpected(conn: Any, uuid: str, expected: tuple[str | None, ...]) -> UnexpectedTaskState:
        current = await instances.get_plain(conn, uuid)
        actual = "deleted" if current is None or current["deleted"] else current["task_state"]
        LOG.info("instance %s was taken over (task_state %s) during its action", uuid, actual)
        return UnexpectedTaskState(expected=list(expected), actual=actual)

    async def _power_state(self, instance: dict[str, Any]) -> int:
        try:
            return (await self.driver.get_info(instance)).power_state
        except exception.InstanceNotFound:
            return power_state.NOSTATE

    def _power_off_values(self, instance: dict[str, Any], clean_shutdown: bool) -> tuple[int, int]:
        """Nova's ``_get_power_off_values``: the image's ``os_shutdown_timeout`` (copied to the instance's
        system metadata at boot) or ``[DEFAULT] shutdown_timeout``, and ``[compute] shutdown_retry_interval``."""
        if not clean_shutdown:
            return 0, 0
        timeout = self.conf.shutdown_timeout
        raw = (instance.get("system_metadata") or {}).get("image_os_shutdown_timeout")
        if raw is not None:
            try:
                timeout = max(0, int(raw))
            except (TypeError, ValueError):
                LOG.warning("instance %s: os_shutdown_timeout %r is not a number", instance["uuid"], raw)
        return timeout, self.conf.compute.shutdown_retry_interval


def tail(output: bytes, length: int | None) -> bytes:
    """Nova's ``_tail_log``: the last ``length`` newline-separated pieces (None or -1: all of it, as the API's
    schema documents -1; 0: nothing)."""
    if length is None or length == -1:
        return output
    if length <= 0:
        return b""
    return b"\n".join(output.split(b"\n")[-length:])
