"""Server actions ``shelve``, ``shelveOffload`` and ``unshelve``, as Nova's (flows: docs/server-moves.md).

All answer 202. ``unshelve`` takes a body from 2.77 (``{"availability_zone": name}``, for an offloaded server
only) and from 2.91 ``host`` and ``availability_zone: null`` (unpin); before 2.77 its value is not read.
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
from stratus.compute import move_api
from stratus.db import hosts as hosts_db
from stratus.identity import policy

_V277 = APIVersion.parse("2.77")  # unshelve availability_zone
_V291 = APIVersion.parse("2.91")  # unshelve host, and availability_zone null
_ZONE = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9-._ ]*$"}


def _unshelve_schema(req: ApiRequest) -> dict[str, Any]:
    props: dict[str, Any] = {"availability_zone": _ZONE}
    if req.at_least(_V291):
        props = {"availability_zone": {"oneOf": [_ZONE, {"type": "null"}]},
                 "host": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9-._]*$"}}
    return {"type": "object",
            "properties": {"unshelve": {"oneOf": [{"type": "object", "properties": props,
                                                   "additionalProperties": False}, {"type": "null"}]}},
            "required": ["unshelve"], "additionalProperties": False}


async def _run(req: ApiRequest, action: str, rule: str, call: Any) -> Response:
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, rule)
    with state_conflicts(action, server_id, move_api.UnshelveInstanceInvalidState):
        await call(inst)
    return empty_response(202)


async def _shelve(req: ApiRequest, body: dict[str, Any]) -> Response:
    services = req.services
    return await _run(req, "shelve", "os_compute_api:os-shelve:shelve", lambda inst: move_api.shelve(
        services.db, services.transport, services.images, req.context.to_dict(), inst["uuid"],
        is_admin=req.context.is_admin))


async def _shelve_offload(req: ApiRequest, body: dict[str, Any]) -> Response:
    services = req.services
    return await _run(req, "shelveOffload", "os_compute_api:os-shelve:shelve_offload",
                      lambda inst: move_api.shelve_offload(services.db, services.transport, req.context.to_dict(),
                                                           inst["uuid"], is_admin=req.context.is_admin))


async def _unshelve(req: ApiRequest, body: dict[str, Any]) -> Response:
    args: dict[str, Any] = {}
    if req.at_least(_V277):
        validation.validate(_unshelve_schema(req), body)
        args = body["unshelve"] or {}
    host = args.get("host")
    if host:
        policy.authorize(req.context, "os_compute_api:os-shelve:unshelve_to_host")
        async with req.services.db.read() as conn:
            if await hosts_db.get_service(conn, host=host, binary="nova-compute") is None:
                raise Fault(400, f"Compute host {host} could not be found.")
    services = req.services
    return await _run(req, "unshelve", "os_compute_api:os-shelve:unshelve", lambda inst: move_api.unshelve(
        services.db, services.transport, req.context.to_dict(), inst["uuid"], args.get("availability_zone"), host,
        zone_given="availability_zone" in args, is_admin=req.context.is_admin))


ACTIONS: dict[str, ActionHandler] = {
    "shelve": _shelve,
    "shelveOffload": _shelve_offload,
    "unshelve": _unshelve,
}
