"""Start-up reconciliation of the moves a restart cut short (Nova's ``_init_instance`` for ``resize_migrating``,
``resize_prep`` and ``migrating``; the rest Stratus's own, level-triggered: nothing is left in a move's
task_state).

Each instance of this host in a move's task_state is judged from its row, its migration record and the
allocations (one row each), and the move is either undone or carried on by the host whose step it is:

- ``resize_prep`` (the source, before any host acted) and ``resize_migrating`` (the source, handing its disks
  over): undone. The source's guest back with the old flavor (Nova's ``finish_revert_migration``, powered on
  unless the instance was stopped), the destination's claim given back and the source's usage the instance's
  again, the migration ``error``, task_state None;
- ``resize_migrated`` (the destination, disks arrived): ``finish_resize`` carried out again;
- ``resize_finish`` (the destination, starting the guest): undone as a failed finish is: the guest here
  destroyed, the instance the source's again (``resize_reverting``), ``finish_revert_resize`` cast to the source;
- ``resize_reverting``: the step still pending carried out again (the destination's ``revert_resize`` while its
  migration still holds the source's usage, else the source's ``finish_revert_resize``);
- ``migrating`` (a live migration): on its source, rolled back as Nova's ``_reset_live_migration`` (migration
  ``error``, task_state None, the guest still here) with the destination's claim given back and its leftovers
  dropped (``rollback_live_migration_at_destination``); on its destination after the hand-over
  (``post-migrating``), ``post_live_migration_at_destination`` carried out again;
- ``shelving*``: undone as a failed shelve is (the queued ``<name>-shelved`` image deleted, the guest started
  again if the server was active); ``shelving_offloading`` and the ``unshelving`` of a shelved server carried out
  again; an offloaded server whose unshelve spawn was cut short (``spawning``) left offloaded as a failed unshelve.

And per migration record of this host: a confirm of a resize whose source this is (``confirming``) is carried out
again, and so is the cast of ``finish_resize`` to the destination of a resize this source had handed over
(``post-migrating``, the instance still ``resize_migrated``: the source may have died before it cast); an evacuation
away from this host still under way (``accepted``, ``pre-migrating``: the instance is still this host's in the
database) has its guest here destroyed (Nova's ``_destroy_evacuated_instances``: never the same server running on
two hosts) and its instance left to the evacuation, not judged here; once the evacuation is ``done`` its usage here
goes and its migration is ``completed``, as at a start-up after it. An evacuation to this host that the restart cut
short (its cast lost or its spawn interrupted) ends as a failed one: ERROR on its source with the fault, the claim
here given back, the migration ``failed``. Every undo finishes the user's action's open events in error and records
the fault ``Instance <uuid> was in task_state <state> when compute host <host> restarted``; a step carried out again
records its own event under the user's action. Steps on another host are cast to it, retried while it does not
listen yet (the hosts of one process start one after the other).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sqlalchemy import select

from stratus import exception
from stratus.compute import evacuate, live_migration, networking, resize, shelve
from stratus.compute.host import ComputeHost
from stratus.compute.instance_action import power_state_of
from stratus.compute.rpcapi import ComputeAPI
from stratus.context import RequestContext
from stratus.db import actions, instances, placement
from stratus.db import migration_records as records
from stratus.db.models import instance_actions, instance_actions_events, resource_providers
from stratus.objects import states
from stratus.objects.states import power_state, task_states
from stratus.virt.driver import HypervisorUnavailable

LOG = logging.getLogger(__name__)

RESIZE_TYPES = (records.RESIZE, records.MIGRATION)
_RESIZE_ACTIONS = ("resize", "migrate")
SHELVING_TASKS = (task_states.SHELVING, task_states.SHELVING_IMAGE_PENDING_UPLOAD,
                  task_states.SHELVING_IMAGE_UPLOADING)
#: the task states this module judges (with an offloaded server's unshelve ``spawning``)
MOVE_TASKS = (task_states.RESIZE_PREP, task_states.RESIZE_MIGRATING, task_states.RESIZE_MIGRATED,
              task_states.RESIZE_FINISH, task_states.RESIZE_REVERTING, task_states.MIGRATING,
              *SHELVING_TASKS, task_states.SHELVING_OFFLOADING, task_states.UNSHELVING)
#: seconds a cast to another host is retried while that host does not listen yet
CAST_PATIENCE = 60.0
_CAST_RETRY = 0.2
#: an evacuation away from this host still under way at start-up: seconds between two looks at its record
EVACUATION_POLL = 2.0
_EVACUATING = ("accepted", "pre-migrating")


class MoveInterruptedByRestart(exception.StratusException):
    msg_fmt = "Instance %(instance_uuid)s was in task_state %(task_state)s when compute host %(host)s restarted"


def handles(row: dict[str, Any]) -> bool:
    """Whether the instance is in a move this module judges."""
    return row["task_state"] in MOVE_TASKS or (row["vm_state"] == states.SHELVED_OFFLOADED
                                               and row["task_state"] == task_states.SPAWNING)



async def _destroy_leftover(host: ComputeHost, row: dict[str, Any], what: str) -> None:
    """The guest a cut-short step left on this host, destroyed; ``what`` (with the instance and host for its two
    ``%s``) names it in the log if that fails. A hypervisor that does not answer stops the reconciliation (it is
    tried again when the hypervisor is back); any other failure is logged and the step goes on."""
    try:
        await host.driver.destroy(host.driver_instance(row), network_info=[])
    except HypervisorUnavailable:
        raise
    except Exception:
        LOG.exception(what, row["uuid"], host.host)

async def context_of(host: ComputeHost, uuid: str, names: tuple[str, ...]) -> dict[str, Any]:
    """An admin context under the request id of the instance's newest action of one of ``names``, so what the
    start-up records joins the action the user started."""
    context = RequestContext.admin()
    async with host.db.read() as conn:
        row = (await conn.execute(select(instance_actions.c.request_id).where(
            instance_actions.c.instance_uuid == uuid, instance_actions.c.action.in_(names))
            .order_by(instance_actions.c.id.desc()).limit(1))).first()
    if row is not None:
        context.request_id = row[0]
    return context.to_dict()


async def finish_open_events(conn: Any, context: dict[str, Any], uuid: str, error: Exception) -> None:
    """Every event of the context's action left open by the agent that stopped, finished in error."""
    a, e = instance_actions.c, instance_actions_events.c
    action_id = (select(a.id).where(a.instance_uuid == uuid, a.request_id == context["request_id"])
                 .order_by(a.id.desc()).limit(1).scalar_subquery())
    names = [r[0] for r in await conn.execute(select(e.event).where(e.action_id == action_id,
                                                                    e.finish_time.is_(None)))]
    for name in names:
        await actions.event_finish(conn, context, uuid, name, error=error)


