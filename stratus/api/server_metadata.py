"""Server metadata: /servers/{id}/metadata[/{key}], with Nova's quota on the number of items."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.api import validation
from stratus.api.errors import Fault
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.api.servers import load_instance
from stratus.db import instances, quotas

_META_BODY = {"type": "object", "properties": {"metadata": validation.metadata}, "required": ["metadata"],
              "additionalProperties": False}
_META_ITEM = {"type": "object", "properties": {"meta": {**validation.metadata, "minProperties": 1,
                                                         "maxProperties": 1}},
              "required": ["meta"], "additionalProperties": False}


async def _writable(req: ApiRequest, rule: str) -> dict[str, Any]:
    inst = await load_instance(req, req.path["server_id"], rule)
    if inst["locked"] and not req.context.is_admin:  # Nova's check_instance_lock comes before the state check
        raise Fault(409, f"Instance {inst['uuid']} is locked")
    if inst["task_state"] == "deleting":
        raise Fault(409, f"Cannot 'update metadata' instance {inst['uuid']} while it is in task_state deleting")
    return inst


async def _check_count(req: ApiRequest, conn: Any, count: int) -> None:
    """Nova's metadata_items check, against the caller's project and user limits."""
    ctx = req.context
    try:
        await quotas.limit_check(conn, req.services.conf, ctx.project_id, ctx.user_id, {"metadata_items": count})
    except quotas.OverQuota as exc:
        raise Fault(403, f"Maximum number of metadata items exceeds {exc.quotas['metadata_items']}") from None


async def index(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:server-metadata:index")
    return json_response({"metadata": inst["metadata"]})


async def show(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:server-metadata:show")
    key = req.path["key"]
    if key not in inst["metadata"]:
        raise Fault(404, "Metadata item was not found")
    return json_response({"meta": {key: inst["metadata"][key]}})


async def _write(req: ApiRequest, rule: str, replace: bool) -> Response:
    body = await req.json()
    validation.validate(_META_BODY, body)
    inst = await _writable(req, rule)
    items = body["metadata"]
    merged = items if replace else {**inst["metadata"], **items}
    async with req.services.db.write() as conn:
        await _check_count(req, conn, len(merged))
        await instances.set_metadata(conn, inst["uuid"], items, replace=replace)
    return json_response({"metadata": merged})


async def create(req: ApiRequest) -> Response:
    return await _write(req, "os_compute_api:server-metadata:create", replace=False)


async def update_all(req: ApiRequest) -> Response:
    return await _write(req, "os_compute_api:server-metadata:update_all", replace=True)


async def update(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(_META_ITEM, body)
    key = req.path["key"]
    if key not in body["meta"]:
        raise Fault(400, "Request body and URI mismatch")
    inst = await _writable(req, "os_compute_api:server-metadata:update")
    async with req.services.db.write() as conn:
        await _check_count(req, conn, len({**inst["metadata"], **body["meta"]}))
        await instances.set_metadata(conn, inst["uuid"], body["meta"], replace=False)
    return json_response({"meta": body["meta"]})


async def delete(req: ApiRequest) -> Response:
    inst = await _writable(req, "os_compute_api:server-metadata:delete")
    async with req.services.db.write() as conn:
        if not await instances.delete_metadata_key(conn, inst["uuid"], req.path["key"]):
            raise Fault(404, "Metadata item was not found")
    return empty_response(204)


ROUTES: list[Route] = [
    Route("/servers/{server_id}/metadata", "GET", index),
    Route("/servers/{server_id}/metadata", "POST", create),
    Route("/servers/{server_id}/metadata", "PUT", update_all),
    Route("/servers/{server_id}/metadata/{key}", "GET", show),
    Route("/servers/{server_id}/metadata/{key}", "PUT", update),
    Route("/servers/{server_id}/metadata/{key}", "DELETE", delete),
]
