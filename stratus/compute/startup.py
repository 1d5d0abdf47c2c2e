"""Start-up reconciliation (Nova's ``_init_instance`` and ``_cleanup_running_deleted_instances``): a compute
agent that restarts finishes or undoes what it was doing, starts nothing twice and leaves no guest behind.

Each instance of the host is judged from its row and the power state the hypervisor reports (one query, one
driver call): an interrupted build goes to ERROR (its ports released as a failed build's), an interrupted rebuild
too, and an interrupted snapshot is cleared; an interrupted move (resize, live migration, shelve, unshelve) is
undone or carried on by the host whose step it is (startup_moves.py); an interrupted delete, stop, start or
reboot is carried out again under the request that asked for it; a transitional state the guest already reached
is settled. The retried actions run in the background, like the casts they replace. Guests the hypervisor runs for
instances that are deleted, unknown or another host's get ``[DEFAULT] running_deleted_instance_action``, here and
periodically.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from stratus import exception
from stratus.compute import delete, evacuate, networking, power, power_sync, startup_moves
from stratus.compute.api import ALLOW_HARD_REBOOT
from stratus.compute.host import ComputeHost
from stratus.compute.power import SOFT_REBOOT_TASKS
from stratus.compute.rebuild import REBUILD_EVENT
from stratus.context import RequestContext
from stratus.db import actions, instances
from stratus.db.models import instances as instances_table
from stratus.objects import states
from stratus.objects.states import power_state, task_states
from stratus.virt.driver import HypervisorUnavailable

LOG = logging.getLogger(__name__)

BUILD_TASKS = (task_states.SCHEDULING, task_states.BLOCK_DEVICE_MAPPING, task_states.NETWORKING,
               task_states.SPAWNING)
#: Nova sets an instance whose rebuild the restart cut short to ERROR, as an interrupted build
REBUILD_TASKS = (task_states.REBUILDING, task_states.REBUILD_BLOCK_DEVICE_MAPPING, task_states.REBUILD_SPAWNING)
#: Nova clears these: the snapshot (or backup) the restart cut short is not taken up again
SNAPSHOT_TASKS = (task_states.IMAGE_SNAPSHOT, task_states.IMAGE_SNAPSHOT_PENDING, task_states.IMAGE_PENDING_UPLOAD,
                  task_states.IMAGE_UPLOADING, task_states.IMAGE_BACKUP)
#: Nova clears these when the guest is running (the request never reached the hypervisor, or it finished)
_CLEAR_IF_RUNNING = (task_states.REBOOT_STARTED, task_states.REBOOT_STARTED_HARD, task_states.REBOOTING_HARD,
                     task_states.REBOOTING, task_states.PAUSING, task_states.UNPAUSING)
#: Stratus: where the guest already is in the state a pause, suspend or resume leads to, the action is done
_REACHED = {task_states.PAUSING: (power_state.PAUSED, states.PAUSED),
            task_states.SUSPENDING: (power_state.SUSPENDED, states.SUSPENDED),
            task_states.RESUMING: (power_state.RUNNING, states.ACTIVE),
            task_states.UNPAUSING: (power_state.RUNNING, states.ACTIVE)}


class BuildInterruptedByRestart(exception.StratusException):
    msg_fmt = "Instance %(instance_uuid)s was building when compute host %(host)s restarted"


class RebuildInterruptedByRestart(exception.StratusException):
    msg_fmt = "Instance %(instance_uuid)s was rebuilding when compute host %(host)s restarted"


async def reconcile(host: ComputeHost) -> list[tuple[str, str]]:
    """The start-up pass: the instances evacuated away from this host (their guests and usage here go; the guests of
    those still being evacuated too), every other instance of the host, then the guests of no live instance of it,
    then a power sync of what is left. Returns (instance uuid, what was done) pairs."""
    done: list[tuple[str, str]] = await evacuate.destroy_evacuated_instances(host)
    evacuating = await startup_moves.evacuations_under_way(host)
    done += evacuating
    observed = await host.driver.list_power_states()
    async with host.db.read() as conn:
        rows = await power_sync.host_instances(conn, host.host, full=True)
    skip = {uuid for uuid, _ in evacuating}
    for row in rows:
        if row["uuid"] in skip:
            continue
        try:
            what = await init_instance(host, row, observed.get(row["uuid"], power_state.NOSTATE))
        except HypervisorUnavailable:
            raise
        except Exception:
            LOG.exception("start-up handling of %s on %s failed", row["uuid"], host.host)
            what = "failed"
        if what:
            done.append((row["uuid"], what))
    done += await startup_moves.reconcile_migrations(host)
    done += await running_deleted(host, list(observed))
    if rows:  # an empty host (a new one, most of a simulated fleet) has nothing to sync
        context = RequestContext.admin().to_dict()
        done += [(s.uuid, f"sync: {s.action or 'power state'}") for s in await power_sync.sync_host(host, context)]
    return done


def reboot_type(task_state: str | None, current: int) -> str:
    """Nova's ``get_reboot_type``: a guest that is not running can only be rebooted HARD."""
    return "SOFT" if current == power_state.RUNNING and task_state in SOFT_REBOOT_TASKS else "HARD"