async def _migration(host: ComputeHost, uuid: str, types: tuple[str, ...],
                     statuses: tuple[str, ...] | None = None) -> dict[str, Any] | None:
    async with host.db.read() as conn:
        if statuses is not None:
            return await records.latest_for_instance(conn, uuid, statuses, types)
        found = [m for m in await records.in_progress_for_instance(conn, uuid) if m["migration_type"] in types]
    return found[-1] if found else None


async def restore_source_usage(conn: Any, row: dict[str, Any], migration: dict[str, Any] | None) -> None:
    """Inside the caller's transaction: the instance's usage on its own node only. What the migration held (the
    source's usage) is the instance's again and any claim made for it elsewhere goes; a migration that held
    nothing yet (the move stopped before the hand-over) leaves the instance its allocation on its node."""
    if migration is not None and await placement.allocations_for_consumer(conn, migration["uuid"]):
        await placement.remove_allocations(conn, row["uuid"])
        await placement.move_allocations(conn, migration["uuid"], row["uuid"], row["project_id"], row["user_id"])
        return
    own = (await conn.execute(select(resource_providers.c.id).where(
        resource_providers.c.name == row["node"]))).scalar()
    held = await placement.allocations_for_consumer(conn, row["uuid"])
    await placement.remove_allocations_on(conn, row["uuid"], [p for p in held if p != own])


