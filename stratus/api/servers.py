"""Servers: list, detail, show, update, delete. Create lives in ``servers_create``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from sqlalchemy import bindparam, select
from starlette.responses import Response

from stratus.api import server_view, servers_create, servers_query, validation
from stratus.api.common import collection_links, limit_and_marker, visible_project
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.compute.rpcapi import ComputeAPI
from stratus.db import actions, info_cache, instances, placement
from stratus.db import server_groups as server_groups_db
from stratus.db import services as services_db
from stratus.db.models import services
from stratus.db.prepared import prepared
from stratus.identity import policy
from stratus.objects import states
from stratus.objects.states import task_states
from stratus.utils import utcnow

LOG = logging.getLogger(__name__)

V219 = APIVersion.parse("2.19")
V226 = APIVersion.parse("2.26")
V238 = APIVersion.parse("2.38")

async def load_instance(req: ApiRequest, server_id: str, rule: str, plain: bool = False) -> dict[str, Any]:
    """The caller's instance (any project's for admins) or Nova's 404, then ``rule`` on it or Nova's 403;
    ``plain``: the row alone (no metadata, tags, fault or network info), for a handler that shows none."""
    ctx = req.context
    async with req.services.db.read() as conn:
        if plain:
            inst = await instances.get_plain(conn, server_id, project_id=visible_project(ctx))
            if inst is not None and inst["deleted"]:
                inst = None
        else:
            inst = await instances.get(conn, server_id, project_id=visible_project(ctx))
    if inst is None:
        raise Fault(404, f"Instance {server_id} could not be found.")
    policy.authorize(ctx, rule, {"project_id": inst["project_id"], "user_id": inst["user_id"]})
    return inst


async def _list(req: ApiRequest, rule: str, basic: bool = False) -> list[dict[str, Any]]:
    f = servers_query.filters(req, rule)
    f.with_system_metadata = req.version >= server_view.V273 and not basic
    f.basic = basic
    async with req.services.db.read() as conn:
        with _page_faults(f):
            await _match_ips(req, conn, f)
            return await instances.list_page(conn, f)


async def _match_ips(req: ApiRequest, conn: Any, f: Any) -> None:
    """The ``ip``/``ip6`` filters, matched on the network info as Nova's ``_ip_filter``: narrows ``f.uuids``."""
    ip, ip6 = req.query.get("ip"), req.query.get("ip6")
    if ip is not None or ip6 is not None:
        matched = await info_cache.matching_fixed_ips(conn, ip, ip6, f.project_id)
        f.uuids = [u for u in matched if f.uuids is None or u in f.uuids]


@contextlib.contextmanager
def _page_faults(f: Any) -> Iterator[None]:
    """A page's lookups that fail on what the request gave: Nova's 400s."""
    try:
        yield
    except instances.MarkerNotFound:
        raise Fault(400, f"marker [{f.marker}] not found") from None
    except instances.InvalidRegex as exc:  # Python's re took it, the database's engine does not: Nova's 400
        raise Fault(400, f"Invalid input for query parameters name. Value: {validation.short(exc.pattern)}. "
                         f"{validation.short_repr(exc.pattern)} is not a 'regex'") from None


def _page_size(req: ApiRequest) -> int:
    return limit_and_marker(req)[0]


async def index(req: ApiRequest) -> Response:
    rows = await _list(req, "os_compute_api:servers:index", basic=True)
    view = server_view.ServerViewBuilder(req)
    body: dict[str, Any] = {"servers": [view.basic(r) for r in rows]}
    links = collection_links(req, "servers", rows, _page_size(req), "uuid")
    if links:
        body["servers_links"] = links
    return json_response(body)


async def _host_status(req: ApiRequest, rows: list[dict[str, Any]]) -> dict[str, str]:
    """UP / DOWN / MAINTENANCE per host of these servers, in one query (admins at 2.16+)."""
    hosts = {r["host"] for r in rows if r["host"]}
    if not hosts:
        return {}
    async with req.services.db.read() as conn:
        found = (await conn.execute(select(services).where(services.c.binary == "nova-compute",
                                                           services.c.host.in_(hosts)))).mappings().all()
    now = utcnow()
    out = {}
    for s in found:
        if s["disabled"]:
            out[s["host"]] = "MAINTENANCE"
        else:
            out[s["host"]] = "UP" if services_db.is_up(dict(s), req.services.conf.service_down_time, now) else "DOWN"
    return {h: out.get(h, "UNKNOWN") for h in hosts}


