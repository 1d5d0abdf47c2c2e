"""Availability zones: ``/os-availability-zone`` for everyone and ``/os-availability-zone/detail`` for admins.

A zone is available when at least one enabled service is in it; a zone whose services are all disabled is
listed as not available. Compute services are in their host's zone (an aggregate's ``availability_zone``
metadata, else ``[DEFAULT] default_availability_zone``); every other service is in the internal zone
(``[DEFAULT] internal_service_availability_zone``), which only the detail shows. The detail lists, for each
available zone, its hosts and the enabled services on each, as Nova's does. No version changes these bodies.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.db import hosts as db
from stratus.db import services as services_db
from stratus.identity.policy import authorize
from stratus.utils import isotime_usec, utcnow


async def _zoned_services(req: ApiRequest) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Every service with its ``zone``, then the available and the not available zone names, sorted."""
    conf = req.services.conf
    async with req.services.db.read() as conn:
        services = await db.list_services(conn)
        zones = await db.host_zones(conn, conf.default_availability_zone)
    for service in services:
        service["zone"] = db.service_zone(service, zones, conf.default_availability_zone,
                                          conf.internal_service_availability_zone)
    available = {s["zone"] for s in services if not s["disabled"]}
    not_available = {s["zone"] for s in services if s["disabled"]} - available
    return services, sorted(available), sorted(not_available)


def _zone(name: str, available: bool, hosts: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"zoneName": name, "zoneState": {"available": available}, "hosts": hosts}


async def index(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-availability-zone:list", {})
    _, available, not_available = await _zoned_services(req)
    internal = req.services.conf.internal_service_availability_zone
    return json_response({"availabilityZoneInfo": [_zone(z, True) for z in available if z != internal]
                                                  + [_zone(z, False) for z in not_available if z != internal]})


async def detail(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-availability-zone:detail", {})
    services, available, not_available = await _zoned_services(req)
    down_time = req.services.conf.service_down_time
    now = utcnow()
    hosts: dict[str, dict[str, dict[str, Any]]] = {zone: {} for zone in available}
    for service in services:
        if service["disabled"]:
            continue
        hosts[service["zone"]].setdefault(service["host"], {})[service["binary"]] = {
            "available": services_db.is_up(service, down_time, now),
            "active": True,  # only enabled services are listed
            "updated_at": isotime_usec(service["updated_at"]),
        }
    return json_response({"availabilityZoneInfo": [_zone(z, True, hosts[z]) for z in available]
                                                  + [_zone(z, False) for z in not_available]})


ROUTES: list[Route] = [
    Route("/os-availability-zone", "GET", index),
    Route("/os-availability-zone/detail", "GET", detail),
]
