"""Server action ``createBackup``, as Nova's: a snapshot image (``image_type`` backup, the ``backup_type``) that
the server's host uploads, then the rotation: of the server's backups of that type, only the newest
``rotation`` are kept. 202; before 2.45 a ``Location`` header naming the image (when ``rotation`` is above 0),
from 2.45 ``{"image_id": …}``.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.api import validation
from stratus.api.common import ActionHandler, image_endpoint
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response, json_response, location
from stratus.api.server_state import conflict, state_conflicts
from stratus.api.servers import load_instance
from stratus.compute import api as compute_api
from stratus.compute.rpcapi import ComputeAPI
from stratus.db import instances, quotas
from stratus.objects.states import task_states

_V239 = APIVersion.parse("2.39")  # no image metadata quota check
_V245 = APIVersion.parse("2.45")  # the image id in the body, no Location header
BACKUP = compute_api.PowerAction("createBackup", "backup_instance", task_states.IMAGE_BACKUP,
                                 compute_api.SNAPSHOT.vm_states)
_SCHEMA = {
    "type": "object",
    "properties": {"createBackup": {
        "type": "object",
        "properties": {"name": validation.name_with_leading_trailing_spaces,
                       "backup_type": {"type": "string"},
                       "rotation": validation.non_negative_integer,
                       "metadata": validation.metadata},
        "required": ["name", "backup_type", "rotation"], "additionalProperties": False}},
    "required": ["createBackup"], "additionalProperties": False,
}


async def _create_backup(req: ApiRequest, body: dict[str, Any]) -> Response:
    validation.validate(_SCHEMA, body)
    args = body["createBackup"]
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:os-create-backup")
    ctx = req.context
    metadata = args.get("metadata") or {}
    if metadata and not req.at_least(_V239):
        try:
            async with req.services.db.read() as conn:
                await quotas.limit_check(conn, req.services.conf, ctx.project_id, ctx.user_id,
                                         {"metadata_items": len(metadata)})
        except quotas.OverQuota:
            raise Fault(403, "Image metadata limit exceeded") from None
    with state_conflicts("createBackup", server_id):
        compute_api.check_state(inst, BACKUP, ctx.is_admin)
    images = req.services.images
    if images is None:
        raise Fault(400, "No image service")
    image_body = compute_api.snapshot_body(inst, args["name"].strip(), metadata, str(ctx.user_id))
    image_body.update(image_type="backup", backup_type=args["backup_type"])
    image = await images.create(ctx.to_dict(), image_body)
    try:
        claimed = await compute_api.claim(req.services.db, ctx.to_dict(), inst["uuid"], BACKUP, ctx.is_admin)
    except compute_api.InstanceInvalidState as exc:
        await images.delete(ctx.to_dict(), image["id"])
        raise conflict(exc, "createBackup", server_id) from None
    try:
        await ComputeAPI(req.services.transport).cast_power_action(
            ctx.to_dict(), claimed["host"], BACKUP.method, inst["uuid"], image_id=image["id"],
            backup_type=args["backup_type"], rotation=int(args["rotation"]))
    except Exception:
        async with req.services.db.write() as conn:
            await instances.update_instance(conn, inst["uuid"], {"task_state": None},
                                            expected_task_state=(task_states.IMAGE_BACKUP,))
        await images.delete(ctx.to_dict(), image["id"])
        raise
    if req.at_least(_V245):
        return json_response({"image_id": image["id"]}, status=202)
    if int(args["rotation"]) > 0:
        return empty_response(202, headers=location(f"{image_endpoint(req)}/images/{image['id']}"))
    return empty_response(202)


ACTIONS: dict[str, ActionHandler] = {"createBackup": _create_backup}
