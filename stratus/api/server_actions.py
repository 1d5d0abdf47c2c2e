"""Server actions: ``POST /servers/{server_id}/action``, one handler per action name, as Nova's.

The power actions (``os-stop``, ``os-start``, ``reboot``, ``pause``, ``unpause``, ``suspend``, ``resume``) are
accepted here and carried out by the instance's host: the request checks the instance's states as Nova's
``check_instance_state`` does, claims the instance with a compare-and-swap into the action's task_state (of two
concurrent requests, one gets the 409), records the instance action and casts; 202 with no body.
``os-getConsoleOutput`` is a call to the host: 200 with the log's last ``length`` lines.

The moves between hosts (``resize``, ``confirmResize``, ``revertResize``, ``migrate``, ``os-migrateLive``,
``evacuate``) are server_moves.py's, ``shelve``, ``shelveOffload`` and ``unshelve`` server_shelve.py's, ``rebuild``
server_rebuild.py's.
A new action is one handler and one line in ``ACTIONS``.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response

from stratus import exception
from stratus.api import (
    admin_password,
    server_admin_actions,
    server_backup,
    server_deferred_delete,
    server_floating_ips,
    server_moves,
    server_networks,
    server_rebuild,
    server_rescue,
    server_shelve,
    validation,
)
from stratus.api.common import ActionHandler, dispatch_action, image_endpoint
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response, json_response, location
from stratus.api.router import Route
from stratus.api.server_state import host_action, state_conflicts
from stratus.api.servers import load_instance
from stratus.compute import api as compute_api
from stratus.compute.rpcapi import ComputeAPI, NotSupportedByDriver
from stratus.db import actions, instances, quotas
from stratus.identity import policy

#: Nova's body schemas: stop, start, pause, unpause, suspend and resume take any value (null by convention)
_REBOOT_SCHEMA = {
    "type": "object",
    "properties": {"reboot": {
        "type": "object",
        "properties": {"type": {"type": "string", "enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}},
        "required": ["type"], "additionalProperties": False}},
    "required": ["reboot"], "additionalProperties": False,
}
_CONSOLE_SCHEMA = {
    "type": "object",
    "properties": {"os-getConsoleOutput": {
        "type": "object",
        "properties": {"length": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$", "minimum": -1,
                                  "maximum": validation.MAX_INT64}},
        "additionalProperties": False}},
    "required": ["os-getConsoleOutput"], "additionalProperties": False,
}
#: characters Nova strips from console output (XML could not carry them)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f]")


_soft_reboot = host_action("os_compute_api:servers:reboot", compute_api.SOFT_REBOOT)
_hard_reboot = host_action("os_compute_api:servers:reboot", compute_api.HARD_REBOOT)


async def _reboot(req: ApiRequest, body: dict[str, Any]) -> Response:
    validation.validate(_REBOOT_SCHEMA, body)
    kind = body["reboot"]["type"].upper()
    return await (_soft_reboot if kind == "SOFT" else _hard_reboot)(req, body)


def _length(body: dict[str, Any]) -> int | None:
    """``length`` as Nova's validator reads it: an integer or a numeric string, at least -1 (all lines)."""
    validation.validate(_CONSOLE_SCHEMA, body)
    value = body["os-getConsoleOutput"].get("length")
    return None if value is None else int(value)  # the validator bounded numbers and numeric strings alike


async def _console_output(req: ApiRequest, body: dict[str, Any]) -> Response:
    length = _length(body)
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:os-console-output")
    if not inst["host"]:
        raise Fault(409, compute_api.InstanceNotReady(instance_id=inst["uuid"]).message)
    try:
        output = await ComputeAPI(req.services.transport).get_console_output(
            req.context.to_dict(), inst["host"], inst["uuid"], length)
    except exception.InstanceNotFound as exc:  # deleted meanwhile, or no guest (yet) on the host
        raise Fault(404, exc.message) from None
    except NotSupportedByDriver as exc:
        raise Fault(501, exc.message) from None
    return json_response({"output": _CONTROL.sub("", output)})


_CREATE_IMAGE_SCHEMA = {
    "type": "object",
    "properties": {"createImage": {
        "type": "object",
        "properties": {"name": validation.name_with_leading_trailing_spaces,
                       "metadata": validation.metadata},
        "required": ["name"], "additionalProperties": False}},
    "required": ["createImage"], "additionalProperties": False,
}
_V239 = APIVersion.parse("2.39")  # no image metadata quota check on createImage
_V245 = APIVersion.parse("2.45")  # the image id in the body, no Location header


