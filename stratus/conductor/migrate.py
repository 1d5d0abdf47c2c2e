"""The conductor's resize and cold-migration task (Nova's ``MigrationTask``).

The API has put the instance in ``resize_prep`` and calls ``migrate_server``: a migration record is made, the
instance's usage on its source is handed to the record (placement's model: the migration is the consumer of
the source, the instance will be the destination's), and the scheduler chooses and claims a destination for
the instance (never its own host for a cold migration, nor for a resize unless ``[DEFAULT]
allow_resize_to_same_host``; only the named host with migrate ``host``). A destination that refuses the
instance gives its claim back and casts ``resize_reschedule``: the next alternate that still fits is claimed,
as for a failed build; with none left the move ends cleanly (usage the instance's again, ``error`` migration,
a fault, the instance as it was).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from stratus import exception
from stratus.conductor import build, moves
from stratus.conductor.state import ConductorState
from stratus.db import actions, instances, placement
from stratus.db import migration_records as records
from stratus.objects.states import task_states

LOG = logging.getLogger(__name__)
MIGRATE_EVENT = "conductor_migrate_server"


class InstanceNotInResizePrep(exception.StratusException):
    msg_fmt = "Instance %(instance_uuid)s is not waiting for a move (task_state %(task_state)s)"
    code = 409


async def migrate_server(conductor: ConductorState, context: dict[str, Any], instance_uuid: str,
                         flavor: dict[str, Any] | None, requested_host: str | None, clean_shutdown: bool) -> int:
    """Record the move, schedule it, cast ``prep_resize`` to the destination; returns the migration's id.
    ``NoValidHost`` (no destination) goes back to the API with the instance as it was."""
    resize = flavor is not None
    async with conductor.db.write() as conn:
        instance = await instances.get_plain(conn, instance_uuid)
        if instance is None or instance["deleted"]:
            raise exception.InstanceNotFound(instance_id=instance_uuid)
        if instance["task_state"] != task_states.RESIZE_PREP:
            raise InstanceNotInResizePrep(instance_uuid=instance_uuid, task_state=instance["task_state"])
        stored = await instances.request_spec(conn, instance_uuid) or {}
        await actions.event_start(conn, context, instance_uuid, MIGRATE_EVENT, host=conductor.conf.host)
        new_flavor = flavor if flavor is not None else instance["flavor"]
        migration = await records.create(conn, {
            "instance_uuid": instance_uuid, "migration_type": records.RESIZE if resize else records.MIGRATION,
            "status": "pre-migrating", "source_compute": instance["host"], "source_node": instance["node"],
            "old_flavor": instance["flavor"], "new_flavor": new_flavor,
            "project_id": context.get("project_id"), "user_id": context.get("user_id")})
        await placement.move_allocations(conn, instance_uuid, migration["uuid"], instance["project_id"],
                                         instance["user_id"], consumer_type="MIGRATION")
    ignore_source = not (resize and conductor.conf.allow_resize_to_same_host)
    spec = moves.move_spec(stored, instance, new_flavor, ignore_source, requested_host)
    try:
        selections = await build.select_destinations(conductor, context, spec, [instance_uuid])
    except Exception as exc:
        reason = f"No valid host found for {'resize' if resize else 'cold migrate'}"
        error = exception.NoValidHost(reason=reason) if isinstance(exc, exception.NoValidHost) else exc
        LOG.info("no destination for the %s of %s: %s", "resize" if resize else "migration", instance_uuid, exc)
        await moves.end_move(conductor, context, instance, migration, error, MIGRATE_EVENT, task_states.RESIZE_PREP)
        raise error from None
    chosen, *alternates = selections[0]
    async with conductor.db.write() as conn:
        await records.update_migration(conn, migration["id"], {"dest_compute": chosen["host"],
                                                               "dest_node": chosen["nodename"]})
        await actions.event_finish(conn, context, instance_uuid, MIGRATE_EVENT)
    alternates = alternates[:max(0, conductor.conf.scheduler.max_attempts - 1)]
    await conductor.compute.prep_resize(context, chosen["host"], instance_uuid, migration["id"], spec, chosen,
                                        alternates, [], clean_shutdown)
    return int(migration["id"])


async def resize_reschedule(conductor: ConductorState, context: dict[str, Any], instance_uuid: str,
                            migration_id: int, request_spec: dict[str, Any], alternates: list[dict[str, Any]],
                            failed_host: str, reason: str, tried_hosts: list[str], clean_shutdown: bool) -> None:
    """A destination refused the move and gave its claim back: the next alternate that still fits, within
    ``[scheduler] max_attempts``, or the end of the move with Nova's ``MaxRetriesExceeded`` fault."""
    tried = list(dict.fromkeys([*tried_hosts, failed_host]))
    max_attempts = conductor.conf.scheduler.max_attempts
    remaining = [a for a in alternates if a["host"] not in tried] if len(tried) < max_attempts else []
    async with conductor.db.write() as conn:
        await actions.event_start(conn, context, instance_uuid, MIGRATE_EVENT, host=conductor.conf.host)
    while remaining:
        selection, remaining = remaining[0], remaining[1:]
        placed = await _claim_alternate(conductor, instance_uuid, migration_id, request_spec, selection)
        if placed is None:
            return
        if placed:
            async with conductor.db.write() as conn:
                await actions.event_finish(conn, context, instance_uuid, MIGRATE_EVENT)
            await conductor.compute.prep_resize(context, selection["host"], instance_uuid, migration_id,
                                                request_spec, {**selection, "claimed": True}, remaining, tried,
                                                clean_shutdown)
            return
    async with conductor.db.read() as conn:
        instance = await instances.get_plain(conn, instance_uuid)
        migration = await records.get(conn, migration_id)
    if instance is None or migration is None:
        return
    error = exception.NoValidHost(
        reason=f"Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures "
               f"for instance {instance_uuid}.")
    await moves.end_move(conductor, context, instance, migration, error, MIGRATE_EVENT, task_states.RESIZE_PREP,
                         details=reason)


async def _claim_alternate(conductor: ConductorState, instance_uuid: str, migration_id: int,
                           request_spec: dict[str, Any], selection: dict[str, Any]) -> bool | None:
    """Claim an alternate for the instance and point the migration at it: True, False if it no longer fits,
    None if the instance or the move went away meanwhile."""
    async with conductor.db.write() as conn:
        instance = await instances.get_plain(conn, instance_uuid)
        migration = await records.get(conn, migration_id)
        if (instance is None or instance["deleted"] or instance["task_state"] != task_states.RESIZE_PREP
                or migration is None or migration["status"] != "pre-migrating"):
            return None
        ok = False
        for _ in range(2):  # a lost compare-and-swap re-reads the provider once
            with contextlib.suppress(exception.ConcurrentUpdateDetected):
                ok = await placement.claim(conn, selection["provider_id"], instance_uuid, instance["project_id"],
                                           instance["user_id"], selection["resources"])
                break
        if ok:
            await records.update_migration(conn, migration_id, {"dest_compute": selection["host"],
                                                                "dest_node": selection["nodename"]})
        return ok
