"""Servers: list, detail, show, update, delete. Create lives in ``servers_create``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.responses import Response

from stratus.api import server_view, servers_create, validation
from stratus.api.common import collection_links, limit_and_marker, visible_project
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.compute.rpcapi import ComputeAPI
from stratus.db import actions, instances, placement
from stratus.db import services as services_db
from stratus.db.models import services
from stratus.identity import policy
from stratus.objects import states
from stratus.objects.states import task_states
from stratus.utils import parse_isotime, utcnow

V219 = APIVersion.parse("2.19")
V226 = APIVersion.parse("2.26")
V238 = APIVersion.parse("2.38")

#: the query parameters Nova's servers query schema declares ``common_query_regex_param``: each value must be a
#: pattern ``re`` compiles (Nova's 400 otherwise), whether or not this cloud filters on it
_REGEX_PARAMS = ("kernel_id", "ramdisk_id", "hostname", "key_name", "power_state", "node", "flavor",
                 "reservation_id", "launched_at", "terminated_at", "availability_zone", "name", "display_name",
                 "description", "display_description", "locked_by", "root_device_name", "config_drive",
                 "access_ip_v4", "access_ip_v6", "auto_disk_config", "progress", "ip", "ip6", "created_at")
_REGEX_PARAMS_V226 = (*_REGEX_PARAMS, "tags", "tags-any", "not-tags", "not-tags-any")


async def load_instance(req: ApiRequest, server_id: str, rule: str) -> dict[str, Any]:
    """The caller's instance (any project's for admins) or Nova's 404, then ``rule`` on it or Nova's 403."""
    ctx = req.context
    async with req.services.db.read() as conn:
        inst = await instances.get(conn, server_id, project_id=visible_project(ctx))
    if inst is None:
        raise Fault(404, f"Instance {server_id} could not be found.")
    policy.authorize(ctx, rule, {"project_id": inst["project_id"], "user_id": inst["user_id"]})
    return inst


def _filters(req: ApiRequest, rule: str) -> instances.ListFilters:
    ctx = req.context
    q = req.query
    regex_params = _REGEX_PARAMS_V226 if req.version >= V226 else _REGEX_PARAMS
    validation.validate_query(q, {p: validation.query_regex for p in regex_params})
    policy.authorize(ctx, rule, {"project_id": ctx.project_id})
    is_admin = policy.check(ctx, "os_compute_api:servers:allow_all_filters")
    f = instances.ListFilters()
    all_tenants = "all_tenants" in q and validation.bool_from_string(q.get("all_tenants") or "true", "all_tenants")
    if all_tenants:
        policy.authorize(ctx, f"{rule}:get_all_tenants")
        f.project_id = q.get("project_id") or q.get("tenant_id") if is_admin else None
    else:
        f.project_id = q.get("project_id") if is_admin and q.get("project_id") else ctx.project_id
    if "status" in q:
        vm_states: set[str] = set()
        tasks: set[str | None] = set()
        any_task = False
        for status in q.getlist("status"):
            vms, ts = states.states_from_status(status)
            if not vms:
                if req.version >= V238:
                    raise Fault(400, f"Invalid status value: {status}")
                return _nothing(f)
            vm_states.update(vms)
            if ts is None:
                any_task = True
            else:
                tasks.update(ts)
        f.vm_states = sorted(vm_states)
        f.task_states = None if any_task else list(tasks)
        if "deleted" in vm_states:
            f.include_deleted = True
    if q.get("changes-since"):
        try:
            f.changes_since = parse_isotime(q["changes-since"])
        except (ValueError, OverflowError):  # an offset past year 1 or 9999 overflows
            since = q["changes-since"]
            raise Fault(400, f"Invalid input for query parameters changes-since. Value: {validation.short(since)}. "
                             f"{validation.short_repr(since)} is not a 'date-time'") from None
        f.include_deleted = True
    if q.get("name"):
        f.name = q["name"]
    if q.get("image"):
        f.image_ref = q["image"].rsplit("/", 1)[-1]
    if q.get("flavor"):
        f.flavorid = q["flavor"].rsplit("/", 1)[-1]
    if q.get("reservation_id"):
        f.reservation_id = q["reservation_id"]
    if is_admin:
        if "deleted" in q and validation.bool_from_string(q["deleted"], "deleted"):
            f.only_deleted = True
        for key, attr in (("host", "host"), ("node", "node"), ("user_id", "user_id"),
                          ("availability_zone", "availability_zone"), ("key_name", "key_name"),
                          ("uuid", "uuids")):
            if q.get(key):
                setattr(f, attr, [q[key]] if attr == "uuids" else q[key])
        if "locked" in q:
            f.locked = validation.bool_from_string(q["locked"], "locked")
    if req.version >= V226:
        for key, attr in (("tags", "tags"), ("tags-any", "tags_any"), ("not-tags", "not_tags"),
                          ("not-tags-any", "not_tags_any")):
            if q.get(key):
                setattr(f, attr, [t for t in q[key].split(",") if t])
    keys, dirs = q.getlist("sort_key"), q.getlist("sort_dir")
    if keys or dirs:
        if dirs and len(dirs) > len(keys):
            raise Fault(400, "The number of sort_keys and sort_dirs must be same")
        sort = []
        for i, key in enumerate(keys):
            direction = (dirs[i] if i < len(dirs) else (dirs[0] if dirs else "desc")).lower()
            if direction not in ("asc", "desc"):
                raise Fault(400, f"Invalid input for query parameters sort_dir. Value: {direction}.")
            column = {"display_name": "display_name", "name": "display_name"}.get(key, key)
            if column not in instances.SORT_KEYS:
                raise Fault(400, f"Invalid input for query parameters sort_key. Value: {key}.")
            sort.append((column, direction))
        if sort:
            f.sort = sort
    f.limit, f.marker = limit_and_marker(req)
    return f


def _nothing(f: instances.ListFilters) -> instances.ListFilters:
    f.uuids = []
    return f


async def _list(req: ApiRequest, rule: str) -> list[dict[str, Any]]:
    f = _filters(req, rule)
    async with req.services.db.read() as conn:
        try:
            return await instances.list_page(conn, f)
        except instances.MarkerNotFound:
            raise Fault(400, f"marker [{f.marker}] not found") from None
        except instances.InvalidRegex as exc:  # Python's re took it, the database's engine does not: Nova's 400
            raise Fault(400, f"Invalid input for query parameters name. Value: {validation.short(exc.pattern)}. "
                             f"{validation.short_repr(exc.pattern)} is not a 'regex'") from None


def _page_size(req: ApiRequest) -> int:
    return limit_and_marker(req)[0]


async def index(req: ApiRequest) -> Response:
    rows = await _list(req, "os_compute_api:servers:index")
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


async def _view(req: ApiRequest, rows: list[dict[str, Any]]) -> server_view.ServerViewBuilder:
    view = server_view.ServerViewBuilder(req)
    if view.show_host_status:
        view.host_status = await _host_status(req, rows)
    return view


async def detail(req: ApiRequest) -> Response:
    rows = await _list(req, "os_compute_api:servers:detail")
    view = await _view(req, rows)
    body: dict[str, Any] = {"servers": [view.full(r) for r in rows]}
    links = collection_links(req, "servers/detail", rows, _page_size(req), "uuid")
    if links:
        body["servers_links"] = links
    return json_response(body)


async def show(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:servers:show")
    view = await _view(req, [inst])
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
        values["access_ip_v6"] = changes["accessIPv6"]
    if "OS-DCF:diskConfig" in changes:
        values["auto_disk_config"] = changes["OS-DCF:diskConfig"] == "AUTO"
    if "description" in changes:
        values["display_description"] = changes["description"]
    if values:
        async with req.services.db.write() as conn:
            if not await instances.update_instance(conn, inst["uuid"], values):
                raise Fault(404, f"Instance {inst['uuid']} could not be found.")
            inst = await instances.get(conn, inst["uuid"]) or inst
    return json_response({"server": server_view.ServerViewBuilder(req).full(inst, update=True)})


async def delete(req: ApiRequest) -> Response:
    """DELETE: with ``[DEFAULT] reclaim_instance_interval`` a server that has run and has nothing under way is
    soft-deleted (restore brings it back; its host deletes it after the interval), else deleted."""
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:servers:delete")
    if inst["locked"] and not req.context.is_admin:
        raise Fault(409, f"Instance {inst['uuid']} is locked")
    soft = (req.services.conf.reclaim_instance_interval > 0 and inst["launched_at"] is not None
            and inst["task_state"] is None and inst["vm_state"] != states.SOFT_DELETED)
    await delete_instance(req, inst["uuid"], soft=soft)
    return empty_response(204)


async def delete_instance(req: ApiRequest, uuid: str, soft: bool = False) -> None:
    """Delete (or soft-delete) a server: its host does it when it is up, else it is deleted here at once (a
    soft delete of a server whose host is down is a delete, as Nova's local delete)."""
    ctx = req.context.to_dict()
    cast_to: str | None = None
    method = "terminate_instance"
    async with req.services.db.write() as conn:
        current = await instances.get_plain(conn, uuid)
        if current is None or current["deleted"]:
            raise Fault(404, f"Instance {uuid} could not be found.")
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


async def _service_up(conn: Any, req: ApiRequest, host: str) -> bool:
    row = (await conn.execute(select(services).where(services.c.host == host,
                                                     services.c.binary == "nova-compute"))).mappings().first()
    return row is not None and services_db.is_up(dict(row), req.services.conf.service_down_time)


ROUTES: list[Route] = [
    Route("/servers", "GET", index),
    Route("/servers", "POST", servers_create.create),
    Route("/servers/detail", "GET", detail),
    Route("/servers/{server_id}", "GET", show),
    Route("/servers/{server_id}", "PUT", update),
    Route("/servers/{server_id}", "DELETE", delete),
]
