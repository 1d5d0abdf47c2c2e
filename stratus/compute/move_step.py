"""The start and the undoing of one host's step of a move that the conductor began (evacuation, live migration).

A step takes its move with a compare-and-swap on the migration's status (so that of a step and a competing
abort or delete one wins, and a step cast twice runs once), checking that the instance is still in the move's
task_state; a step that fails before the instance left its source gives the source's usage back to the
instance (placement's model of a move: the migration record holds the source's usage while the instance holds
its claim on the destination).
"""

from __future__ import annotations

import logging
from typing import Any

from stratus.compute.host import ComputeHost
from stratus.db import actions, instances, placement
from stratus.db import migration_records as records

LOG = logging.getLogger(__name__)


async def begin_step(host: ComputeHost, context: dict[str, Any], instance_uuid: str, migration_id: int,
                     task_state: str, status: tuple[str, str], event: str, next_task_state: str | None = None
                     ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """In one transaction: the instance (not deleted, in ``task_state``) and its migration, moved from
    ``status[0]`` to ``status[1]``, the event ``event`` started, and the instance moved on to
    ``next_task_state`` if one is given. None (logged) when either moved on meanwhile: the step has nothing
    to do. The caller holds the instance's lock."""
    async with host.db.write() as conn:
        row = await instances.get_plain(conn, instance_uuid)
        migration = await records.get(conn, migration_id)
        if (row is None or row["deleted"] or row["task_state"] != task_state or migration is None
                or not await records.update_migration(conn, migration_id, {"status": status[1]},
                                                      expected_status=(status[0],))):
            LOG.info("%s of %s (migration %s) skipped: it moved on", event, instance_uuid, migration_id)
            return None
        await actions.event_start(conn, context, instance_uuid, event, host=host.host)
        if next_task_state is not None:
            await instances.update_instance(conn, instance_uuid, {"task_state": next_task_state},
                                            expected_task_state=(task_state,))
    return row, migration


async def give_back_source(conn: Any, row: dict[str, Any], migration: dict[str, Any]) -> None:
    """Inside the caller's transaction: the instance's claim on the destination goes and the source's usage,
    which the migration held, is the instance's again."""
    await placement.remove_allocations(conn, row["uuid"])
    await placement.move_allocations(conn, migration["uuid"], row["uuid"], row["project_id"], row["user_id"])
