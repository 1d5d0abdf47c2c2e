"""Server actions ``os-resetState`` and ``injectNetworkInfo`` (admin) and ``trigger_crash_dump`` (2.17), as Nova's.

``os-resetState`` sets the vm_state (``active`` or ``error``) and clears the task_state, whatever the server
was doing, and records the instance action ``resetState``: 202. ``trigger_crash_dump`` asks the server's host
to inject an NMI into the guest (states active, paused, resized, rescued or error; nothing under way): 202, the
instance action ``trigger_crash_dump``; a driver that cannot records the fault ``The requested functionality is
not supported.`` on its event. ``injectNetworkInfo`` has the server's host read its network info from the
Networking service again (the info cache refreshed) and hand it to the driver: 202, no instance action, as Nova's.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.api import validation
from stratus.api.common import ActionHandler
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response
from stratus.api.server_state import state_conflicts
from stratus.api.servers import load_instance
from stratus.compute import api as compute_api
from stratus.compute.rpcapi import ComputeAPI
from stratus.db import actions, instances
from stratus.objects import states

_V217 = APIVersion.parse("2.17")  # trigger_crash_dump
_RESET_SCHEMA = {
    "type": "object",
    "properties": {"os-resetState": {"type": "object",
                                     "properties": {"state": {"type": "string", "enum": ["active", "error"]}},
                                     "required": ["state"], "additionalProperties": False}},
    "required": ["os-resetState"], "additionalProperties": False,
}
_CRASH_SCHEMA = {"type": "object", "properties": {"trigger_crash_dump": {"type": "null"}},
                 "required": ["trigger_crash_dump"], "additionalProperties": False}
#: Nova's ``check_instance_state`` of trigger_crash_dump; the cast is the host's power.trigger_crash_dump
TRIGGER_CRASH_DUMP = compute_api.PowerAction(
    "trigger_crash_dump", "trigger_crash_dump", "", (states.ACTIVE, states.PAUSED, states.RESIZED,
                                                     states.RESCUED, states.ERROR))


async def _reset_state(req: ApiRequest, body: dict[str, Any]) -> Response:
    validation.validate(_RESET_SCHEMA, body)
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-admin-actions:reset_state")
    state = states.ACTIVE if body["os-resetState"]["state"] == "active" else states.ERROR
    async with req.services.db.write() as conn:
        await actions.action_start(conn, req.context.to_dict(), [inst["uuid"]], "resetState")
        if not await instances.update_instance(conn, inst["uuid"], {"vm_state": state, "task_state": None}):
            raise Fault(404, f"Instance {inst['uuid']} could not be found.")
    return empty_response(202)


async def _trigger_crash_dump(req: ApiRequest, body: dict[str, Any]) -> Response:
    if not req.at_least(_V217):
        # Nova's action exists only from 2.17: below it the dispatch finds no version of the method
        # (VersionNotFoundForAPIMethod), which Nova answers with a bare 404, not "no such action".
        raise Fault(404, "The resource could not be found.")
    validation.validate(_CRASH_SCHEMA, body)
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:servers:trigger_crash_dump")
    with state_conflicts("trigger_crash_dump", server_id):
        await compute_api.request_stateless(req.services.db, req.services.transport, req.context.to_dict(),
                                            inst["uuid"], TRIGGER_CRASH_DUMP, is_admin=req.context.is_admin)
    return empty_response(202)


async def _inject_network_info(req: ApiRequest, body: dict[str, Any]) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-admin-actions:inject_network_info")
    with state_conflicts("injectNetworkInfo", inst["uuid"]):
        if inst["locked"] and not req.context.is_admin:
            raise compute_api.InstanceIsLocked(instance_uuid=inst["uuid"])
        if not inst["host"]:
            raise compute_api.InstanceNotReady(instance_id=inst["uuid"])
    await ComputeAPI(req.services.transport).cast_power_action(req.context.to_dict(), inst["host"],
                                                               "inject_network_info", inst["uuid"])
    return empty_response(202)


ACTIONS: dict[str, ActionHandler] = {
    "os-resetState": _reset_state,
    "injectNetworkInfo": _inject_network_info,
    "trigger_crash_dump": _trigger_crash_dump,
}