def cast_later(host: ComputeHost, what: str, send: Callable[[], Awaitable[None]]) -> None:
    """A cast to another host, in the background, retried while that host does not listen yet."""

    async def retrying() -> None:
        deadline = asyncio.get_running_loop().time() + CAST_PATIENCE
        while True:
            try:
                await send()
                return
            except exception.MessagingTimeout:
                if asyncio.get_running_loop().time() > deadline:
                    LOG.error("start-up of %s: %s never reached its host", host.host, what)
                    return
                await asyncio.sleep(_CAST_RETRY)

    host.dispatch(retrying())


def _revert_on_source_after(host: ComputeHost, context: dict[str, Any], uuid: str, migration: dict[str, Any],
                            step: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None]:
    """A destination's step carried out again whose end casts ``finish_revert_resize`` to the source: that cast
    retried if the source does not listen yet (the step's compare-and-swaps make a second one a no-op)."""

    async def run() -> None:
        try:
            await step
        except exception.MessagingTimeout:
            cast_later(host, f"finish_revert_resize of {uuid}", lambda: ComputeAPI(host.transport)
                       .finish_revert_resize(context, migration["source_compute"], uuid, migration["id"]))

    return run()


async def init_moving_instance(host: ComputeHost, row: dict[str, Any], current: int) -> str | None:
    """One instance of this host in a move (see the module's docstring); what was done, or None."""
    task = row["task_state"]
    if task == task_states.SPAWNING:
        return await _unshelve_spawn_interrupted(host, row)
    if task in (task_states.RESIZE_PREP, task_states.RESIZE_MIGRATING):
        return await _undo_resize_on_source(host, row)
    if task == task_states.RESIZE_MIGRATED:
        return await _finish_resize_again(host, row)
    if task == task_states.RESIZE_FINISH:
        return await _undo_resize_finish(host, row)
    if task == task_states.RESIZE_REVERTING:
        return await _revert_again(host, row)
    if task == task_states.MIGRATING:
        return await _live_migration_interrupted(host, row)
    if task in SHELVING_TASKS:
        return await _undo_shelve(host, row, current)
    if task == task_states.SHELVING_OFFLOADING and row["vm_state"] == states.SHELVED:
        context = await context_of(host, row["uuid"], ("shelveOffload", "shelve"))
        host.dispatch(shelve.shelve_offload_instance(host, context, row["uuid"]))
        return "shelve offload"
    if task == task_states.UNSHELVING and row["vm_state"] == states.SHELVED:
        context = await context_of(host, row["uuid"], ("unshelve",))
        image = {"id": (row["system_metadata"] or {}).get("shelved_image_id")}
        host.dispatch(shelve.unshelve_instance(host, context, row["uuid"], image))
        return "unshelve"
    return None


async def _undo(host: ComputeHost, row: dict[str, Any], context: dict[str, Any], values: dict[str, Any],
                migration: dict[str, Any] | None = None, migration_status: str = "error") -> bool:
    """In one transaction: the instance out of its move's task_state (compare-and-swap), its usage on its own
    node only, the migration ``error``, the fault, the action's open events in error. False: it moved on."""
    uuid = row["uuid"]
    error = MoveInterruptedByRestart(instance_uuid=uuid, task_state=row["task_state"], host=host.host)
    async with host.db.write() as conn:
        if not await instances.update_instance(conn, uuid, values, expected_task_state=(row["task_state"],)):
            return False
        await restore_source_usage(conn, {**row, **values}, migration)
        if migration is not None:
            await records.update_migration(conn, migration["id"], {"status": migration_status})
        await actions.add_fault(conn, uuid, error, host=host.host)
        await finish_open_events(conn, context, uuid, error)
        await host.report_stats(conn)
    LOG.warning("%s: the move is undone", error.message)
    return True


async def _undo_resize_on_source(host: ComputeHost, row: dict[str, Any]) -> str | None:
    """resize_prep / resize_migrating on the source: the guest here again with the old flavor (Nova's
    ``finish_revert_migration`` for resize_migrating; nothing moved yet in resize_prep), the move undone."""
    uuid = row["uuid"]
    migration = await _migration(host, uuid, RESIZE_TYPES)
    context = await context_of(host, uuid, _RESIZE_ACTIONS)
    values: dict[str, Any] = {"task_state": None}
    async with host.locks(uuid):
        if row["task_state"] == task_states.RESIZE_MIGRATING:
            old_vm_state = (row["system_metadata"] or {}).get(resize.OLD_VM_STATE) or row["vm_state"]
            instance = host.driver_instance(row)
            try:
                await host.driver.finish_revert_migration(
                    instance, power_on=old_vm_state != states.STOPPED,
                    network_info=await networking.cached_network_info(host, uuid))
            except HypervisorUnavailable:
                raise
            except Exception:
                LOG.exception("reverting the resize of %s that %s's restart cut short failed", uuid, host.host)
            values["power_state"] = await power_state_of(host, instance)
        return "reverted" if await _undo(host, row, context, values, migration) else None