async def view_for(req: ApiRequest, rows: list[dict[str, Any]], one: bool = False) -> server_view.ServerViewBuilder:
    """The view builder with what the page's bodies need beyond the rows: host status (2.16, admins), request
    specs (2.96, 2.100) and, for one server (show, update, rebuild), its server groups (2.71)."""
    view = server_view.ServerViewBuilder(req)
    if view.show_host_status:
        view.host_status = await _host_status(req, rows)
    if req.version >= server_view.V296 or (one and req.version >= server_view.V271):
        async with req.services.db.read() as conn:
            if req.version >= server_view.V296:
                view.specs = await instances.request_specs_of(conn, [r["uuid"] for r in rows])
            if one and req.version >= server_view.V271:
                view.server_groups = {r["uuid"]: await server_groups_db.groups_of(conn, r["uuid"]) for r in rows}
    return view


async def detail(req: ApiRequest) -> Response:
    """The page as stored, each body rendered only if what it is made of changed since it was last rendered
    (api/server_cache.py): the same bodies, for a fraction of the work while most servers stay as they were."""
    f = servers_query.filters(req, "os_compute_api:servers:detail")
    f.with_system_metadata = req.version >= server_view.V273
    async with req.services.db.read() as conn:
        with _page_faults(f):
            await _match_ips(req, conn, f)
            page = await instances.list_page_stored(conn, f)
    at_uuid, at_host = page.keys.index("uuid"), page.keys.index("host")
    brief = [{"uuid": r[at_uuid], "host": r[at_host]} for r in page.rows]
    view = await view_for(req, brief)
    settings, rendered = view.settings(), req.services.rendered
    bodies = []
    for index, row in enumerate(page.rows):
        uuid, host = row[at_uuid], row[at_host]
        key = (settings, row, page.metadata.get(uuid), page.tags.get(uuid), page.faults.get(uuid),
               page.network_info.get(uuid), view.host_status.get(host) if host else None, view.spec_key(uuid))
        body = rendered.get(uuid, key)
        if body is None:
            body = rendered.put(uuid, key, view.full(page.instance(index)))
        bodies.append(body)
    out: dict[str, Any] = {"servers": bodies}
    links = collection_links(req, "servers/detail", brief, _page_size(req), "uuid")
    if links:
        out["servers_links"] = links
    return json_response(out)


async def show(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:servers:show")
    view = await view_for(req, [inst], one=True)
    return json_response({"server": view.full(inst)})


def _update_schema(version: APIVersion) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": validation.name_with_leading_trailing_spaces,
        "accessIPv4": {"type": "string", "format": "ipv4"},
        "accessIPv6": {"type": "string", "format": "ipv6"},
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
    }
    if version >= V219:
        props["description"] = validation.description
    if version >= servers_create.V290:
        props["hostname"] = servers_create.hostname_schema(version)
    return {"type": "object", "properties": {"server": {"type": "object", "properties": props,
                                                        "additionalProperties": False}},
            "required": ["server"], "additionalProperties": False}


