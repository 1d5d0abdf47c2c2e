"""Hypervisors: ``/os-hypervisors`` list, detail, show, statistics, search and servers (admin only), as Nova's.

A hypervisor is a compute node; its usage is placement's (allocations plus the host's reserved share) and
``running_vms`` counts the instances on it, read for the whole page in a fixed number of statements.

Versions: 2.28 shows ``cpu_info`` as an object; 2.33 pages list and detail with ``limit`` and ``marker``
(``hypervisors_links``); 2.53 identifies hypervisors and their services by uuid, replaces the
``/{pattern}/search`` and ``/{pattern}/servers`` routes by the ``hypervisor_hostname_pattern`` and
``with_servers`` query parameters, and refuses unknown query parameters. 2.75 shows ``servers: []`` when
``with_servers`` asked for them and there are none. 2.88 drops the statistics fields and ``cpu_info`` from the
detail and show bodies, adds ``uptime`` to them (asked of each up host; null otherwise) and removes
``/os-hypervisors/statistics`` (404).

``/os-hypervisors/{id}/uptime`` (to 2.87; Nova's 2.88 moves ``uptime`` into show and drops the route) asks the
node's compute host over RPC for its driver's ``get_host_uptime``, as Nova's ``get_host_uptime``: a host whose
service is down is 400 ``Compute service of <host> is unavailable at this time.``, a driver without it 501.
"""

from __future__ import annotations

import asyncio
import datetime
import re
from typing import Any

import jsonschema
import orjson
from starlette.responses import Response

from stratus import exception
from stratus.api import validation
from stratus.api.common import collection_links, limit_and_marker, reject_unexpected_query
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.compute.rpcapi import ComputeAPI, NotSupportedByDriver
from stratus.db import hosts as db
from stratus.db import services as services_db
from stratus.identity.policy import authorize
from stratus.utils import is_uuid_like, utcnow

_V228 = APIVersion.parse("2.28")  # cpu_info is an object
_V233 = APIVersion.parse("2.33")  # limit and marker
_V253 = APIVersion.parse("2.53")  # uuids; hostname pattern and with_servers as query parameters
_V275 = APIVersion.parse("2.75")  # servers: [] when asked for and there are none
_V288 = APIVersion.parse("2.88")  # no statistics fields, uptime in the detail body; no statistics or uptime routes

_MAX_DB_INT = 2**31 - 1  # ids are 32-bit integer columns: a bigger one names nothing
_QUERY_V253 = {
    "limit": {"type": "string", "pattern": "^[0-9]*$", "minLength": 1},
    "marker": {"type": "string"},
    "hypervisor_hostname_pattern": {"type": "string", "pattern": "^[a-zA-Z0-9-._]*$", "minLength": 1,
                                    "maxLength": 255},
    "with_servers": {"type": "string", "enum": ["True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes",
                                                "yes", "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO",
                                                "No", "no"]},
}
_STATISTICS = ("vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used", "free_ram_mb",
               "free_disk_gb", "current_workload", "running_vms", "disk_available_least")


def _check_query(req: ApiRequest, allowed: tuple[str, ...]) -> None:
    """Nova's strict query schema of 2.53: only ``allowed`` parameters, each given once and well formed."""
    reject_unexpected_query(req, allowed)
    for key in allowed:
        values = req.query.getlist(key)
        if len(values) > 1:
            raise Fault(400, f"Invalid input for query parameters {key}. Value: {values}. {values} is too long")
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft4Validator(_QUERY_V253[key]).iter_errors(values[0])) if values else None
        if error is not None:
            raise Fault(400, f"Invalid input for query parameters {key}. Value: {values[0]}. {error.message}")


def _with_servers(req: ApiRequest) -> bool:
    value = req.query.get("with_servers")
    return False if value is None else validation.bool_from_string(value, "with_servers")


def _service_up(req: ApiRequest, node: dict[str, Any], now: datetime.datetime) -> bool:
    """Whether the node's compute service is up (its heartbeat within ``service_down_time``, not forced down)."""
    service = {"forced_down": node["forced_down"], "last_seen_up": node["last_seen_up"],
               "updated_at": node["service_updated_at"], "created_at": node["service_created_at"]}
    return services_db.is_up(service, req.services.conf.service_down_time, now)


