"""Server action ``changePassword``, as Nova's ``admin_password``: an active server's administrator password
set through its host's driver (a call), 202. A driver that cannot is Nova's 409 ``Set admin password is not
supported``; the server's task_state is ``updating_password`` while it runs, cleared after either way."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.api import validation
from stratus.api.common import ActionHandler
from stratus.api.errors import Fault
from stratus.api.request import ApiRequest, empty_response
from stratus.api.server_state import state_conflicts
from stratus.api.servers import load_instance
from stratus.compute import api as compute_api
from stratus.compute.rpcapi import ComputeAPI, NotSupportedByDriver
from stratus.db import instances
from stratus.objects import states
from stratus.objects.states import task_states

CHANGE_PASSWORD = compute_api.PowerAction("changePassword", "set_admin_password", task_states.UPDATING_PASSWORD,
                                          (states.ACTIVE,))
_SCHEMA = {"type": "object",
           "properties": {"changePassword": {"type": "object", "properties": {"adminPass": {"type": "string"}},
                                             "required": ["adminPass"], "additionalProperties": False}},
           "required": ["changePassword"], "additionalProperties": False}


async def _change_password(req: ApiRequest, body: dict[str, Any]) -> Response:
    validation.validate(_SCHEMA, body)
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:os-admin-password")
    ctx = req.context
    with state_conflicts("changePassword", server_id):
        claimed = await compute_api.claim(req.services.db, ctx.to_dict(), inst["uuid"], CHANGE_PASSWORD,
                                          ctx.is_admin)
    try:
        await ComputeAPI(req.services.transport).set_admin_password(
            ctx.to_dict(), claimed["host"], inst["uuid"], body["changePassword"]["adminPass"])
    except NotSupportedByDriver:
        raise Fault(409, "Set admin password is not supported") from None
    finally:
        async with req.services.db.write() as conn:  # a no-op when the host cleared it
            await instances.update_instance(conn, inst["uuid"], {"task_state": None},
                                            expected_task_state=(task_states.UPDATING_PASSWORD,))
    return empty_response(202)


ACTIONS: dict[str, ActionHandler] = {"changePassword": _change_password}
