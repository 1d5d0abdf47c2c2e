"""Power-state sync (Nova's ``_sync_power_states``): the hypervisor's power state is the truth.

Level-triggered: one driver call (``list_power_states``) and one query for the host's instances per pass, then
for each instance no action is under way on, Nova's rules. The driver's power state is always stored; a guest
that stopped by itself (or crashed, or was suspended behind our back) turns its active instance ``stopped``
through the same stop a user asks for (a ``stop`` instance action, task_state ``powering-off``, then the host's
``stop_instance``); a guest running for a stopped instance is stopped again (Nova's force-stop), as is a paused
instance whose guest shut down. Every write is a compare-and-swap on the row as it was read (its states and its
``updated_at``): anything that touched the instance between the read and the write wins, and the next pass sees
the new picture. Lifecycle events from the driver run the same rules for one instance at once.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from sqlalchemy import select, update

from stratus import exception
from stratus.compute import power
from stratus.compute.host import ComputeHost
from stratus.db import actions, instances
from stratus.db.engine import Connection
from stratus.db.models import instances as instances_table
from stratus.objects import states
from stratus.objects.states import power_state, task_states
from stratus.utils import utcnow

LOG = logging.getLogger(__name__)

#: what a sync does about an instance besides storing the power state
STOP = "stop"  # Nova's compute_api.stop: an active instance whose guest is off
FORCE_STOP = "force_stop"  # Nova's compute_api.force_stop: a stopped (or paused) instance whose guest is not off
_OFF = (power_state.SHUTDOWN, power_state.CRASHED)

_SYNC_COLUMNS = [instances_table.c[name] for name in
                 ("id", "uuid", "host", "vm_state", "task_state", "power_state", "updated_at")]


@dataclasses.dataclass(frozen=True)
class Synced:
    """What one sync did for one instance, for logs and tests."""

    uuid: str
    vm_state: str
    db_power_state: int
    vm_power_state: int
    action: str | None


def resolve(vm_state: str, vm_power_state: int) -> str | None:
    """Nova's ``_sync_instance_power_state`` table: STOP, FORCE_STOP or None (only the power state is stored).

    Building, rescued, resized, suspended and error instances are left alone; an active instance whose guest is
    paused (someone else's instrumentation) or missing (a hypervisor restarting) is only logged.
    """
    if vm_state == states.ACTIVE:
        return STOP if vm_power_state in (*_OFF, power_state.SUSPENDED) else None
    if vm_state == states.STOPPED:
        return FORCE_STOP if vm_power_state not in (power_state.NOSTATE, *_OFF) else None
    if vm_state == states.PAUSED:
        return FORCE_STOP if vm_power_state in _OFF else None
    return None


async def host_instances(conn: Connection, host: str, full: bool = False) -> list[dict[str, Any]]:
    """The host's live instances in one query (the columns the sync needs, or whole rows)."""
    query = select(instances_table) if full else select(*_SYNC_COLUMNS)
    query = query.where(instances_table.c.host == host, instances_table.c.deleted == 0)
    return [dict(r) for r in (await conn.execute(query.order_by(instances_table.c.id))).mappings()]


async def sync_host(host: ComputeHost, context: dict[str, Any]) -> list[Synced]:
    """One pass over the host: reads first, then the hypervisor, so a row read is never newer than the power
    state compared with it. ``HypervisorUnavailable`` goes up (the manager disables the service)."""
    async with host.db.read() as conn:
        rows = await host_instances(conn, host.host)
    observed = await host.driver.list_power_states()
    if len(observed) != len(rows):
        LOG.warning("while synchronizing power states on %s: %d instances in the database, %d on the hypervisor",
                    host.host, len(rows), len(observed))
    done = []
    for row in rows:
        if row["task_state"] is not None:
            LOG.debug("sync skips %s: task %s under way", row["uuid"], row["task_state"])
            continue
        if host.locks.held(row["uuid"]):
            continue
        try:
            result = await apply(host, context, row, observed.get(row["uuid"], power_state.NOSTATE))
        except Exception:
            LOG.exception("power-state sync of %s on %s failed", row["uuid"], host.host)
            continue
        if result is not None:
            done.append(result)
    return done


async def sync_instance(host: ComputeHost, context: dict[str, Any], uuid: str) -> Synced | None:
    """The same rules for one instance, now (a lifecycle event): skipped while an action of ours runs on it."""
    if host.locks.held(uuid):
        return None
    async with host.db.read() as conn:
        row = await instances.get_plain(conn, uuid)
    if row is None or row["deleted"] or row["host"] != host.host or row["task_state"] is not None:
        return None
    try:
        vm_power = (await host.driver.get_info(host.driver_instance(row))).power_state
    except exception.InstanceNotFound:
        vm_power = power_state.NOSTATE
    return await apply(host, context, row, vm_power)


async def apply(host: ComputeHost, context: dict[str, Any], row: dict[str, Any], vm_power: int
                ) -> Synced | None:
    """Store the observed power state and, where Nova's rules say so, request a stop; None if nothing was to be
    done or the instance moved on since ``row`` was read."""
    uuid, vm_state, db_power = row["uuid"], row["vm_state"], row["power_state"]
    action = resolve(vm_state, vm_power)
    if vm_power == db_power and action is None:
        return None
    values: dict[str, Any] = {"power_state": vm_power}
    if action is not None:
        values.update(task_state=task_states.POWERING_OFF, progress=0)
    async with host.db.write() as conn:
        if not await _swap(conn, row, values):
            return None
        if action is not None:
            await actions.action_start(conn, context, [uuid], "stop")
    if vm_power != db_power:
        log = LOG.warning if vm_power == power_state.NOSTATE else LOG.info
        log("instance %s on %s: power state %s in the database, %s on the hypervisor%s; stored", uuid,
            host.host, db_power, vm_power, " (guest not found)" if vm_power == power_state.NOSTATE else "")
    if action is not None:
        LOG.warning("instance %s (%s) has its guest in power state %s: stopping it (%s)", uuid, vm_state,
                    vm_power, action)
        host.dispatch(power.stop_instance(host, context, uuid))
    elif vm_state == states.ACTIVE and vm_power in (power_state.PAUSED, power_state.NOSTATE):
        LOG.warning("instance %s is active but its guest is %s: left alone", uuid,
                    "paused" if vm_power == power_state.PAUSED else "not found")
    return Synced(uuid, vm_state, db_power, vm_power, action)


async def _swap(conn: Connection, row: dict[str, Any], values: dict[str, Any]) -> bool:
    """Write only if the row is as read: live, no task, same vm_state, not updated since."""
    c = instances_table.c
    result = await conn.execute(
        update(instances_table)
        .where(c.uuid == row["uuid"], c.deleted == 0, c.task_state.is_(None), c.vm_state == row["vm_state"],
               c.updated_at == row["updated_at"])
        .values(updated_at=utcnow(), **values))
    return bool(result.rowcount)