def retry_reboot(vm_state: str, task_state: str | None, current: int) -> bool:
    """Nova's ``_retry_reboot``: a reboot still pending, or started with the guest not running."""
    pending_soft = task_state == task_states.REBOOT_PENDING and vm_state == states.ACTIVE
    pending_hard = task_state == task_states.REBOOT_PENDING_HARD and vm_state in ALLOW_HARD_REBOOT
    started_not_running = (task_state in (task_states.REBOOTING, task_states.REBOOTING_HARD,
                                          task_states.REBOOT_STARTED, task_states.REBOOT_STARTED_HARD)
                           and current != power_state.RUNNING)
    return pending_soft or pending_hard or started_not_running


async def init_instance(host: ComputeHost, row: dict[str, Any], current: int) -> str | None:
    """One instance at start-up (Nova's ``_init_instance`` order); what was done, or None."""
    uuid, vm_state, task = row["uuid"], row["vm_state"], row["task_state"]
    if vm_state == states.SOFT_DELETED or (vm_state == states.ERROR and task not in (task_states.DELETING,
                                                                                   task_states.RESIZE_MIGRATING)):
        return None
    if startup_moves.handles(row):
        return await startup_moves.init_moving_instance(host, row, current)
    if vm_state == states.BUILDING or task in BUILD_TASKS:
        return await _error_interrupted_build(host, row)
    if task in REBUILD_TASKS:
        return await _error_interrupted_rebuild(host, row)
    if task in SNAPSHOT_TASKS:
        LOG.info("instance %s was in %s when %s stopped: the snapshot is not taken up again", uuid, task, host.host)
        return "cleared" if await _set(host, uuid, {"task_state": None}, (task,)) else None
    if task == task_states.DELETING:
        LOG.info("instance %s was being deleted when %s stopped: deleting it now", uuid, host.host)
        host.dispatch(delete.terminate_instance(host, await _context_of(host, uuid, "delete"), uuid))
        return "delete"
    if retry_reboot(vm_state, task, current):
        kind = reboot_type(task, current)
        expected: tuple[str | None, ...] = (task,)
        if task in SOFT_REBOOT_TASKS and kind == "HARD":  # a soft reboot that got the guest down became HARD
            if not await _set(host, uuid, {"task_state": task_states.REBOOT_PENDING_HARD}, expected):
                return None
        LOG.info("instance %s was rebooting (%s, power state %s): rebooting it %s", uuid, task, current, kind)
        host.dispatch(power.reboot_instance(host, await _context_of(host, uuid, "reboot"), uuid, kind))
        return f"reboot {kind}"
    if current == power_state.RUNNING and task in _CLEAR_IF_RUNNING:
        LOG.warning("instance %s in %s at start-up with its guest running: clearing the task", uuid, task)
        return "cleared" if await _set(host, uuid, {"task_state": None, "vm_state": states.ACTIVE},
                                       (task,)) else None
    if current == power_state.PAUSED and task == task_states.UNPAUSING:
        host.dispatch(power.unpause_instance(host, await _context_of(host, uuid, "unpause"), uuid))
        return "unpause"
    if task == task_states.POWERING_OFF:
        host.dispatch(power.stop_instance(host, await _context_of(host, uuid, "stop"), uuid))
        return "stop"
    if task == task_states.POWERING_ON:
        host.dispatch(power.start_instance(host, await _context_of(host, uuid, "start"), uuid))
        return "start"
    if task == task_states.RESUMING and current == power_state.SUSPENDED:
        host.dispatch(power.resume_instance(host, await _context_of(host, uuid, "resume"), uuid))
        return "resume"
    if task in _REACHED:
        # Nova leaves these set forever; the guest tells whether the action happened
        target_power, target_vm = _REACHED[task]
        values: dict[str, Any] = {"task_state": None, "power_state": current}
        if current == target_power:
            values["vm_state"] = target_vm
        return f"settled {task}" if await _set(host, uuid, values, (task,)) else None
    if task is not None:
        return None
    if (row["power_state"] == power_state.RUNNING and current != power_state.RUNNING
            and host.conf.resume_guests_state_on_host_boot):
        return await _resume_guest(host, row)
    return None


async def _set(host: ComputeHost, uuid: str, values: dict[str, Any], expected: tuple[str | None, ...]) -> bool:
    async with host.db.write() as conn:
        return await instances.update_instance(conn, uuid, values, expected_task_state=expected)


