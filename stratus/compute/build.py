"""Nova's ``build_and_run_instance`` on this host: networking, block devices, spawn, active.

Each step is a compare-and-swap on (vm_state building, the previous task_state), so a delete that lands during a
build wins: the build notices at its next step, undoes what it made and stops. A failure another host could fix
gives the claim back and returns the build to the conductor with the remaining alternates; one no host could fix
(a refused image) is ERROR at once.
"""

from __future__ import annotations

import logging
from typing import Any

from stratus import exception
from stratus.compute import config_drive, networking
from stratus.compute.host import ComputeHost
from stratus.db import actions, builds, info_cache, instances, placement
from stratus.db import services as services_db
from stratus.network import neutron
from stratus.objects import states
from stratus.objects.states import power_state, task_states
from stratus.priority import background_turn
from stratus.utils import utcnow

LOG = logging.getLogger(__name__)
BUILD_EVENT = "compute__do_build_and_run_instance"

#: failures no other host could fix: the build goes straight to ERROR, no reschedule
NOT_RESCHEDULABLE = (exception.BuildAbortException, exception.ImageUnacceptable, exception.ImageNotFound,
                     *networking.NOT_RESCHEDULABLE)


class BuildInterrupted(Exception):
    """The instance left the build's expected state (deleted, usually): stop and clean up."""


async def build_and_run_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str,
                                 request_spec: dict[str, Any], alternates: list[dict[str, Any]],
                                 tried_hosts: list[str] | None = None) -> None:
    """Build on this host, at most ``[DEFAULT] max_concurrent_builds`` at once; a failure another host could fix
    goes back to the conductor with the remaining alternates and every host tried so far (``tried_hosts``: those
    before this one)."""
    async with host.locks(instance_uuid):
        if host.build_semaphore is None:
            retry = await _build(host, context, instance_uuid, request_spec)
        else:  # Nova's _build_semaphore: inside the instance's lock, around the whole build
            async with host.build_semaphore:
                retry = await _build(host, context, instance_uuid, request_spec)
    if retry is not None:  # cast after the lock is released
        await host.conductor.build_instances(context, instance_uuid, request_spec, alternates, host.host,
                                             retry, tried_hosts=[*(tried_hosts or []), host.host])


async def _step(host: ComputeHost, uuid: str, values: dict[str, Any], expected: tuple[str | None, ...]) -> None:
    await background_turn()
    async with host.db.write() as conn:
        if not await instances.update_instance(conn, uuid, values, expected_task_state=expected,
                                               expected_vm_state=(states.BUILDING,)):
            raise BuildInterrupted(uuid)


