"""``/os-hosts`` (2.1 to 2.42; 404 from 2.43, as Nova's): the cloud's service hosts, and a compute host's resources.

- ``GET /os-hosts[?zone=Z]``: every enabled service but the API ones, as ``host_name``, ``service`` (its topic)
  and ``zone`` (a compute host's availability zone, ``[DEFAULT] internal_service_availability_zone`` for the
  others).
- ``GET /os-hosts/{host}``: the first compute node of the host as Nova shows it: ``(total)``, ``(used_now)`` (the
  node's usage, reserved share included), ``(used_max)`` (the sum of its instances' flavors) and one entry per
  project with instances there.
- ``PUT /os-hosts/{host}`` (``status``, ``maintenance_mode``) and ``GET .../reboot``, ``.../shutdown``,
  ``.../startup`` ask the host's driver to change the host itself. Nova's libvirt driver implements none of
  them, and neither does any driver here: for a compute host they are Nova's 501, for any other name its 404.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.responses import Response

from stratus.api import validation
from stratus.api.errors import Fault
from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.db import hosts as hosts_db
from stratus.db.models import instances, services
from stratus.identity.policy import authorize

_MAX = "2.42"
_API_BINARIES = ("nova-osapi_compute", "nova-metadata")
_NOT_SUPPORTED = "The requested functionality is not supported."
_MODE = {"type": "string", "enum": ["enable", "disable", "Enable", "Disable", "ENABLE", "DISABLE"]}
UPDATE_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"status": _MODE, "maintenance_mode": _MODE},
    "anyOf": [{"required": ["status"]}, {"required": ["maintenance_mode"]}], "additionalProperties": False,
}


async def index(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-hosts:list", {})
    conf = req.services.conf
    zone = req.query.get("zone")
    async with req.services.db.read() as conn:
        rows = [dict(r) for r in (await conn.execute(
            select(services.c.host, services.c.binary, services.c.topic)
            .where(services.c.disabled.is_(False), services.c.binary.not_in(_API_BINARIES))
            .order_by(services.c.id))).mappings()]
        zones = await hosts_db.host_zones(conn, conf.default_availability_zone)
    hosts = [{"host_name": r["host"], "service": r["topic"],
              "zone": hosts_db.service_zone(r, zones, conf.default_availability_zone,
                                            conf.internal_service_availability_zone)} for r in rows]
    if zone:
        hosts = [h for h in hosts if h["zone"] == zone]
    return json_response({"hosts": hosts})


def _resource(host: str, project: str, cpu: int, memory_mb: int, disk_gb: int) -> dict[str, Any]:
    return {"resource": {"host": host, "project": project, "cpu": cpu, "memory_mb": memory_mb, "disk_gb": disk_gb}}


async def show(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-hosts:show", {})
    host = req.path["host_name"]
    async with req.services.db.read() as conn:
        nodes = await hosts_db.compute_nodes_with_usage(conn, host=host, limit=1)
        if not nodes:
            raise Fault(404, f"Compute host {validation.short(host)} could not be found.")
        c = instances.c
        rows = (await conn.execute(select(c.project_id, c.vcpus, c.memory_mb, c.root_gb, c.ephemeral_gb)
                                   .where(c.host == host, c.deleted == 0).order_by(c.id))).mappings().all()
    node = nodes[0]
    out = [_resource(host, "(total)", node["vcpus"], node["memory_mb"], node["local_gb"]),
           _resource(host, "(used_now)", node["vcpus_used"], node["memory_mb_used"], node["local_gb_used"]),
           _resource(host, "(used_max)", sum(r["vcpus"] for r in rows), sum(r["memory_mb"] for r in rows),
                     sum(r["root_gb"] + r["ephemeral_gb"] for r in rows))]
    projects: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = projects.setdefault(r["project_id"], _resource(host, r["project_id"], 0, 0, 0))["resource"]
        entry["cpu"] += r["vcpus"]
        entry["memory_mb"] += r["memory_mb"]
        entry["disk_gb"] += r["root_gb"] + r["ephemeral_gb"]
    out.extend(projects.values())
    return json_response({"host": out})


async def _compute_host(req: ApiRequest) -> str:
    """Nova's ``_assert_host_exists``: the name of a compute service's host, else 404."""
    host = req.path["host_name"]
    async with req.services.db.read() as conn:
        found = (await conn.execute(select(services.c.host).where(
            services.c.host == host, services.c.binary == hosts_db.COMPUTE))).first()
    if found is None:
        raise Fault(404, f"Host {validation.short(host)} could not be found.")
    return host


async def update(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(UPDATE_SCHEMA, body)
    authorize(req.context, "os_compute_api:os-hosts:update", {})
    await _compute_host(req)
    raise Fault(501, _NOT_SUPPORTED)


def _power(rule: str) -> Any:
    async def handler(req: ApiRequest) -> Response:
        authorize(req.context, rule, {})
        await _compute_host(req)
        raise Fault(501, _NOT_SUPPORTED)

    return handler


ROUTES: list[Route] = [
    Route("/os-hosts", "GET", index, max_version=_MAX),
    Route("/os-hosts/{host_name}", "GET", show, max_version=_MAX),
    Route("/os-hosts/{host_name}", "PUT", update, max_version=_MAX),
    Route("/os-hosts/{host_name}/reboot", "GET", _power("os_compute_api:os-hosts:reboot"), max_version=_MAX),
    Route("/os-hosts/{host_name}/shutdown", "GET", _power("os_compute_api:os-hosts:shutdown"), max_version=_MAX),
    Route("/os-hosts/{host_name}/startup", "GET", _power("os_compute_api:os-hosts:start"), max_version=_MAX),
]
