"""Services: ``/os-services`` list, enable/disable/force down, delete (admin only), as Nova's.

Versions: 2.11 adds ``forced_down`` to the list and the ``force-down`` action; 2.53 identifies services by uuid
(``PUT /os-services/{uuid}`` with ``status``, ``disabled_reason``, ``forced_down`` replaces the actions, and
``DELETE`` takes the uuid). Only nova-compute services can be updated. Deleting a compute service removes its
compute nodes, their resource providers and the host's aggregate memberships, and is refused (409) while the
host still has instances or migrations under way. Every change tells the schedulers to re-read hosts.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from starlette.responses import Response

from stratus.api import validation
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.db import hosts as db
from stratus.db import services as services_db
from stratus.identity.policy import authorize
from stratus.scheduler.rpcapi import SchedulerAPI
from stratus.utils import is_uuid_like, isotime_usec, utcnow

LOG = logging.getLogger(__name__)

_V211 = APIVersion.parse("2.11")  # forced_down shown; force-down action
_V253 = APIVersion.parse("2.53")  # uuids; PUT /os-services/{uuid} replaces the actions

_fqdn = {"type": "string", "pattern": "^[a-zA-Z0-9-._]*$", "minLength": 1, "maxLength": 255}
_text = {"type": "string", "minLength": 1, "maxLength": 255}
_boolean = {"type": ["boolean", "string"],
            "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
                     False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]}

UPDATE_SCHEMA_V21: dict[str, Any] = {
    "type": "object",
    "properties": {"host": _fqdn, "binary": _text, "disabled_reason": _text},
    "required": ["host", "binary"],
    "additionalProperties": False,
}
UPDATE_SCHEMA_V211: dict[str, Any] = {
    **UPDATE_SCHEMA_V21,
    "properties": {**UPDATE_SCHEMA_V21["properties"], "forced_down": _boolean},
}
UPDATE_SCHEMA_V253: dict[str, Any] = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["enabled", "disabled"]}, "disabled_reason": _text,
                   "forced_down": _boolean},
    "additionalProperties": False,
}

_MAX_DB_INT = 2**31 - 1  # ids are 32-bit integer columns: a bigger one names nothing


def service_view(req: ApiRequest, service: dict[str, Any], zone: str, now: datetime.datetime) -> dict[str, Any]:
    """Nova's service body for the request's version."""
    out = {
        "binary": service["binary"],
        "host": service["host"],
        "id": service["uuid"] if req.at_least(_V253) else service["id"],
        "zone": zone,
        "status": "disabled" if service["disabled"] else "enabled",
        "state": "up" if services_db.is_up(service, req.services.conf.service_down_time, now) else "down",
        "updated_at": isotime_usec(service["updated_at"]),
        "disabled_reason": service["disabled_reason"],
    }
    if req.at_least(_V211):
        out["forced_down"] = bool(service["forced_down"])
    return out


def _zone(req: ApiRequest, service: dict[str, Any], zones: dict[str, str]) -> str:
    conf = req.services.conf
    return db.service_zone(service, zones, conf.default_availability_zone, conf.internal_service_availability_zone)


async def refresh_schedulers(req: ApiRequest) -> None:
    """Tell every scheduler at once that hosts changed; they also re-read on their own, so a failure to tell
    them is logged, not the caller's error (the change is already committed)."""
    try:
        await SchedulerAPI(req.services.transport).refresh_hosts(req.context.to_dict())
    except Exception:
        LOG.exception("could not tell the schedulers to refresh hosts")