async def _build(host: ComputeHost, context: dict[str, Any], uuid: str, request_spec: dict[str, Any]) -> str | None:
    """Build; returns the reason to reschedule elsewhere, or None when done (active, error or deleted). Each unit
    of work waits for its turn while the API serves requests (stratus/priority.py)."""
    await background_turn()
    async with host.db.write() as conn:
        # the row as the build moves it on (one statement); only when it did not move is it read to say why
        instance = await instances.update_instance_returning(
            conn, uuid, {"task_state": task_states.NETWORKING, "host": host.host,
                         "node": host.node.get("hypervisor_hostname", host.host)},
            expected_task_state=(task_states.SCHEDULING,), expected_vm_state=(states.BUILDING,),
            expected_host=(host.host,))
        if instance is None:
            current = await instances.get_plain(conn, uuid)
            if current is not None and not current["deleted"] and current["host"] != host.host:
                # a cast that waited in this host's queue while it was down: the conductors' recovery pass
                # scheduled the build again elsewhere (conductor/recovery.py), and it is that host's now
                LOG.warning("build of %s cast to %s is no longer this host's (host %s): left alone", uuid,
                            host.host, current["host"])
                return None
        await actions.event_start(conn, context, uuid, BUILD_EVENT, host=host.host)
        # the ports an earlier host of this build made (a reschedule), read in this unit rather than a read of its
        # own; a server that asked for no network (``networks: none``) has none to find
        cached = None
        if instance is not None and host.network is not None:
            cached = ([] if neutron.is_none(request_spec.get("requested_networks"))
                      else await info_cache.get(conn, uuid))
    if instance is None:
        await _abandon(host, context, uuid, None, spawned=False)
        return None
    instance["name"] = host.conf.instance_name_template % instance["id"]
    touched = False  # the driver was asked to do something: destroy undoes it (and is fine if it did nothing)
    driver = host.driver
    network_info: list[dict[str, Any]] = []
    try:
        network_info = await networking.build_networks(host, context, instance, request_spec, cached)
        touched = True
        await driver.prepare_networks_before_block_device_mapping(instance, network_info)
        await _step(host, uuid, {"task_state": task_states.BLOCK_DEVICE_MAPPING}, (task_states.NETWORKING,))
        await driver.prepare_for_spawn(instance)
        await _step(host, uuid, {"task_state": task_states.SPAWNING}, (task_states.BLOCK_DEVICE_MAPPING,))
        image_meta = request_spec.get("image") or {}
        drive = await config_drive.prepare(host.conf, host.db, driver, instance, image_meta,
                                           admin_password=request_spec.get("admin_password"),
                                           injected_files=request_spec.get("personality") or [])
        await background_turn()
        await driver.spawn(instance, image_meta, network_info=network_info, config_drive=drive)
        await networking.wait_for_vif_plugged(host, instance, network_info)
        await background_turn()
        async with host.db.write() as conn:
            done = await instances.update_instance(
                conn, uuid, {"vm_state": states.ACTIVE, "task_state": None, "power_state": power_state.RUNNING,
                             "launched_at": utcnow(), "progress": 0},
                expected_task_state=(task_states.SPAWNING,), expected_vm_state=(states.BUILDING,))
            had_failures = host.failed_builds
            if done:
                await actions.event_finish(conn, context, uuid, BUILD_EVENT)
                host.failed_builds = 0
                if had_failures:  # written now: the schedulers are told just below
                    await host.report_stats(conn)
        if not done:
            raise BuildInterrupted(uuid)
        if had_failures:  # the run of failures is over: schedulers may prefer this host again
            await host.send_stats(context)
        else:  # one write for the builds that end together (ComputeHost.stats_changed)
            host.stats_changed()
        LOG.info("instance %s is active on %s", uuid, host.host)
    except BuildInterrupted:
        await _abandon(host, context, uuid, instance, spawned=touched, network_info=network_info)
    except NOT_RESCHEDULABLE as exc:
        abort = exc if isinstance(exc, exception.BuildAbortException) else exception.BuildAbortException(
            instance_uuid=uuid, reason=str(exc))
        await _fail(host, context, uuid, instance, abort, reschedule=False, network_info=network_info)
    except Exception as exc:
        if await _fail(host, context, uuid, instance, exc, reschedule=True, network_info=network_info):
            return str(exc)
    finally:
        host.instance_events.stop(uuid)
    return None


async def _abandon(host: ComputeHost, context: dict[str, Any], uuid: str, instance: dict[str, Any] | None,
                   spawned: bool, network_info: list[dict[str, Any]] | None = None) -> None:
    """The instance was deleted under us: undo whatever we did (its ports too); terminate (if cast) finishes the
    delete."""
    LOG.info("build of %s on %s interrupted (deleted while building)", uuid, host.host)
    if spawned and instance is not None:
        await host.driver.destroy(instance, network_info=network_info or [])
    if instance is not None:
        await networking.deallocate(host, context, instance)
    async with host.db.write() as conn:
        current = await instances.get_plain(conn, uuid)
        if current is None or current["deleted"] or current["task_state"] == task_states.DELETING:
            await placement.remove_allocations(conn, uuid)
        await actions.event_finish(conn, context, uuid, BUILD_EVENT,
                                   error=exception.InstanceDeleted(instance_uuid=uuid))


async def _fail(host: ComputeHost, context: dict[str, Any], uuid: str, instance: dict[str, Any], error: Exception,
                reschedule: bool, network_info: list[dict[str, Any]] | None = None) -> bool:
    """Clean up a failed build; True when the instance went back to the conductor for a retry.

    Only failures another host could fix count against this host (a refused image is the request's
    fault): they feed the BuildFailureWeigher and, past ``[compute]
    consecutive_build_service_disable_threshold`` in a row, disable this compute service.
    """
    LOG.warning("build of %s on %s failed: %s", uuid, host.host, error)
    if reschedule:
        host.failed_builds += 1
    try:
        await host.driver.destroy(instance, network_info=network_info or [])
    except Exception:
        LOG.exception("cleanup of %s on %s failed", uuid, host.host)
    if not reschedule:  # a reschedule keeps its ports for the next host (the conductor frees them if none is left)
        await networking.deallocate(host, context, instance)
    disabled = False
    async with host.db.write() as conn:
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
            await actions.add_fault(conn, uuid, error, host=host.host)
        threshold = host.conf.compute.consecutive_build_service_disable_threshold
        if reschedule and threshold and host.failed_builds >= threshold:
            disabled = await services_db.auto_disable(
                conn, host.service_id, f"Auto-disabled due to {host.failed_builds} build failures")
        await host.report_stats(conn)
    if reschedule:  # schedulers weigh this failure from their next request, not their next re-read
        await host.send_stats(context)
    if disabled:
        LOG.warning("compute service of %s disabled after %d build failures in a row", host.host,
                    host.failed_builds)
        await host.scheduler.refresh_hosts(context)
    return moved