async def _finish_resize_again(host: ComputeHost, row: dict[str, Any]) -> str | None:
    """resize_migrated on the destination: the disks are here, ``finish_resize`` is carried out again."""
    uuid = row["uuid"]
    migration = await _migration(host, uuid, RESIZE_TYPES, ("post-migrating",))
    if migration is None or migration["dest_compute"] != host.host:
        return None
    context = await context_of(host, uuid, _RESIZE_ACTIONS)
    host.dispatch(_revert_on_source_after(host, context, uuid, migration,
                                          resize.finish_resize(host, context, uuid, migration["id"])))
    return "finish resize"


async def _undo_resize_finish(host: ComputeHost, row: dict[str, Any]) -> str | None:
    """resize_finish on the destination: as a failed finish, the guest here goes, the instance is the source's
    again (``resize_reverting``) and the source takes it back with its old flavor."""
    uuid = row["uuid"]
    migration = await _migration(host, uuid, RESIZE_TYPES, ("post-migrating",))
    if migration is None:
        return None
    context = await context_of(host, uuid, _RESIZE_ACTIONS)
    async with host.locks(uuid):
        await _destroy_leftover(host, row, "destroying the half-finished resize of %s on %s")
        values = {"task_state": task_states.RESIZE_REVERTING, "host": migration["source_compute"],
                  "node": migration["source_node"]}
        if not await _undo(host, row, context, values, migration):
            return None
    cast_later(host, f"finish_revert_resize of {uuid}", lambda: ComputeAPI(host.transport).finish_revert_resize(
        context, migration["source_compute"], uuid, migration["id"]))
    return "reverted to the source"


async def _revert_again(host: ComputeHost, row: dict[str, Any]) -> str | None:
    """resize_reverting: the destination's part again while its migration still holds the source's usage, else
    the source's (``finish_revert_resize``, which also ends a failed finish's revert)."""
    uuid = row["uuid"]
    migration = await _migration(host, uuid, RESIZE_TYPES, ("reverting", "error"))
    if migration is None:
        return None
    context = await context_of(host, uuid, ("revertResize", *_RESIZE_ACTIONS))
    async with host.db.read() as conn:
        dest_pending = bool(await placement.allocations_for_consumer(conn, migration["uuid"]))
    if migration["status"] == "reverting" and dest_pending and host.host == migration["dest_compute"]:
        host.dispatch(_revert_on_source_after(host, context, uuid, migration,
                                              resize.revert_resize(host, context, uuid, migration["id"])))
        return "revert resize"
    if host.host == migration["source_compute"]:
        host.dispatch(resize.finish_revert_resize(host, context, uuid, migration["id"]))
        return "finish revert resize"
    return None


async def _live_migration_interrupted(host: ComputeHost, row: dict[str, Any]) -> str | None:
    """migrating: on the source, rolled back (the guest stays here); on the destination after the hand-over, the
    destination's last step carried out again."""
    uuid = row["uuid"]
    migration = await _migration(host, uuid, (records.LIVE_MIGRATION,))
    context = await context_of(host, uuid, ("live-migration",))
    if migration is not None and migration["status"] == "post-migrating":
        if migration["dest_compute"] != host.host:
            return None
        host.dispatch(live_migration.post_live_migration_at_destination(host, context, uuid, migration["id"],
                                                                        row["power_state"]))
        return "post live migration"
    async with host.locks(uuid):
        current = await power_state_of(host, host.driver_instance(row))
        if not await _undo(host, row, context, {"task_state": None, "power_state": current}, migration):
            return None
    dest = None if migration is None else migration["dest_compute"]
    if dest and dest != host.host:
        cast_later(host, f"rollback_live_migration_at_destination of {uuid}", lambda: ComputeAPI(
            host.transport).rollback_live_migration_at_destination(context, dest, uuid))
    return "live migration rolled back"


