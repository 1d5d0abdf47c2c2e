"""The tag API (``standard-attr-tag``): ``/v2.0/{resources}/{id}/tags[/{tag}]`` on networks, subnets, ports,
routers, floating IPs and security groups. Reading them is seeing the resource; changing them is the resource's
update rule. Each change is a new revision of the resource, as Neutron's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from stratus.db import network as db
from stratus.db.engine import Connection
from stratus.network.server import errors, floatingips, networks, ports, routers, security_groups, subnets
from stratus.network.server.resource import NetworkRequest, touch

MAX_TAG_LENGTH = 255
MAX_TAGS = 50
Finder = Callable[[NetworkRequest, Connection, str], Awaitable[tuple[dict[str, Any], dict[str, Any]]]]


async def _network(req: NetworkRequest, conn: Connection, id_: str) -> tuple[dict[str, Any], dict[str, Any]]:
    record = await networks.visible(req, conn, id_, for_update=True)
    return record, networks.target(record)


async def _subnet(req: NetworkRequest, conn: Connection, id_: str) -> tuple[dict[str, Any], dict[str, Any]]:
    record, network = await subnets.visible(req, conn, id_, for_update=True)
    return record, subnets.target(record, network)


async def _port(req: NetworkRequest, conn: Connection, id_: str) -> tuple[dict[str, Any], dict[str, Any]]:
    record, network = await ports.visible(req, conn, id_, for_update=True)
    return record, ports.target(record, network)


async def _router(req: NetworkRequest, conn: Connection, id_: str) -> tuple[dict[str, Any], dict[str, Any]]:
    record = await routers.visible(req, conn, id_, for_update=True)
    return record, {"project_id": record["project_id"], "tenant_id": record["project_id"]}


async def _floatingip(req: NetworkRequest, conn: Connection, id_: str) -> tuple[dict[str, Any], dict[str, Any]]:
    record = await floatingips.visible(req, conn, id_, for_update=True)
    return record, {"project_id": record["project_id"], "tenant_id": record["project_id"]}


async def _group(req: NetworkRequest, conn: Connection, id_: str) -> tuple[dict[str, Any], dict[str, Any]]:
    record = await security_groups.visible_group(req, conn, id_)
    return record, {"project_id": record["project_id"], "tenant_id": record["project_id"]}


RESOURCES: dict[str, tuple[str, Finder]] = {
    "networks": ("network", _network), "subnets": ("subnet", _subnet), "ports": ("port", _port),
    "routers": ("router", _router), "floatingips": ("floatingip", _floatingip),
    "security-groups": ("security_group", _group),
}


def _check(tag: Any) -> str:
    if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LENGTH or "/" in tag or "," in tag:
        raise errors.invalid_input(f"'{tag}' is not a valid tag: a string of 1 to {MAX_TAG_LENGTH} characters "
                                   "without '/' or ','")
    return tag


def _kind(req: NetworkRequest) -> tuple[str, Finder]:
    found = RESOURCES.get(req.path["resources"])
    if found is None:
        raise errors.RESOURCE_NOT_FOUND
    return found


async def _change(req: NetworkRequest, change: Callable[[list[str]], list[str]]) -> list[str]:
    kind, finder = _kind(req)
    async with req.services.db.write() as conn:
        record, target = await finder(req, conn, req.path["resource_id"])
        req.enforce(f"update_{kind}", target)
        tags = change(list(record.get("tags") or []))
        if len(tags) > MAX_TAGS:
            raise errors.invalid_input(f"A resource has at most {MAX_TAGS} tags")
        if tags != (record.get("tags") or []):
            record["tags"] = tags
            touch(record)
            await db.update_record(conn, kind, record)
        return tags


async def _read(req: NetworkRequest) -> list[str]:
    _, finder = _kind(req)
    async with req.services.db.read() as conn:
        record, _ = await finder(req, conn, req.path["resource_id"])
    return list(record.get("tags") or [])


async def list_tags(req: NetworkRequest) -> dict[str, Any]:
    return {"tags": await _read(req)}


async def check_tag(req: NetworkRequest) -> None:
    if req.path["tag"] not in await _read(req):
        raise _not_found(req)


def _not_found(req: NetworkRequest) -> errors.NeutronError:
    kind, _ = _kind(req)
    return errors.NeutronError(404, "TagNotFound", f"Tag {req.path['tag']} could not be found for {kind} "
                                                   f"{req.path['resource_id']}.")


async def add_tag(req: NetworkRequest) -> None:
    tag = _check(req.path["tag"])
    await _change(req, lambda tags: tags if tag in tags else [*tags, tag])


async def replace_tags(req: NetworkRequest) -> dict[str, Any]:
    body = await req.body()
    if not isinstance(body, dict) or set(body) != {"tags"} or not isinstance(body["tags"], list):
        raise errors.bad_request("Invalid tags body: want {\"tags\": [...]}")
    wanted = list(dict.fromkeys(_check(t) for t in body["tags"]))
    return {"tags": await _change(req, lambda tags: wanted)}


async def remove_tag(req: NetworkRequest) -> None:
    tag = req.path["tag"]
    missing: list[bool] = []

    def without(tags: list[str]) -> list[str]:
        if tag not in tags:
            missing.append(True)
        return [t for t in tags if t != tag]

    await _change(req, without)
    if missing:
        raise _not_found(req)


async def remove_all(req: NetworkRequest) -> None:
    await _change(req, lambda tags: [])
