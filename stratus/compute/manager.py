"""The compute agent of one host: builds and terminates instances through its virt driver.

Every state change is a compare-and-swap on (vm_state, task_state), so a delete that lands while a build is
under way wins: the build notices at its next step, destroys what it made and gives back its claim.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from oslo_config import cfg

from stratus import exception
from stratus.compute import resource_tracker
from stratus.conductor.rpcapi import ConductorAPI
from stratus.db import actions, instances, placement
from stratus.db import services as services_db
from stratus.db.engine import Database
from stratus.image.client import ImageClient
from stratus.objects import states
from stratus.objects.states import power_state, task_states
from stratus.rpc.transport import Transport
from stratus.scheduler.rpcapi import SchedulerAPI
from stratus.utils import utcnow
from stratus.virt.driver import ComputeDriver

LOG = logging.getLogger(__name__)
BUILD_EVENT = "compute__do_build_and_run_instance"
TERMINATE_EVENT = "compute_terminate_instance"


#: failures no other host could fix: the build goes straight to ERROR, no reschedule
NOT_RESCHEDULABLE = (exception.BuildAbortException, exception.ImageUnacceptable, exception.ImageNotFound)


class BuildInterrupted(Exception):
    """The instance left the build's expected state (deleted, usually): stop and clean up."""


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
        self._locks: dict[str, asyncio.Lock] = {}
        #: consecutive failed builds, reported in the node's stats for the BuildFailureWeigher; a success resets it
        self.failed_builds = 0

    def _lock(self, uuid: str) -> asyncio.Lock:
        return self._locks.setdefault(uuid, asyncio.Lock())

    async def init_host(self) -> None:
        await self.driver.init_host(self.host)
        async with self.db.write() as conn:
            service = await services_db.register(conn, self.host, "nova-compute", "compute")
            self.service_id = service["id"]
            self.node = await resource_tracker.update_available_resource(conn, self.conf, self.driver,
                                                                         self.service_id, self.host,
                                                                         self.failed_builds)

    async def periodic_tasks(self) -> None:
        """Level-triggered upkeep: report the hypervisor's resources again (the heartbeat is batched by the
        service runner). Unchanged inventory writes nothing."""
        async with self.db.write() as conn:
            self.node = await resource_tracker.update_available_resource(conn, self.conf, self.driver,
                                                                         self.service_id, self.host,
                                                                         self.failed_builds)

    # --- build -----------------------------------------------------------------------------------------
    async def build_and_run_instance(self, context: dict[str, Any], instance_uuid: str,
                                     request_spec: dict[str, Any], selection: dict[str, Any],
                                     alternates: list[dict[str, Any]], tried_hosts: list[str] | None = None
                                     ) -> None:
        """Build on this host; a failure another host could fix goes back to the conductor with the remaining
        alternates and every host tried so far (``tried_hosts``: those before this one)."""
        async with self._lock(instance_uuid):
            try:
                retry = await self._build(context, instance_uuid, request_spec)
            finally:
                self._locks.pop(instance_uuid, None)
        if retry is not None:  # cast after the lock is released
            await self.conductor.build_instances(context, instance_uuid, request_spec, alternates, self.host,
                                                 retry, tried_hosts=[*(tried_hosts or []), self.host])

    async def _step(self, uuid: str, values: dict[str, Any], expected: tuple[str | None, ...]) -> None:
        async with self.db.write() as conn:
            if not await instances.update_instance(conn, uuid, values, expected_task_state=expected,
                                                   expected_vm_state=(states.BUILDING,)):
                raise BuildInterrupted(uuid)

    async def _build(self, context: dict[str, Any], uuid: str, request_spec: dict[str, Any]) -> str | None:
        """Build; returns the reason to reschedule elsewhere, or None when done (active, error or deleted)."""
        async with self.db.write() as conn:
            instance = await instances.get_plain(conn, uuid)
            await actions.event_start(conn, context, uuid, BUILD_EVENT, host=self.host)
            moved = instance is not None and await instances.update_instance(
                conn, uuid, {"task_state": task_states.NETWORKING, "host": self.host,
                             "node": self.node["hypervisor_hostname"]},
                expected_task_state=(task_states.SCHEDULING,), expected_vm_state=(states.BUILDING,))
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
            await self.driver.spawn(instance, image_meta, network_info=[])
            async with self.db.write() as conn:
                done = await instances.update_instance(
                    conn, uuid, {"vm_state": states.ACTIVE, "task_state": None, "power_state": power_state.RUNNING,
                                 "launched_at": utcnow(), "progress": 0},
                    expected_task_state=(task_states.SPAWNING,), expected_vm_state=(states.BUILDING,))
                had_failures = self.failed_builds
                if done:
                    await actions.event_finish(conn, context, uuid, BUILD_EVENT)
                    self.failed_builds = 0
                    self.node = await resource_tracker.report_stats(conn, self.node, self.failed_builds)
            if not done:
                raise BuildInterrupted(uuid)
            if had_failures:  # the run of failures is over: schedulers may prefer this host again
                await self.scheduler.update_host_stats(context, self.node["hypervisor_hostname"], self.node["stats"])
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
            elif await instances.update_instance(conn, uuid, {"vm_state": states.ERROR, "task_state": None},
                                                 expected_vm_state=(states.BUILDING,)):
                await actions.add_fault(conn, uuid, error, host=self.host)
            threshold = self.conf.compute.consecutive_build_service_disable_threshold
            if reschedule and threshold and self.failed_builds >= threshold:
                disabled = await services_db.auto_disable(
                    conn, self.service_id, f"Auto-disabled due to {self.failed_builds} build failures")
            self.node = await resource_tracker.report_stats(conn, self.node, self.failed_builds)
        if reschedule:  # schedulers weigh this failure from their next request, not their next re-read
            await self.scheduler.update_host_stats(context, self.node["hypervisor_hostname"], self.node["stats"])
        if disabled:
            LOG.warning("compute service of %s disabled after %d build failures in a row", self.host,
                        self.failed_builds)
            await self.scheduler.refresh_hosts(context)
        return moved

    # --- delete ----------------------------------------------------------------------------------------
    async def terminate_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        async with self._lock(instance_uuid):
            async with self.db.write() as conn:
                instance = await instances.get_plain(conn, instance_uuid)
                if instance is None or instance["deleted"]:
                    await placement.remove_allocations(conn, instance_uuid)
                    return
                await actions.event_start(conn, context, instance_uuid, TERMINATE_EVENT, host=self.host)
            error: Exception | None = None
            try:
                await self.driver.destroy(instance, network_info=[])
            except Exception as exc:
                error = exc
            async with self.db.write() as conn:
                if error is None:
                    await placement.remove_allocations(conn, instance_uuid)
                    await instances.soft_delete(conn, instance_uuid)
                    self.node = await resource_tracker.report_stats(conn, self.node, self.failed_builds)
                else:
                    await instances.update_instance(conn, instance_uuid, {"vm_state": states.ERROR,
                                                                          "task_state": None})
                    await actions.add_fault(conn, instance_uuid, error, host=self.host)
                await actions.event_finish(conn, context, instance_uuid, TERMINATE_EVENT, error=error)
            self._locks.pop(instance_uuid, None)