async def _undo_shelve(host: ComputeHost, row: dict[str, Any], current: int) -> str | None:
    """shelving*: as a failed shelve, the snapshot is not taken up again (its queued image goes) and the server is
    as it was: an active one's guest started again."""
    uuid = row["uuid"]
    context = await context_of(host, uuid, ("shelve",))
    async with host.locks(uuid):
        if row["vm_state"] == states.ACTIVE and current in (power_state.SHUTDOWN, power_state.CRASHED):
            instance = host.driver_instance(row)
            try:
                await host.driver.power_on(instance)
            except HypervisorUnavailable:
                raise
            except Exception:
                LOG.exception("starting the guest of %s again after its shelve was cut short", uuid)
            current = await power_state_of(host, instance)
        if not await _undo(host, row, context, {"task_state": None, "power_state": current}):
            return None
    if host.images is not None:
        host.dispatch(_delete_shelve_image(host, context, row))
    return "shelve undone"


async def _delete_shelve_image(host: ComputeHost, context: dict[str, Any], row: dict[str, Any]) -> None:
    """The image the API made for the shelve (``<name>-shelved``, never uploaded) goes, as after a failed shelve."""
    assert host.images is not None
    name = f"{row['display_name']}-shelved"
    try:
        found = await host.images.list_by_properties(context, {"instance_uuid": row["uuid"]})
        for image in found:
            if image.get("name") == name and image.get("status") in ("queued", "saving"):
                await host.images.delete(context, image["id"])
    except Exception:
        LOG.warning("deleting the shelve image of %s failed", row["uuid"], exc_info=True)


async def _unshelve_spawn_interrupted(host: ComputeHost, row: dict[str, Any]) -> str | None:
    """An offloaded server whose unshelve spawn the restart cut short: as a failed unshelve, it stays offloaded
    (no host, its claim given back) so it can be unshelved again."""
    uuid = row["uuid"]
    context = await context_of(host, uuid, ("unshelve",))
    async with host.locks(uuid):
        await _destroy_leftover(host, row, "cleaning up the unshelve of %s that %s's restart cut short")
        error = MoveInterruptedByRestart(instance_uuid=uuid, task_state=task_states.UNSHELVING, host=host.host)
        async with host.db.write() as conn:
            if not await instances.update_instance(conn, uuid, {"task_state": None, "host": None, "node": None},
                                                   expected_task_state=(task_states.SPAWNING,),
                                                   expected_vm_state=(states.SHELVED_OFFLOADED,)):
                return None
            await placement.remove_allocations(conn, uuid)
            await actions.add_fault(conn, uuid, error, host=host.host)
            await finish_open_events(conn, context, uuid, error)
            await host.report_stats(conn)
    LOG.warning("%s: it stays offloaded", error.message)
    return "unshelve undone"


async def reconcile_migrations(host: ComputeHost) -> list[tuple[str, str]]:
    """The migration records of this host whose instance is elsewhere: a confirm of a resize or cold migration
    from this host that the restart cut short (``confirming``) is carried out again; an evacuation to this host
    that it cut short fails; a resize this source handed over is cast to its destination again."""
    async with host.db.read() as conn:
        confirming = [m for m in await records.list_filtered(conn, {"source_compute": host.host,
                                                                    "status": "confirming"})
                      if m["migration_type"] in RESIZE_TYPES]
        handed_over = [m for m in await records.list_filtered(conn, {"source_compute": host.host,
                                                                     "status": "post-migrating"})
                       if m["migration_type"] in RESIZE_TYPES and m["dest_compute"] != host.host]
        arriving = [m for m in await records.list_filtered(conn, {"host": host.host,
                                                                  "migration_type": records.EVACUATION})
                    if m["dest_compute"] == host.host and m["status"] in _EVACUATING]
    done = []
    for migration in confirming:
        uuid = migration["instance_uuid"]
        context = await context_of(host, uuid, ("confirmResize",))
        host.dispatch(resize.confirm_resize(host, context, uuid, migration["id"]))
        done.append((uuid, "confirm resize"))
    for migration in handed_over:
        if await _cast_finish_again(host, migration):
            done.append((migration["instance_uuid"], "finish resize cast again"))
    for migration in arriving:
        if await _fail_evacuation_here(host, migration):
            done.append((migration["instance_uuid"], "evacuation failed"))
    return done