def _view(req: ApiRequest, node: dict[str, Any], detail: bool, now: datetime.datetime,
          with_servers: bool = False) -> dict[str, Any]:
    """Nova's hypervisor body for the request's version; ``servers`` when the node has some (or, from 2.75,
    whenever they were asked for); from 2.88 the detail body has ``uptime`` (``node["uptime"]``) instead of the
    statistics and ``cpu_info``."""
    uuids = req.at_least(_V253)
    out: dict[str, Any] = {
        "id": node["uuid"] if uuids else node["id"],
        "hypervisor_hostname": node["hypervisor_hostname"],
        "state": "up" if _service_up(req, node, now) else "down",
        "status": "disabled" if node["disabled"] else "enabled",
    }
    if detail:
        out.update(hypervisor_type=node["hypervisor_type"], hypervisor_version=node["hypervisor_version"],
                   host_ip=node["host_ip"],
                   service={"id": node["service_uuid"] if uuids else node["service_id"], "host": node["host"],
                            "disabled_reason": node["disabled_reason"]})
    if detail and req.at_least(_V288):
        out["uptime"] = node.get("uptime")
    elif detail:
        out.update({field: node[field] for field in _STATISTICS})
        if req.at_least(_V228):
            out["cpu_info"] = orjson.loads(node["cpu_info"]) if node["cpu_info"] else {}
        else:
            out["cpu_info"] = node["cpu_info"]
    if node.get("servers"):
        template = req.services.conf.instance_name_template
        out["servers"] = [{"name": template % s["id"], "uuid": s["uuid"]} for s in node["servers"]]
    elif with_servers and req.at_least(_V275):
        out["servers"] = []
    return out


async def _uptimes(req: ApiRequest, nodes: list[dict[str, Any]], now: datetime.datetime) -> None:
    """2.88's ``uptime`` of each node, asked of its host as Nova's detail view does; None for a host that is down or
    whose driver cannot tell."""
    if not req.at_least(_V288):
        return
    api = ComputeAPI(req.services.transport)

    async def one(node: dict[str, Any]) -> None:
        node["uptime"] = None
        if _service_up(req, node, now):
            try:
                node["uptime"] = await api.get_host_uptime(req.context.to_dict(), node["host"])
            except (NotSupportedByDriver, exception.MessagingTimeout):
                pass

    await asyncio.gather(*(one(n) for n in nodes))


async def _marker_id(conn: Any, req: ApiRequest, marker: str) -> int:
    """The node id after which a page starts: the marker is a node id, or its uuid from 2.53."""
    node_id = None
    if req.at_least(_V253):
        node_id = await db.find_node_id(conn, uuid=marker)
    elif re.fullmatch(r"[0-9]{1,10}", marker) and int(marker) <= _MAX_DB_INT:
        node_id = await db.find_node_id(conn, node_id=int(marker))
    if node_id is None:
        raise Fault(400, f"marker [{marker}] not found")
    return node_id


async def _list(req: ApiRequest, detail: bool) -> Response:
    collection = "os-hypervisors/detail" if detail else "os-hypervisors"
    if req.at_least(_V253):
        _check_query(req, ("limit", "marker", "hypervisor_hostname_pattern", "with_servers"))
    paged = req.at_least(_V233)
    limit, marker = limit_and_marker(req) if paged else (None, None)
    authorize(req.context, f"os_compute_api:os-hypervisors:{'list-detail' if detail else 'list'}", {})
    pattern = req.query.get("hypervisor_hostname_pattern") if req.at_least(_V253) else None
    with_servers = req.at_least(_V253) and _with_servers(req)
    if pattern is not None:
        if "limit" in req.query or marker:
            raise Fault(400, "Paging over hypervisors with the hypervisor_hostname_pattern query parameter is "
                             "not supported.")
        paged, limit, marker = False, None, None
    async with req.services.db.read() as conn:
        after_id = await _marker_id(conn, req, marker) if marker else None
        nodes = await db.compute_nodes_with_usage(conn, pattern=pattern, after_id=after_id, limit=limit,
                                                  with_servers=with_servers)
    if pattern is not None and not nodes:
        raise Fault(404, f"No hypervisor matching '{pattern}' could be found.")
    now = utcnow()
    if detail:
        await _uptimes(req, nodes, now)
    items = [_view(req, n, detail, now, with_servers) for n in nodes]
    body: dict[str, Any] = {"hypervisors": items}
    if paged and limit is not None and (links := collection_links(req, collection, items, limit, "id")):
        body["hypervisors_links"] = links
    return json_response(body)


async def index(req: ApiRequest) -> Response:
    return await _list(req, detail=False)


async def detail(req: ApiRequest) -> Response:
    return await _list(req, detail=True)


def _not_found(hypervisor_id: str) -> Fault:
    return Fault(404, f"Hypervisor with ID '{hypervisor_id}' could not be found.")


