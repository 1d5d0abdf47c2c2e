"""``/os-simple-tenant-usage`` (list, admins) and ``/os-simple-tenant-usage/{tenant_id}`` (show), as Nova's.

For a period (``start`` and ``end``, ``%Y-%m-%dT%H:%M:%S[.%f]``, now when absent; an end in the future is now),
each instance that ran in it counts its hours in the period (from launch, or the start, to termination, or the
end) times its flavor's vCPUs, memory and disk, summed per project. ``detailed=1`` (list) and show give each
server's usage as well. 2.40 pages the servers with ``limit`` and ``marker`` (an instance uuid) and adds
``tenant_usages_links``; 2.75 refuses unknown query parameters.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import Response

from stratus.api.common import collection_links, limit_and_marker, reject_unexpected_query
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.db import usage as db
from stratus.identity.policy import authorize
from stratus.utils import isotime_usec, utcnow

_V240 = APIVersion.parse("2.40")  # limit, marker and links
_V275 = APIVersion.parse("2.75")  # unknown query parameters refused
_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")


def _parse_time(text: str | None) -> datetime.datetime:
    """Nova's ``_parse_datetime``: one of three formats (naive UTC), or now when absent."""
    if not text:
        return utcnow()
    for fmt in _FORMATS:
        try:
            return datetime.datetime.strptime(text, fmt)
        except ValueError:
            pass
    raise Fault(400, "Invalid datetime string: Datetime is in invalid format")


def _period(req: ApiRequest, allowed: tuple[str, ...]) -> tuple[datetime.datetime, datetime.datetime, bool]:
    """(start, stop, detailed) from the query, read as Nova does (the first value of each, from the raw query)."""
    if req.at_least(_V275):
        reject_unexpected_query(req, (*allowed, "limit", "marker"))
    query = parse_qs(req.raw.url.query)
    start = _parse_time(query.get("start", [None])[0])
    stop = _parse_time(query.get("end", [None])[0])
    if not start < stop:
        raise Fault(400, "Invalid start time. The start time cannot occur after the end time.")
    return start, min(stop, utcnow()), query.get("detailed", ["0"])[0] == "1"


def _hours(inst: dict[str, Any], start: datetime.datetime, stop: datetime.datetime) -> float:
    launched, terminated = inst["launched_at"], inst["terminated_at"]
    if launched is None or (terminated and terminated < start) or launched > stop:
        return 0
    end = min(stop, terminated) if terminated else stop
    return (end - max(launched, start)).total_seconds() / 3600.0


def _server_usage(inst: dict[str, Any], start: datetime.datetime, stop: datetime.datetime,
                  now: datetime.datetime) -> dict[str, Any]:
    flavor = inst["flavor"] or {}
    ended = inst["terminated_at"]
    return {
        "hours": _hours(inst, start, stop),
        "flavor": flavor.get("name", ""),
        "instance_id": inst["uuid"],
        "name": inst["display_name"],
        "tenant_id": inst["project_id"],
        "memory_mb": flavor.get("memory_mb", 0),
        "local_gb": flavor.get("root_gb", 0) + flavor.get("ephemeral_gb", 0),
        "vcpus": flavor.get("vcpus", 0),
        "started_at": isotime_usec(inst["launched_at"]),
        "ended_at": isotime_usec(ended),
        "state": "terminated" if ended else inst["vm_state"],
        "uptime": int(((ended or now) - inst["launched_at"]).total_seconds()),
    }


async def _usages(req: ApiRequest, start: datetime.datetime, stop: datetime.datetime, detailed: bool,
                  project_id: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """(per-project summaries, every server usage, the page size) for the period."""
    limit, marker = limit_and_marker(req) if req.at_least(_V240) else (int(req.services.conf.api.max_limit), None)
    async with req.services.db.read() as conn:
        try:
            rows = await db.active_in_window(conn, start, stop, project_id=project_id, limit=limit, marker=marker)
        except db.MarkerNotFound:
            raise Fault(400, f"Marker {marker} could not be found.") from None
    now = utcnow()
    summaries: dict[str, dict[str, Any]] = {}
    servers = []
    for row in rows:
        info = _server_usage(row, start, stop, now)
        summary = summaries.setdefault(info["tenant_id"], {
            "tenant_id": info["tenant_id"], **({"server_usages": []} if detailed else {}),
            "total_local_gb_usage": 0, "total_vcpus_usage": 0, "total_memory_mb_usage": 0, "total_hours": 0,
            "start": isotime_usec(start), "stop": isotime_usec(stop)})
        summary["total_local_gb_usage"] += info["local_gb"] * info["hours"]
        summary["total_vcpus_usage"] += info["vcpus"] * info["hours"]
        summary["total_memory_mb_usage"] += info["memory_mb"] * info["hours"]
        summary["total_hours"] += info["hours"]
        servers.append(info)
        if detailed:
            summary["server_usages"].append(info)
    return list(summaries.values()), servers, limit


async def index(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-simple-tenant-usage:list", {})
    start, stop, detailed = _period(req, ("start", "end", "detailed"))
    usages, servers, limit = await _usages(req, start, stop, detailed, None)
    body: dict[str, Any] = {"tenant_usages": usages}
    if req.at_least(_V240) and (links := collection_links(req, "os-simple-tenant-usage", servers, limit,
                                                          "instance_id")):
        body["tenant_usages_links"] = links
    return json_response(body)


async def show(req: ApiRequest) -> Response:
    tenant_id = req.path["tenant_id"]
    authorize(req.context, "os_compute_api:os-simple-tenant-usage:show", {"project_id": tenant_id})
    start, stop, _ = _period(req, ("start", "end"))
    usages, servers, limit = await _usages(req, start, stop, True, tenant_id)
    body: dict[str, Any] = {"tenant_usage": usages[0] if usages else {}}
    if req.at_least(_V240) and (links := collection_links(req, f"os-simple-tenant-usage/{tenant_id}", servers,
                                                          limit, "instance_id")):
        body["tenant_usage_links"] = links
    return json_response(body)


ROUTES: list[Route] = [
    Route("/os-simple-tenant-usage", "GET", index),
    Route("/os-simple-tenant-usage/{tenant_id}", "GET", show),
]
