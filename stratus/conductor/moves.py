"""What every move task of the conductor shares (resize and cold migration, live migration, evacuation,
unshelve): the request spec of a move, the start of a move whose migration record the API made (the record
checked, the instance action's event started, the source's usage handed to the migration), the claim on a
forced destination, and the clean end of a move that never reached a host.

Placement's model of a move: while it runs the migration record is the consumer of the source's usage and the
instance the consumer of its claim on the destination; a move that ends before any host acted swaps them back.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from stratus import exception
from stratus.conductor.state import ConductorState
from stratus.db import actions, instances, placement
from stratus.db import hosts as hosts_db
from stratus.db import migration_records as records
from stratus.scheduler.request import resources_from_flavor


@dataclasses.dataclass(frozen=True)
class Move:
    """A move begun: the instance and its migration as they were read, and the instance's stored request spec."""

    instance: dict[str, Any]
    migration: dict[str, Any]
    request_spec: dict[str, Any]


def move_spec(spec: dict[str, Any], instance: dict[str, Any], flavor: dict[str, Any], ignore_source: bool,
              requested_host: str | None) -> dict[str, Any]:
    """The boot's request spec for a move: the new flavor's resources, no forced host, the source left out
    unless it may be chosen, and the operator's destination if one was named."""
    ignore = [instance["host"]] if ignore_source else []
    return {**spec, "instance_uuid": instance["uuid"], "project_id": instance["project_id"],
            "user_id": instance["user_id"], "flavor": flavor, "resources": resources_from_flavor(flavor),
            "force_hosts": [], "force_nodes": [], "ignore_hosts": ignore, "requested_host": requested_host,
            "num_instances": 1}


async def begin_move(conductor: ConductorState, context: dict[str, Any], instance_uuid: str, migration_id: int,
                     task_state: str, event: str) -> Move:
    """In one transaction: the instance still in ``task_state`` and its migration still ``accepted`` (else
    ``InstanceNotFound``: the move was deleted or moved on), the event ``event`` started, and the source's usage
    handed to the migration record, so the scheduler's claim for the instance on a destination counts apart."""
    async with conductor.db.write() as conn:
        instance = await instances.get_plain(conn, instance_uuid)
        migration = await records.get(conn, migration_id)
        if (instance is None or instance["deleted"] or instance["task_state"] != task_state
                or migration is None or migration["status"] != "accepted"):
            raise exception.InstanceNotFound(instance_id=instance_uuid)
        stored = await instances.request_spec(conn, instance_uuid) or {}
        await actions.event_start(conn, context, instance_uuid, event, host=conductor.conf.host)
        await placement.move_allocations(conn, instance_uuid, migration["uuid"], instance["project_id"],
                                         instance["user_id"], consumer_type="MIGRATION")
    return Move(instance, migration, stored)


async def claim_forced(conductor: ConductorState, instance: dict[str, Any], host: str) -> str:
    """Claim the instance's resources on a forced host's node (Nova's ``force``: no scheduler, still a claim);
    returns the node. ``ComputeHostNotFound`` for a host with no compute node, ``NoValidHost`` if they do not
    fit."""
    async with conductor.db.write() as conn:
        service = await hosts_db.get_service(conn, host=host, binary="nova-compute")
        providers = await placement.providers_with_inventory(conn, [host]) if service else []
        if not providers:
            raise exception.ComputeHostNotFound(host=host)
        ok = False
        for _ in range(2):  # a lost compare-and-swap re-reads the provider once
            with contextlib.suppress(exception.ConcurrentUpdateDetected):
                ok = await placement.claim(conn, providers[0]["id"], instance["uuid"], instance["project_id"],
                                           instance["user_id"], resources_from_flavor(instance["flavor"]))
                break
        if not ok:
            raise exception.NoValidHost(reason=f"Host {host} does not have enough free resources")
        return str(providers[0]["name"])


async def end_move(conductor: ConductorState, context: dict[str, Any], instance: dict[str, Any],
                   migration: dict[str, Any], error: Exception, event: str, task_state: str,
                   details: str | None = None) -> None:
    """A move that never reached a host: the source's usage is the instance's again (any claim made for it
    given back), the migration ``error``, the instance as it was (its ``task_state`` cleared, its vm_state
    kept, as Nova's ``_set_vm_state_and_notify``) with the fault, and the event ``event`` finished with it."""
    uuid = instance["uuid"]
    async with conductor.db.write() as conn:
        await placement.remove_allocations(conn, uuid)
        await placement.move_allocations(conn, migration["uuid"], uuid, instance["project_id"], instance["user_id"])
        await records.update_migration(conn, migration["id"], {"status": "error"})
        if await instances.update_instance(conn, uuid, {"task_state": None}, expected_task_state=(task_state,)):
            await actions.add_fault(conn, uuid, error, code=getattr(error, "code", 500), details=details)
        await actions.event_finish(conn, context, uuid, event, error=error)
