"""The conductor's live-migration task (Nova's ``LiveMigrationTask``).

The API has put the instance in ``migrating`` and recorded the migration (``accepted``). Here: the instance's
source usage is handed to the migration record, the destination is chosen (the scheduler's choice, the named
host still filtered, or with ``force`` the named host claimed as it is), asked whether it takes the instance
(``check_can_live_migrate_destination``: how ``block_migration: auto`` resolves), and the source's
``live_migration`` is cast. A destination that refuses is given its claim back and the scheduler is asked for
another, within ``[scheduler] max_attempts`` (Nova's ``migrate_max_retries`` loop); with none, the move ends
with the instance as it was (``error`` migration, fault).
"""

from __future__ import annotations

import logging
from typing import Any

from stratus import exception
from stratus.conductor import build, moves
from stratus.conductor.state import ConductorState
from stratus.db import actions, placement
from stratus.db import migration_records as records
from stratus.objects.states import task_states

LOG = logging.getLogger(__name__)
LIVE_EVENT = "conductor_live_migrate_instance"


async def live_migrate_instance(conductor: ConductorState, context: dict[str, Any], instance_uuid: str,
                                migration_id: int, host: str | None, block_migration: bool | None,
                                force: bool) -> None:
    """Check, schedule and start a live migration; its errors go back to a caller before 2.34."""
    move = await moves.begin_move(conductor, context, instance_uuid, migration_id, task_states.MIGRATING,
                                  LIVE_EVENT)
    instance, stored = move.instance, move.request_spec
    try:
        if host == instance["host"]:
            raise exception.UnableToMigrateToSelf(instance_id=instance_uuid, host=host)
        dest, node, resolved = await _destination(conductor, context, instance, stored, host, block_migration,
                                                  force)
    except Exception as exc:
        await moves.end_move(conductor, context, instance, move.migration, exc, LIVE_EVENT, task_states.MIGRATING)
        raise
    async with conductor.db.write() as conn:
        await records.update_migration(conn, migration_id, {"dest_compute": dest, "dest_node": node,
                                                            "dest_host": dest, "status": "queued"},
                                       expected_status=("accepted",))
        await actions.event_finish(conn, context, instance_uuid, LIVE_EVENT)
    await conductor.compute.live_migration(context, instance["host"], instance_uuid, migration_id, resolved)


async def _destination(conductor: ConductorState, context: dict[str, Any], instance: dict[str, Any],
                       stored: dict[str, Any], host: str | None, block_migration: bool | None, force: bool
                       ) -> tuple[str, str, bool]:
    """(host, node, block_migration) of a destination that holds a claim for the instance and said yes."""
    uuid = instance["uuid"]
    if host and force:  # Nova: a forced host skips the scheduler (its resources are still claimed)
        node = await moves.claim_forced(conductor, instance, host)
        try:
            resolved = await conductor.compute.check_can_live_migrate_destination(context, host, uuid,
                                                                                  block_migration)
        except Exception:
            async with conductor.db.write() as conn:
                await placement.remove_allocations(conn, uuid)
            raise
        return host, node, resolved
    tried = [instance["host"]]
    last: Exception | None = None
    for _ in range(max(1, conductor.conf.scheduler.max_attempts)):
        spec = moves.move_spec(stored, instance, instance["flavor"], False, host)
        spec["ignore_hosts"] = list(tried)
        try:
            chosen = (await build.select_destinations(conductor, context, spec, [uuid]))[0][0]
        except exception.NoValidHost as exc:
            raise (last if isinstance(last, exception.MigrationPreCheckError) else exc) from None
        try:
            resolved = await conductor.compute.check_can_live_migrate_destination(context, chosen["host"], uuid,
                                                                                  block_migration)
        except Exception as exc:  # that host said no: its claim back, and another one
            LOG.info("live migration of %s: %s refused it (%s)", uuid, chosen["host"], exc)
            async with conductor.db.write() as conn:
                await placement.remove_allocations(conn, uuid)
            tried.append(chosen["host"])
            last = exc
            if host:  # only that host was asked for
                raise
            continue
        return chosen["host"], chosen["nodename"], resolved
    raise exception.MigrationPreCheckError(reason=f"Exceeded max scheduling retries for instance {uuid}: {last}")