async def _cast_finish_again(host: ComputeHost, migration: dict[str, Any]) -> bool:
    """``finish_resize`` cast to the destination again while the instance still waits for it there (the
    destination's compare-and-swap makes a second one a no-op)."""
    uuid = migration["instance_uuid"]
    async with host.db.read() as conn:
        row = await instances.get_plain(conn, uuid)
    if (row is None or row["deleted"] or row["task_state"] != task_states.RESIZE_MIGRATED
            or row["host"] != migration["dest_compute"]):
        return False
    context = await context_of(host, uuid, _RESIZE_ACTIONS)
    cast_later(host, f"finish_resize of {uuid}", lambda: ComputeAPI(host.transport).finish_resize(
        context, migration["dest_compute"], uuid, migration["id"]))
    return True


async def _fail_evacuation_here(host: ComputeHost, migration: dict[str, Any]) -> bool:
    """As a failed evacuation (compute/evacuate.py): the guest here goes, the claim here is given back and the
    source's usage is the instance's again, ERROR with the fault, the migration ``failed``."""
    uuid = migration["instance_uuid"]
    async with host.db.read() as conn:
        row = await instances.get_plain(conn, uuid)
    rebuilding = (task_states.REBUILDING, task_states.REBUILD_SPAWNING)
    if row is None or row["deleted"] or row["task_state"] not in rebuilding or row["host"] == host.host:
        return False
    context = await context_of(host, uuid, ("evacuate",))
    error = MoveInterruptedByRestart(instance_uuid=uuid, task_state=row["task_state"], host=host.host)
    async with host.locks(uuid):
        await _destroy_leftover(host, row, "cleaning up the evacuation of %s that %s's restart cut short")
        async with host.db.write() as conn:
            if not await instances.update_instance(conn, uuid, {"vm_state": states.ERROR, "task_state": None},
                                                   expected_task_state=(row["task_state"],)):
                return False
            await restore_source_usage(conn, row, migration)
            await records.update_migration(conn, migration["id"], {"status": "failed"})
            await actions.add_fault(conn, uuid, error, host=host.host)
            await finish_open_events(conn, context, uuid, error)
            await host.report_stats(conn)
    LOG.warning("%s: the evacuation failed", error.message)
    return True


async def evacuations_under_way(host: ComputeHost) -> list[tuple[str, str]]:
    """The evacuations away from this host still under way: each one's guest here destroyed, and a watch that
    cleans up after it once it is ``done``. Returns (instance uuid, what was done); the start-up leaves those
    instances alone."""
    async with host.db.read() as conn:
        under_way = [m for m in await records.list_filtered(conn, {"source_compute": host.host,
                                                                   "migration_type": records.EVACUATION})
                     if m["status"] in _EVACUATING]
    done = []
    for migration in under_way:
        uuid = migration["instance_uuid"]
        LOG.info("instance %s is being evacuated from %s: destroying its guest here", uuid, host.host)
        try:
            await host.driver.destroy({"uuid": uuid, "name": ""}, network_info=[])
        except HypervisorUnavailable:
            raise
        except Exception:
            LOG.exception("destroying the guest of %s, which is being evacuated from %s", uuid, host.host)
        host.dispatch(_after_evacuation(host, migration["id"]))
        done.append((uuid, "evacuating: guest destroyed"))
    return done


async def _after_evacuation(host: ComputeHost, migration_id: int) -> None:
    """Wait for an evacuation away from this host to end; ``done``: its usage here goes (``completed``)."""
    while True:
        async with host.db.read() as conn:
            migration = await records.get(conn, migration_id)
        if migration is None or migration["status"] not in _EVACUATING:
            break
        await asyncio.sleep(EVACUATION_POLL)
    if migration is not None and migration["status"] == "done":
        await evacuate.destroy_evacuated_instances(host)
