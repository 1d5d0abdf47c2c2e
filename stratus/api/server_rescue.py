"""Server actions ``rescue`` and ``unrescue``, as Nova's.

``rescue`` (states active, stopped or error; nothing under way) boots the server from a rescue image, the one
``rescue_image_ref`` names (it must exist and be active: 400 otherwise) or the server's own, and answers 200
with the ``adminPass`` (given, or a new one; left out with ``[api] enable_instance_password`` off). The server is
RESCUE until ``unrescue`` (state rescued: 202) boots it from its own disk again.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from starlette.responses import Response

from stratus import exception
from stratus.api import validation
from stratus.api.common import ActionHandler
from stratus.api.errors import Fault
from stratus.api.request import ApiRequest, json_response
from stratus.api.server_state import conflict, host_action, state_conflicts
from stratus.api.servers import load_instance
from stratus.compute import api as compute_api
from stratus.compute.rpcapi import ComputeAPI
from stratus.db import instances
from stratus.objects import states
from stratus.objects.states import task_states

RESCUE = compute_api.PowerAction("rescue", "rescue_instance", task_states.RESCUING,
                                 (states.ACTIVE, states.STOPPED, states.ERROR))
UNRESCUE = compute_api.PowerAction("unrescue", "unrescue_instance", task_states.UNRESCUING, (states.RESCUED,))
_RESCUE_SCHEMA = {
    "type": "object",
    "properties": {"rescue": {"oneOf": [
        {"type": "object", "properties": {"adminPass": {"type": "string"},
                                          "rescue_image_ref": {"type": "string", "format": "uuid"}},
         "additionalProperties": False},
        {"type": "null"}]}},
    "required": ["rescue"], "additionalProperties": False,
}
_NOT_IMAGE = ("locations", "direct_url", "file", "self", "schema")


async def _rescue_image(req: ApiRequest, inst: dict[str, Any], ref: str | None) -> dict[str, Any]:
    """The image the rescue boots: the one asked for, else the server's own (Nova's default)."""
    image_ref = ref or inst["image_ref"]
    if not image_ref or req.services.images is None:
        return {}
    try:
        image = await req.services.images.show(req.context.to_dict(), str(image_ref))
    except exception.ImageNotFound:
        if ref:
            raise Fault(400, f"Image {ref} could not be found.") from None
        return {}
    if ref and image.get("status") != "active":
        raise Fault(400, f"Image {ref} is not active.")
    return {k: v for k, v in image.items() if k not in _NOT_IMAGE}


async def _rescue(req: ApiRequest, body: dict[str, Any]) -> Response:
    validation.validate(_RESCUE_SCHEMA, body)
    args = body["rescue"] or {}
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:os-rescue")
    ctx = req.context
    with state_conflicts("rescue", server_id):
        compute_api.check_state(inst, RESCUE, ctx.is_admin)
    image = await _rescue_image(req, inst, args.get("rescue_image_ref"))
    password = args.get("adminPass") or "".join(secrets.choice(string.ascii_letters + string.digits)
                                                for _ in range(12))
    try:
        claimed = await compute_api.claim(req.services.db, ctx.to_dict(), inst["uuid"], RESCUE, ctx.is_admin)
    except compute_api.InstanceInvalidState as exc:
        raise conflict(exc, "rescue", server_id) from None
    try:
        await ComputeAPI(req.services.transport).cast_power_action(
            ctx.to_dict(), claimed["host"], RESCUE.method, inst["uuid"], rescue_image=image,
            admin_password=password)
    except Exception:
        async with req.services.db.write() as conn:
            await instances.update_instance(conn, inst["uuid"], {"task_state": None},
                                            expected_task_state=(task_states.RESCUING,))
        raise
    if req.services.conf.api.enable_instance_password:
        return json_response({"adminPass": password})
    return json_response({})


ACTIONS: dict[str, ActionHandler] = {"rescue": _rescue,
                                     # Nova reads nothing of unrescue's value (tempest sends {})
                                     "unrescue": host_action("os_compute_api:os-unrescue", UNRESCUE)}