def _lookup(req: ApiRequest, hypervisor_id: str) -> dict[str, Any]:
    """Nova's ``_validate_id``: a uuid from 2.53 (else 400), an integer before (else 404)."""
    if req.at_least(_V253):
        if not is_uuid_like(hypervisor_id):
            raise Fault(400, f"Invalid uuid {hypervisor_id}")
        return {"uuid": hypervisor_id}
    try:
        node_id = int(hypervisor_id)
    except ValueError:
        raise _not_found(hypervisor_id) from None
    if abs(node_id) > _MAX_DB_INT:
        raise _not_found(hypervisor_id)
    return {"node_id": node_id}


async def show(req: ApiRequest) -> Response:
    if req.at_least(_V253):
        _check_query(req, ("with_servers",))
    authorize(req.context, "os_compute_api:os-hypervisors:show", {})
    hypervisor_id = req.path["hypervisor_id"]
    lookup = _lookup(req, hypervisor_id)
    with_servers = req.at_least(_V253) and _with_servers(req)
    async with req.services.db.read() as conn:
        nodes = await db.compute_nodes_with_usage(conn, with_servers=with_servers, **lookup)
    if not nodes:
        raise _not_found(hypervisor_id)
    now = utcnow()
    await _uptimes(req, nodes, now)
    return json_response({"hypervisor": _view(req, nodes[0], True, now, with_servers)})


async def uptime(req: ApiRequest) -> Response:
    """``GET /os-hypervisors/{id}/uptime`` (2.1 to 2.87): the list body of the hypervisor plus ``uptime``, what the
    host's ``uptime`` prints. Nova's query schema for it is empty: any query is accepted and ignored."""
    authorize(req.context, "os_compute_api:os-hypervisors:uptime", {})
    hypervisor_id = req.path["hypervisor_id"]
    lookup = _lookup(req, hypervisor_id)
    async with req.services.db.read() as conn:
        nodes = await db.compute_nodes_with_usage(conn, **lookup)
    if not nodes:
        raise _not_found(hypervisor_id)
    node, now = nodes[0], utcnow()
    if not _service_up(req, node, now):
        raise Fault(400, f"Compute service of {node['host']} is unavailable at this time.")
    try:
        text = await ComputeAPI(req.services.transport).get_host_uptime(req.context.to_dict(), node["host"])
    except NotSupportedByDriver as exc:
        raise Fault(501, exc.message) from None
    return json_response({"hypervisor": {**_view(req, node, False, now), "uptime": text}})


async def _by_pattern(req: ApiRequest, rule: str, with_servers: bool) -> Response:
    authorize(req.context, rule, {})
    pattern = req.path["pattern"]
    async with req.services.db.read() as conn:
        nodes = await db.compute_nodes_with_usage(conn, pattern=pattern, with_servers=with_servers)
    if not nodes:
        raise Fault(404, f"No hypervisor matching '{pattern}' could be found.")
    now = utcnow()
    return json_response({"hypervisors": [_view(req, n, False, now) for n in nodes]})


async def search(req: ApiRequest) -> Response:
    """``GET /os-hypervisors/{pattern}/search`` (before 2.53): hypervisors whose hostname contains it."""
    return await _by_pattern(req, "os_compute_api:os-hypervisors:search", with_servers=False)


async def servers(req: ApiRequest) -> Response:
    """``GET /os-hypervisors/{pattern}/servers`` (before 2.53): the same, with the servers on each."""
    return await _by_pattern(req, "os_compute_api:os-hypervisors:servers", with_servers=True)


async def statistics(req: ApiRequest) -> Response:
    """Totals over the hypervisors of enabled compute services."""
    authorize(req.context, "os_compute_api:os-hypervisors:statistics", {})
    async with req.services.db.read() as conn:
        nodes = await db.compute_nodes_with_usage(conn, enabled_only=True)
    stats = {"count": len(nodes), **{field: sum(n[field] for n in nodes) for field in _STATISTICS}}
    return json_response({"hypervisor_statistics": stats})


# Fixed paths before /os-hypervisors/{hypervisor_id}: the first matching path wins.
ROUTES: list[Route] = [
    Route("/os-hypervisors", "GET", index),
    Route("/os-hypervisors/detail", "GET", detail),
    Route("/os-hypervisors/statistics", "GET", statistics, max_version="2.87"),
    Route("/os-hypervisors/{pattern}/search", "GET", search, max_version="2.52"),
    Route("/os-hypervisors/{pattern}/servers", "GET", servers, max_version="2.52"),
    Route("/os-hypervisors/{hypervisor_id}", "GET", show),
    Route("/os-hypervisors/{hypervisor_id}/uptime", "GET", uptime, max_version="2.87"),
]
