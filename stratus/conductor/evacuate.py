"""The conductor's evacuation task (Nova's ``rebuild_instance`` with ``evacuate``).

The API has checked that the instance's host is down (silent past ``service_down_time``, or forced down), put
the instance in ``rebuilding`` and recorded the evacuation (``accepted``). Here the source's usage goes to the
migration record (the source cannot give it back while it is down; it does at its next start-up), a
destination is chosen (the scheduler's, never the source; the named host through the filters, or claimed as it
is with ``force``), and ``rebuild_instance`` is cast to it. No destination: the instance as it was, with the
fault, and the migration ``error``.
"""

from __future__ import annotations

import logging
from typing import Any

from stratus.conductor import build, moves
from stratus.conductor.state import ConductorState
from stratus.db import actions
from stratus.db import migration_records as records
from stratus.objects.states import task_states

LOG = logging.getLogger(__name__)
EVACUATE_EVENT = "conductor_rebuild_server"


async def evacuate(conductor: ConductorState, context: dict[str, Any], instance_uuid: str, migration_id: int,
                   host: str | None, force: bool, admin_password: str | None, on_shared_storage: bool | None
                   ) -> None:
    move = await moves.begin_move(conductor, context, instance_uuid, migration_id, task_states.REBUILDING,
                                  EVACUATE_EVENT)
    instance = move.instance
    try:
        if host and force:
            dest, node = host, await moves.claim_forced(conductor, instance, host)
        else:
            spec = moves.move_spec(move.request_spec, instance, instance["flavor"], True, host)
            chosen = (await build.select_destinations(conductor, context, spec, [instance_uuid]))[0][0]
            dest, node = chosen["host"], chosen["nodename"]
    except Exception as exc:
        LOG.info("no destination for the evacuation of %s: %s", instance_uuid, exc)
        await moves.end_move(conductor, context, instance, move.migration, exc, EVACUATE_EVENT,
                             task_states.REBUILDING)
        return
    async with conductor.db.write() as conn:
        await records.update_migration(conn, migration_id, {"dest_compute": dest, "dest_node": node,
                                                            "dest_host": dest})
        await actions.event_finish(conn, context, instance_uuid, EVACUATE_EVENT)
    await conductor.compute.rebuild_instance(context, dest, instance_uuid, move.request_spec.get("image") or {},
                                             admin_password, migration_id=migration_id,
                                             on_shared_storage=on_shared_storage)