async def update(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(_update_schema(req.version), body)
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:servers:update")
    changes = body["server"]
    values: dict[str, Any] = {}
    if "name" in changes:
        values["display_name"] = changes["name"].strip()
    if "accessIPv4" in changes:
        values["access_ip_v4"] = changes["accessIPv4"]
    if "accessIPv6" in changes:
        values["access_ip_v6"] = validation.normalized_ipv6(changes["accessIPv6"])
    if "OS-DCF:diskConfig" in changes:
        values["auto_disk_config"] = changes["OS-DCF:diskConfig"] == "AUTO"
    if "description" in changes:
        values["display_description"] = changes["description"]
    if "hostname" in changes:
        values["hostname"] = changes["hostname"]
    if values:
        async with req.services.db.write() as conn:
            if not await instances.update_instance(conn, inst["uuid"], values):
                raise Fault(404, f"Instance {inst['uuid']} could not be found.")
            inst = await instances.get(conn, inst["uuid"]) or inst
    view = await view_for(req, [inst], one=True)
    return json_response({"server": view.full(inst, update=True)})


async def delete(req: ApiRequest) -> Response:
    """DELETE: with ``[DEFAULT] reclaim_instance_interval`` a server that has run and has nothing under way is
    soft-deleted (restore brings it back; its host deletes it after the interval), else deleted."""
    await delete_instance(req, req.path["server_id"], "os_compute_api:servers:delete", deferrable=True)
    return empty_response(204)


async def delete_instance(req: ApiRequest, server_id: str, rule: str, deferrable: bool = False) -> None:
    """Delete the caller's server (any project's for admins; Nova's 404 otherwise) once ``rule`` allows it (403)
    and it is not locked (409 unless admin); ``deferrable``: soft-delete it instead under ``[DEFAULT]
    reclaim_instance_interval`` if it has run and has nothing under way. Its host does it when it is up, else it is
    deleted here at once (a soft delete of a server whose host is down is a delete, as Nova's local delete). The
    row is read, checked and marked in one transaction, so nothing can change it in between."""
    ctx = req.context.to_dict()
    cast_to: str | None = None
    method = "terminate_instance"
    async with req.services.db.write() as conn:
        current = await instances.get_plain(conn, server_id, project_id=visible_project(req.context))
        if current is None or current["deleted"]:
            raise Fault(404, f"Instance {server_id} could not be found.")
        policy.authorize(req.context, rule, {"project_id": current["project_id"], "user_id": current["user_id"]})
        uuid = current["uuid"]
        if current["locked"] and not req.context.is_admin:
            raise Fault(409, f"Instance {uuid} is locked")
        soft = (deferrable and req.services.conf.reclaim_instance_interval > 0
                and current["launched_at"] is not None and current["task_state"] is None
                and current["vm_state"] != states.SOFT_DELETED)
        await actions.action_start(conn, ctx, [uuid], "delete")
        host = current["host"]
        if host and await _service_up(conn, req, host):
            if soft and await instances.update_instance(conn, uuid, {"task_state": task_states.SOFT_DELETING},
                                                        expected_task_state=(None,)):
                method = "soft_delete_instance"
            else:
                await instances.update_instance(conn, uuid, {"task_state": task_states.DELETING})
            cast_to = host
        else:
            # Not on a host (still scheduling, or failed) or its host is down: delete here, as Nova's
            # local delete does; a build that is under way notices at its next step and cleans up.
            await placement.remove_allocations(conn, uuid)
            await instances.soft_delete(conn, uuid)
    if cast_to is not None:
        await ComputeAPI(req.services.transport).cast_power_action(ctx, cast_to, method, uuid)
    elif req.services.network is not None:  # Nova's _local_delete: the ports go too
        await _deallocate(req, ctx, current)


async def _deallocate(req: ApiRequest, ctx: dict[str, Any], instance: dict[str, Any]) -> None:
    """The ports of an instance deleted here (none, unless its host went down with them); the delete stands
    whatever the Networking service answers."""
    assert req.services.network is not None
    async with req.services.db.read() as conn:
        cached = await info_cache.get(conn, instance["uuid"])
    try:
        await req.services.network.deallocate_for_instance(ctx, instance, cached)
    except Exception:
        LOG.exception("ports of deleted instance %s could not be released", instance["uuid"])


#: a delete's look-up of its host's compute service (built once, on the fast path: stratus/db/prepared.py)
_COMPUTE_SERVICE = prepared(select(services).where(services.c.host == bindparam("b_host"),
                                                   services.c.binary == "nova-compute"))


async def _service_up(conn: Any, req: ApiRequest, host: str) -> bool:
    row = (await conn.execute(_COMPUTE_SERVICE, {"b_host": host})).mappings().first()
    return row is not None and services_db.is_up(dict(row), req.services.conf.service_down_time)


ROUTES: list[Route] = [
    Route("/servers", "GET", index),
    Route("/servers", "POST", servers_create.create),
    Route("/servers/detail", "GET", detail),
    Route("/servers/{server_id}", "GET", show),
    Route("/servers/{server_id}", "PUT", update),
    Route("/servers/{server_id}", "DELETE", delete),
]