async def index(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-services:list", {})
    host, binary = req.query.get("host") or None, req.query.get("binary") or None
    async with req.services.db.read() as conn:
        rows = await db.list_services(conn, host=host, binary=binary)
        zones = await db.host_zones(conn, req.services.conf.default_availability_zone,
                                    hosts=None if host is None else [host])
    now = utcnow()
    return json_response({"services": [service_view(req, s, _zone(req, s, zones), now) for s in rows]})


async def _update_by_host(req: ApiRequest, host: str, binary: str, values: dict[str, Any]) -> None:
    """The pre-2.53 update of the service named by (host, binary): only compute services, Nova's 404 else."""
    if binary != db.COMPUTE:
        raise Fault(400, f"Updating a {binary} service is not supported. Only nova-compute services can be "
                         "updated.")
    async with req.services.db.write() as conn:
        service = await db.get_service(conn, host=host, binary=binary)
        if service is None:
            raise Fault(404, f"Host '{host}' is not mapped to any cell")
        await db.update_service(conn, service["id"], values)
    await refresh_schedulers(req)


def _evacuations_remain(host: str) -> Fault:
    return Fault(400, f"Unable to force up host {host} as `done` evacuation migration records remain associated "
                      "with the host. Ensure the compute service has been restarted, allowing these records to "
                      "move to `completed` before retrying this request.")


async def update_v21(req: ApiRequest) -> Response:
    """``PUT /os-services/{enable,disable,disable-log-reason,force-down}`` with the host and binary in the body."""
    body = await req.json()
    validation.validate(UPDATE_SCHEMA_V211 if req.at_least(_V211) else UPDATE_SCHEMA_V21, body)
    authorize(req.context, "os_compute_api:os-services:update", {})
    action = req.path["service_id"]
    actions = ("enable", "disable", "disable-log-reason") + (("force-down",) if req.at_least(_V211) else ())
    if action not in actions:
        raise Fault(404, "Unknown action")
    host, binary = body["host"], body["binary"]
    if action == "force-down":
        if "forced_down" not in body:
            raise Fault(400, "Missing forced_down field")
        forced_down = validation.bool_from_string(body["forced_down"], "forced_down")
        if binary == db.COMPUTE and not forced_down:
            async with req.services.db.read() as conn:
                if await db.has_done_evacuations(conn, host):
                    raise _evacuations_remain(host)
        await _update_by_host(req, host, binary, {"forced_down": forced_down})
        return json_response({"service": {"host": host, "binary": binary, "forced_down": forced_down}})
    if action == "disable-log-reason" and "disabled_reason" not in body:
        raise Fault(400, "Missing disabled reason field")
    reason = body["disabled_reason"] if action == "disable-log-reason" else None
    disabled = action != "enable"
    await _update_by_host(req, host, binary, {"disabled": disabled, "disabled_reason": reason})
    out = {"host": host, "binary": binary, "status": "disabled" if disabled else "enabled"}
    if reason:
        out["disabled_reason"] = reason
    return json_response({"service": out})


async def update_v253(req: ApiRequest) -> Response:
    """``PUT /os-services/{uuid}``: ``status`` (with an optional ``disabled_reason``) and/or ``forced_down``."""
    body = await req.json()
    validation.validate(UPDATE_SCHEMA_V253, body)
    service_uuid = req.path["service_id"]
    if not is_uuid_like(service_uuid):
        raise Fault(400, f"Invalid uuid {service_uuid}")
    authorize(req.context, "os_compute_api:os-services:update", {})
    async with req.services.db.write() as conn:
        service = await db.get_service(conn, uuid=service_uuid)
        if service is None:
            raise Fault(404, f"Service {service_uuid} could not be found.")
        if service["binary"] != db.COMPUTE:
            raise Fault(400, f"Updating a {service['binary']} service is not supported. Only nova-compute "
                             "services can be updated.")
        values: dict[str, Any] = {}
        if body.get("status") == "enabled":
            if body.get("disabled_reason"):
                raise Fault(400, "Specifying 'disabled_reason' with status 'enabled' is invalid.")
            values.update(disabled=False, disabled_reason=None)
        elif body.get("status") == "disabled":
            values.update(disabled=True, disabled_reason=body.get("disabled_reason"))
        if "forced_down" in body:
            values["forced_down"] = validation.bool_from_string(body["forced_down"], "forced_down")
            if not values["forced_down"] and await db.has_done_evacuations(conn, service["host"]):
                raise _evacuations_remain(service["host"])
        if not values:
            raise Fault(400, "No updates were requested. Fields 'status' or 'forced_down' should be specified.")
        service = await db.update_service(conn, service["id"], values)
        zones = await db.host_zones(conn, req.services.conf.default_availability_zone, hosts=[service["host"]])
    await refresh_schedulers(req)
    return json_response({"service": service_view(req, service, _zone(req, service, zones), utcnow())})


def _int_id(text: str) -> int:
    """Nova's ``validate_integer`` of a path id."""
    try:
        return int(text)
    except ValueError:
        raise Fault(400, "Invalid input received: id must be an integer") from None


async def delete(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-services:delete", {})
    raw_id = req.path["service_id"]
    if req.at_least(_V253):
        if not is_uuid_like(raw_id):
            raise Fault(400, f"Invalid uuid {raw_id}")
        lookup: dict[str, Any] = {"uuid": raw_id}
    else:
        service_id = _int_id(raw_id)
        if abs(service_id) > _MAX_DB_INT:
            raise Fault(404, f"Service {raw_id} not found.")
        lookup = {"service_id": service_id}
    async with req.services.db.write() as conn:
        service = await db.get_service(conn, **lookup)
        if service is None:
            raise Fault(404, f"Service {raw_id} not found.")
        if service["binary"] == db.COMPUTE:
            if await db.count_instances_on_host(conn, service["host"]):
                raise Fault(409, "Unable to delete compute service that is hosting instances. Migrate or "
                                 "delete the instances first.")
            if await db.has_migrations_in_progress(conn, service["host"]):
                raise Fault(409, "Unable to delete compute service that has in-progress migrations. Complete "
                                 "the migrations or delete the instances first.")
        await db.delete_service(conn, service)
    await refresh_schedulers(req)
    return empty_response(204)


ROUTES: list[Route] = [
    Route("/os-services", "GET", index),
    Route("/os-services/{service_id}", "PUT", update_v21, max_version="2.52"),
    Route("/os-services/{service_id}", "PUT", update_v253, min_version="2.53"),
    Route("/os-services/{service_id}", "DELETE", delete),
]
