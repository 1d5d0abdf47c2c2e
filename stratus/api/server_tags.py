"""Server tags (2.26+): /servers/{id}/tags[/{tag}]; at most 50 per server, as in Nova.

A tag is checked before anything is written: Nova's rules (1 to 60 characters, no ``/`` or ``,``) and no control
characters, since the tag of ``PUT /servers/{id}/tags/{tag}`` comes back in the ``Location`` header (percent-encoded
there, like any path segment the user chose).
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from starlette.responses import Response

from stratus.api import validation
from stratus.api.errors import Fault
from stratus.api.request import ApiRequest, empty_response, json_response, location
from stratus.api.router import Route
from stratus.api.servers import load_instance
from stratus.db.models import instance_tags

MAX_TAGS = validation.MAX_TAGS
_TAGS_BODY = {"type": "object", "properties": {"tags": validation.tags}, "required": ["tags"],
              "additionalProperties": False}


def _check_tag(tag: str) -> None:
    error = validation.error_message(validation.server_tag, tag)
    if error is not None:
        raise Fault(400, f"Tag '{validation.short(tag)}' is invalid. It must be a non empty string without "
                         f"characters '/' and ','. Validation error message: {error}")


def _no_tag(server_id: str, tag: str, noun: str = "Server") -> Fault:
    """Nova's 404s: show says "Server …", delete (InstanceTagNotFound) "Instance …"."""
    return Fault(404, f"{noun} {server_id} has no tag '{validation.short(tag)}'")


async def index(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-server-tags:index")
    return json_response({"tags": inst["tags"]})


async def show(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-server-tags:show")
    if req.path["tag"] not in inst["tags"]:
        raise _no_tag(inst["uuid"], req.path["tag"])
    return empty_response(204)


async def update(req: ApiRequest) -> Response:
    tag = req.path["tag"]
    _check_tag(tag)
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-server-tags:update")
    if tag in inst["tags"]:
        return empty_response(204)
    if len(inst["tags"]) >= MAX_TAGS:
        raise Fault(400, f"The number of tags exceeded the per-server limit {MAX_TAGS}")
    async with req.services.db.write() as conn:
        exists = (await conn.execute(select(instance_tags).where(instance_tags.c.instance_uuid == inst["uuid"],
                                                                 instance_tags.c.tag == tag))).first()
        if exists is None:
            await conn.execute(instance_tags.insert().values(instance_uuid=inst["uuid"], tag=tag))
    self_prefix, _ = req.link_prefix()
    return empty_response(201, headers=location(f"{self_prefix}/servers/{inst['uuid']}/tags/{quote(tag, safe='')}"))


async def update_all(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(_TAGS_BODY, body)
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-server-tags:update_all")
    tags = sorted(set(body["tags"]))
    async with req.services.db.write() as conn:
        await conn.execute(sql_delete(instance_tags).where(instance_tags.c.instance_uuid == inst["uuid"]))
        if tags:
            await conn.execute(instance_tags.insert(), [{"instance_uuid": inst["uuid"], "tag": t} for t in tags])
    return json_response({"tags": tags})


async def delete(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-server-tags:delete")
    async with req.services.db.write() as conn:
        result = await conn.execute(sql_delete(instance_tags).where(instance_tags.c.instance_uuid == inst["uuid"],
                                                                    instance_tags.c.tag == req.path["tag"]))
    if not result.rowcount:
        raise _no_tag(inst["uuid"], req.path["tag"], noun="Instance")
    return empty_response(204)


async def delete_all(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-server-tags:delete_all")
    async with req.services.db.write() as conn:
        await conn.execute(sql_delete(instance_tags).where(instance_tags.c.instance_uuid == inst["uuid"]))
    return empty_response(204)


ROUTES: list[Route] = [
    Route("/servers/{server_id}/tags", "GET", index, min_version="2.26"),
    Route("/servers/{server_id}/tags", "PUT", update_all, min_version="2.26"),
    Route("/servers/{server_id}/tags", "DELETE", delete_all, min_version="2.26"),
    Route("/servers/{server_id}/tags/{tag}", "GET", show, min_version="2.26"),
    Route("/servers/{server_id}/tags/{tag}", "PUT", update, min_version="2.26"),
    Route("/servers/{server_id}/tags/{tag}", "DELETE", delete, min_version="2.26"),
]
