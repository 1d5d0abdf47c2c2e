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

from stratus import exception
from stratus.conductor import build
from stratus.conductor.live_migrate import claim_forced
from stratus.conductor.migrate import move_spec
from stratus.conductor.state import ConductorState
from stratus.db import actions, instances, placement
from stratus.db import migration_records as records
from stratus.objects.states import task_states

LOG = logging.getLogger(__name__)
EVACUATE_EVENT = "conductor_rebuild_server"


async def evacuate(conductor: ConductorState, context: dict[str, Any], instance_uuid: str, migration_id: int,
                   host: str | None, force: bool, admin_password: str | None, on_shared_storage: bool | None
                   ) -> None:
    async with conductor.db.write() as conn:
        instance = await instances.get_plain(conn, instance_uuid)
        migration = await records.get(conn, migration_id)
        if (instance is None or instance["deleted"] or instance["task_state"] != task_states.REBUILDING
                or migration is None or migration["status"] != "accepted"):
            raise exception.InstanceNotFound(instance_id=instance_uuid)
        stored = await instances.request_spec(conn, instance_uuid) or {}
        await actions.event_start(conn, context, instance_uuid, EVACUATE_EVENT, host=conductor.conf.host)
        await placement.move_allocations(conn, instance_uuid, migration["uuid"], instance["project_id"],
                                         instance["user_id"], consumer_type="MIGRATION")
    try:
        if host and force:
            dest, node = host, await claim_forced(conductor, instance, host)
        else:
            spec = move_spec(stored, instance, instance["flavor"], True, host)
            chosen = (await build.select_destinations(conductor, context, spec, [instance_uuid]))[0][0]
            dest, node = chosen["host"], chosen["nodename"]
    except Exception as exc:
        LOG.info("no destination for the evacuation of %s: %s", instance_uuid, exc)
        async with conductor.db.write() as conn:
            await placement.remove_allocations(conn, instance_uuid)
            await placement.move_allocations(conn, migration["uuid"], instance_uuid, instance["project_id"],
                                             instance["user_id"])
            await records.update_migration(conn, migration_id, {"status": "error"})
            if await instances.update_instance(conn, instance_uuid, {"task_state": None},
                                               expected_task_state=(task_states.REBUILDING,)):
                await actions.add_fault(conn, instance_uuid, exc, code=getattr(exc, "code", 500))
            await actions.event_finish(conn, context, instance_uuid, EVACUATE_EVENT, error=exc)
        return
    async with conductor.db.write() as conn:
        await records.update_migration(conn, migration_id, {"dest_compute": dest, "dest_node": node,
                                                            "dest_host": dest})
        await actions.event_finish(conn, context, instance_uuid, EVACUATE_EVENT)
    await conductor.compute.rebuild_instance(context, dest, instance_uuid, stored.get("image") or {},
                                             admin_password, migration_id=migration_id,
                                             on_shared_storage=on_shared_storage)