async def _create_image(req: ApiRequest, body: dict[str, Any]) -> Response:
    """createImage: the image is created at once (queued) and filled by the instance's host."""
    validation.validate(_CREATE_IMAGE_SCHEMA, body)
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:servers:create_image")
    args = body["createImage"]
    metadata = args.get("metadata") or {}
    if metadata and not req.at_least(_V239):  # Nova stopped checking the image metadata quota in 2.39
        try:
            async with req.services.db.read() as conn:
                await quotas.limit_check(conn, req.services.conf, req.context.project_id, req.context.user_id,
                                         {"metadata_items": len(metadata)})
        except quotas.OverQuota:
            raise Fault(403, "Image metadata limit exceeded") from None
    with state_conflicts("createImage", server_id):
        image = await compute_api.snapshot(req.services.db, req.services.transport, req.services.images,
                                           req.context.to_dict(), inst["uuid"], args["name"].strip(), metadata,
                                           is_admin=req.context.is_admin)
    if req.at_least(_V245):
        return json_response({"image_id": image["id"]}, status=202)
    return empty_response(202, headers=location(f"{image_endpoint(req)}/images/{image['id']}"))


_V273 = APIVersion.parse("2.73")  # lock takes locked_reason
_LOCK_SCHEMA_V273 = {
    "type": "object",
    "properties": {"lock": {"type": ["object", "null"],
                            "properties": {"locked_reason": {"type": "string", "minLength": 1, "maxLength": 255}},
                            "additionalProperties": False}},
    "required": ["lock"], "additionalProperties": False,
}


async def _lock(req: ApiRequest, body: dict[str, Any]) -> Response:
    """Nova's os-lock-server: a locked instance refuses every change by its owner's project (409) until
    unlocked; ``locked_by`` remembers whether the owner or an admin locked it, and from 2.73 the instance's system
    metadata the ``locked_reason`` given, as Nova keeps it."""
    reason = None
    if req.at_least(_V273):
        validation.validate(_LOCK_SCHEMA_V273, body)
        reason = (body["lock"] or {}).get("locked_reason")
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:os-lock-server:lock")
    policy.authorize(req.context, "os_compute_api:os-lock-server:lock", {"project_id": inst["project_id"]})
    locked_by = "owner" if inst["project_id"] == req.context.project_id else "admin"
    values: dict[str, Any] = {"locked": True, "locked_by": locked_by}
    if reason is not None:
        values["system_metadata"] = {**(inst.get("system_metadata") or {}), "locked_reason": reason}
    await _set_lock(req, inst["uuid"], values, "lock")
    return empty_response(202)


async def _unlock(req: ApiRequest, body: dict[str, Any]) -> Response:
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:os-lock-server:unlock")
    target = {"project_id": inst["project_id"]}
    policy.authorize(req.context, "os_compute_api:os-lock-server:unlock", target)
    expected = "owner" if inst["project_id"] == req.context.project_id else "admin"
    if inst["locked_by"] and inst["locked_by"] != expected:  # Nova's is_expected_locked_by
        policy.authorize(req.context, "os_compute_api:os-lock-server:unlock:unlock_override", target)
    values: dict[str, Any] = {"locked": False, "locked_by": None}
    if "locked_reason" in (inst.get("system_metadata") or {}):
        values["system_metadata"] = {k: v for k, v in inst["system_metadata"].items() if k != "locked_reason"}
    await _set_lock(req, inst["uuid"], values, "unlock")
    return empty_response(202)


async def _set_lock(req: ApiRequest, uuid: str, values: dict[str, Any], action_name: str) -> None:
    async with req.services.db.write() as conn:
        if not await instances.update_instance(conn, uuid, values):
            raise Fault(404, f"Instance {uuid} could not be found.")
        await actions.action_start(conn, req.context.to_dict(), [uuid], action_name)


ACTIONS: dict[str, ActionHandler] = {
    "lock": _lock,
    "unlock": _unlock,
    "os-stop": host_action("os_compute_api:servers:stop", compute_api.STOP),
    "os-start": host_action("os_compute_api:servers:start", compute_api.START),
    "reboot": _reboot,
    "pause": host_action("os_compute_api:os-pause-server:pause", compute_api.PAUSE),
    "unpause": host_action("os_compute_api:os-pause-server:unpause", compute_api.UNPAUSE),
    "suspend": host_action("os_compute_api:os-suspend-server:suspend", compute_api.SUSPEND),
    "resume": host_action("os_compute_api:os-suspend-server:resume", compute_api.RESUME),
    "os-getConsoleOutput": _console_output,
    "createImage": _create_image,
    "addSecurityGroup": server_networks.add_security_group,
    "removeSecurityGroup": server_networks.remove_security_group,
    **server_floating_ips.ACTIONS,
    **server_moves.ACTIONS,
    **server_shelve.ACTIONS,
    "rebuild": server_rebuild.rebuild,
    **server_admin_actions.ACTIONS,
    **server_rescue.ACTIONS,
    **admin_password.ACTIONS,
    **server_deferred_delete.ACTIONS,
    **server_backup.ACTIONS,
}


async def action(req: ApiRequest) -> Response:
    return await dispatch_action(req, ACTIONS)


ROUTES: list[Route] = [
    Route("/servers/{server_id}/action", "POST", action),
]