async def _context_of(host: ComputeHost, uuid: str, action: str) -> dict[str, Any]:
    """An admin context under the request id of the instance's last ``action``, so the retried step's event joins
    the action the user started."""
    return await startup_moves.context_of(host, uuid, (action,))


async def _error_interrupted(host: ComputeHost, row: dict[str, Any], error: exception.StratusException,
                             action: str, event: str) -> dict[str, Any] | None:
    """Nova's ``_init_instance`` for a build or rebuild cut short: ERROR, the cause as its fault, the step's event
    finished in error under the user's action; the context used, or None if the instance moved on meanwhile."""
    uuid = row["uuid"]
    LOG.warning("%s: setting it to ERROR", error.message)
    context = await _context_of(host, uuid, action)
    async with host.db.write() as conn:
        if not await instances.update_instance(conn, uuid, {"vm_state": states.ERROR, "task_state": None},
                                               expected_vm_state=(row["vm_state"],),
                                               expected_task_state=(row["task_state"],)):
            return None
        await actions.add_fault(conn, uuid, error, host=host.host, code=500)
        await actions.event_finish(conn, context, uuid, event, error=error)
    return context


async def _error_interrupted_build(host: ComputeHost, row: dict[str, Any]) -> str | None:
    error = BuildInterruptedByRestart(instance_uuid=row["uuid"], host=host.host)
    context = await _error_interrupted(host, row, error, "create", "compute__do_build_and_run_instance")
    if context is None:
        return None
    # its ports as a failed build's (the user's kept, unbound): in the background, the Networking service may not
    # answer yet while this host starts
    host.dispatch(networking.release_failed_build(host, context, row["uuid"]))
    return "error"


async def _error_interrupted_rebuild(host: ComputeHost, row: dict[str, Any]) -> str | None:
    error = RebuildInterruptedByRestart(instance_uuid=row["uuid"], host=host.host)
    return "error" if await _error_interrupted(host, row, error, "rebuild", REBUILD_EVENT) is not None else None


async def _resume_guest(host: ComputeHost, row: dict[str, Any]) -> str:
    """``[DEFAULT] resume_guests_state_on_host_boot``: start the guest of an instance that was running."""
    uuid = row["uuid"]
    LOG.info("starting the guest of %s again after the restart of %s", uuid, host.host)
    try:
        await host.driver.power_on(host.driver_instance(row))
    except NotImplementedError:
        LOG.warning("the driver of %s cannot start guests: %s left as it is", host.host, uuid)
        return "resume not supported"
    except HypervisorUnavailable:
        raise
    except Exception as exc:
        LOG.warning("starting the guest of %s failed: %s; setting it to ERROR", uuid, exc)
        async with host.db.write() as conn:
            if await instances.update_instance(conn, uuid, {"vm_state": states.ERROR}, expected_task_state=(None,)):
                await actions.add_fault(conn, uuid, exc, host=host.host)
        return "error"
    return "resumed"


async def running_deleted(host: ComputeHost, guests: list[str] | None = None) -> list[tuple[str, str]]:
    """Guests of no live instance of this host (deleted, unknown, or another host's): ``[DEFAULT]
    running_deleted_instance_action`` (reap: destroy with disks; shutdown: power off; log; noop). ``guests``: the
    uuids the hypervisor reported, if already asked."""
    action = host.conf.running_deleted_instance_action
    if action == "noop":
        return []
    uuids = await host.driver.list_instance_uuids() if guests is None else guests
    if not uuids:
        return []
    c = instances_table.c
    async with host.db.read() as conn:
        known = {r.uuid: r for r in await conn.execute(
            select(c.uuid, c.id, c.host, c.deleted).where(c.uuid.in_(uuids)))}
    done = []
    for uuid in uuids:
        row = known.get(uuid)
        if (row is not None and not row.deleted and row.host == host.host) or host.locks.held(uuid):
            continue
        why = "unknown" if row is None else "deleted" if row.deleted else f"on host {row.host}"
        instance = {"uuid": uuid, "name": "" if row is None else host.conf.instance_name_template % row.id}
        try:
            if action == "reap":
                LOG.info("destroying guest %s on %s: its instance is %s", uuid, host.host, why)
                await host.driver.destroy(instance, network_info=[], destroy_disks=True)
            elif action == "shutdown":
                LOG.info("powering off guest %s on %s: its instance is %s", uuid, host.host, why)
                await host.driver.power_off(instance)
            else:
                LOG.warning("guest %s runs on %s but its instance is %s", uuid, host.host, why)
        except exception.InstanceNotFound:
            continue
        except HypervisorUnavailable:
            raise
        except Exception as exc:
            LOG.warning("%s of guest %s on %s failed: %s", action, uuid, host.host, exc)
            continue
        done.append((uuid, action))
    return done
