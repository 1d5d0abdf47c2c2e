"""The conductor's unshelve task for an offloaded server (Nova's ``unshelve_instance``): the server is
scheduled anew like a build (within the availability zone asked for at 2.77, on the host asked for at 2.91,
the filters still judging it), and the chosen host spawns it from its shelve snapshot. No host: the server
stays offloaded with the fault.
"""

from __future__ import annotations

import logging
from typing import Any

from stratus.conductor import build
from stratus.conductor.moves import move_spec
from stratus.conductor.state import ConductorState
from stratus.db import actions, instances
from stratus.objects.states import task_states

LOG = logging.getLogger(__name__)
UNSHELVE_EVENT = "conductor_unshelve_instance"


async def unshelve_instance(conductor: ConductorState, context: dict[str, Any], instance_uuid: str,
                            availability_zone: str | None, host: str | None) -> None:
    async with conductor.db.write() as conn:
        instance = await instances.get_plain(conn, instance_uuid)
        if instance is None or instance["deleted"] or instance["task_state"] != task_states.UNSHELVING:
            return
        stored = await instances.request_spec(conn, instance_uuid) or {}
        await actions.event_start(conn, context, instance_uuid, UNSHELVE_EVENT, host=conductor.conf.host)
    spec = move_spec(stored, instance, instance["flavor"], False, host)
    spec["ignore_hosts"] = []
    if availability_zone is not None:
        spec["availability_zone"] = availability_zone or None
    try:
        chosen = (await build.select_destinations(conductor, context, spec, [instance_uuid]))[0][0]
    except Exception as exc:
        LOG.info("no host to unshelve %s on: %s", instance_uuid, exc)
        async with conductor.db.write() as conn:
            if await instances.update_instance(conn, instance_uuid, {"task_state": None},
                                               expected_task_state=(task_states.UNSHELVING,)):
                await actions.add_fault(conn, instance_uuid, exc, code=getattr(exc, "code", 500))
            await actions.event_finish(conn, context, instance_uuid, UNSHELVE_EVENT, error=exc)
        return
    async with conductor.db.write() as conn:
        values: dict[str, Any] = {"availability_zone": chosen.get("availability_zone")
                                  or conductor.conf.default_availability_zone}
        await instances.update_instance(conn, instance_uuid, values, expected_task_state=(task_states.UNSHELVING,))
        if availability_zone is not None:  # 2.77/2.91: the zone asked for is the server's from now on
            stored_spec = {**stored, "availability_zone": availability_zone or None}
            await instances.set_request_spec(conn, instance_uuid, stored_spec)
        await actions.event_finish(conn, context, instance_uuid, UNSHELVE_EVENT)
    image = dict(stored.get("image") or {})
    image_id = (instance["system_metadata"] or {}).get("shelved_image_id")
    if image_id:
        image["id"] = image_id
    await conductor.compute.unshelve_instance(context, chosen["host"], instance_uuid, image, chosen["nodename"])
