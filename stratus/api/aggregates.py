"""Host aggregates: ``/os-aggregates`` list, create, show, update, delete and the add_host, remove_host and
set_metadata actions; admin only, as Nova's.

An aggregate's availability zone is its ``availability_zone`` metadata. Nova's rules hold: a host is in one zone
at most, a zone can't change under hosts that run instances, an aggregate with hosts can't be deleted. Stratus
also refuses the internal services' zone (``[DEFAULT] internal_service_availability_zone``) as an aggregate's
zone. Every change is fanned out to the schedulers (``refresh_hosts``) so the next placement sees it.

Versions: 2.41 adds ``uuid`` to every aggregate body. Status codes are Nova's: 200 everywhere, delete too.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.api import validation
from stratus.api.common import ActionHandler, dispatch_action
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.db import aggregates as db
from stratus.db.engine import Connection
from stratus.identity.policy import authorize
from stratus.scheduler.rpcapi import SchedulerAPI
from stratus.utils import isotime_usec

_V241 = APIVersion.parse("2.41")  # uuid in aggregate bodies

# Nova's az_name: printable, no ':', no leading or trailing whitespace.
_az_name = {"type": ["string", "null"], "minLength": 1, "maxLength": 255,
            "pattern": r"^(?![\s])[^\x00-\x1f\x7f:]*(?<![\s])$"}
# Nova's name_with_leading_trailing_spaces: at least one character that is not whitespace (stripped after).
_name_with_spaces = {"type": "string", "minLength": 1, "maxLength": 255,
                     "pattern": r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"}
_fqdn = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9-._]*$"}
# Nova's metadata_with_null: a null value deletes the key.
_metadata_with_null = {"type": "object", "additionalProperties": False,
                       "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": ["string", "null"],
                                                                          "maxLength": 255}}}


def _object(key: str, properties: dict[str, Any], required: list[str] | None = None,
            **extra: Any) -> dict[str, Any]:
    inner: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False, **extra}
    if required:
        inner["required"] = required
    return {"type": "object", "properties": {key: inner}, "required": [key], "additionalProperties": False}


CREATE_SCHEMA = _object("aggregate", {"name": validation.name, "availability_zone": _az_name}, ["name"])
UPDATE_SCHEMA = _object("aggregate", {"name": _name_with_spaces, "availability_zone": _az_name},
                        anyOf=[{"required": ["name"]}, {"required": ["availability_zone"]}])
ADD_HOST_SCHEMA = _object("add_host", {"host": _fqdn}, ["host"])
REMOVE_HOST_SCHEMA = _object("remove_host", {"host": _fqdn}, ["host"])
SET_METADATA_SCHEMA = _object("set_metadata", {"metadata": _metadata_with_null}, ["metadata"])

# Nova's reasons, each with the prefix of the action that was refused (InvalidAggregateAction*).
_ADD = "Cannot add host to aggregate {id}. Reason: {reason}."
_REMOVE = "Cannot remove host from aggregate {id}. Reason: {reason}."
_UPDATE = "Cannot update aggregate {id}. Reason: {reason}."
_UPDATE_META = "Cannot update metadata of aggregate {id}. Reason: {reason}."
_MOVE = ("The host cannot be {verb} the aggregate as the availability zone of the host would change from '{old}' "
         "to '{new}' but the host already has {count} instance(s). Changing the AZ of an existing instance is not "
         "supported by this action. Move the instances away from this host then try again. If you need to move "
         "the instances between AZs then you can use shelve_offload and unshelve to achieve this.")


def view(req: ApiRequest, agg: dict[str, Any], with_members: bool = True) -> dict[str, Any]:
    """Nova's aggregate body; create's has no ``hosts`` and ``metadata``."""
    out: dict[str, Any] = {
        "id": agg["id"], "name": agg["name"], "availability_zone": agg["metadata"].get(db.AZ_KEY),
        "created_at": isotime_usec(agg["created_at"]), "updated_at": isotime_usec(agg["updated_at"]),
        "deleted": False, "deleted_at": None,
    }
    if with_members:
        out["hosts"] = list(agg["hosts"])
        out["metadata"] = dict(agg["metadata"])
    if req.at_least(_V241):
        out["uuid"] = agg["uuid"]
    return out


def path_id(req: ApiRequest) -> tuple[str, int]:
    """The path's id as given (for messages) and as an integer; Nova's 400 when it is not one."""
    raw = req.path["aggregate_id"]
    try:
        return raw, int(raw)
    except ValueError:
        raise Fault(400, "Invalid input received: id must be an integer") from None


async def load(conn: Connection, raw: str, agg_id: int, message: str | None = None) -> dict[str, Any]:
    agg = await db.get(conn, agg_id) if -2**63 <= agg_id < 2**63 else None  # past a 64-bit id: none such
    if agg is None:
        raise Fault(404, message or f"Aggregate {raw} could not be found.")
    return agg


async def _refresh(req: ApiRequest) -> None:
    await SchedulerAPI(req.services.transport).refresh_hosts(req.context.to_dict())


def _check_not_internal(req: ApiRequest, zone: str | None, template: str, agg_id: Any) -> None:
    internal = req.services.conf.internal_service_availability_zone
    if zone is not None and zone == internal:
        raise Fault(400, template.format(id=agg_id, reason=f"The availability zone '{internal}' is reserved for "
                                                             "internal services"))


async def _check_zone_change(conn: Connection, agg: dict[str, Any], changes: dict[str, Any], template: str,
                             code: int, hosts: list[str] | None = None, check_instances: bool = False) -> None:
    """Nova's ``is_safe_to_update_az``: no empty zone, no host in two zones, no zone change under instances."""
    if db.AZ_KEY not in changes:
        return
    zone = changes[db.AZ_KEY]
    if not zone:
        raise Fault(code, template.format(id=agg["id"], reason=f"Aggregate {agg['name']} does not support empty "
                                                                "named availability zone"))
    hosts = hosts or agg["hosts"]
    conflicting = [z for other, z in await db.zones_of_hosts(conn, hosts) if z != zone and other != agg["id"]]
    if conflicting:
        raise Fault(code, template.format(id=agg["id"], reason="One or more hosts already in availability "
                                                                f"zone(s) {conflicting!r}"))
    if (check_instances and agg["metadata"].get(db.AZ_KEY) != zone
            and await db.count_instances_on_hosts(conn, hosts)):
        raise Fault(code, template.format(id=agg["id"], reason="One or more hosts contain instances in this zone"))


async def _check_no_instance_moves(conn: Connection, agg: dict[str, Any], host: str, adding: bool) -> None:
    """A host with instances may not change zone by joining or leaving this aggregate (409, as Nova)."""
    count = await db.count_instances_on_hosts(conn, [host])
    this_zone = agg["metadata"].get(db.AZ_KEY)
    if not count or not this_zone:
        return
    others = sorted({z for other, z in await db.zones_of_hosts(conn, [host]) if adding or other != agg["id"]})
    current = others[0] if others else None
    old, new = (current, this_zone) if adding else (this_zone, current)
    if old != new:
        reason = _MOVE.format(verb="added to" if adding else "removed from", old=old, new=new, count=count)
        raise Fault(409, (_ADD if adding else _REMOVE).format(id=agg["id"], reason=reason))


async def index(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-aggregates:index", {})
    async with req.services.db.read() as conn:
        items = await db.list_all(conn)
    return json_response({"aggregates": [view(req, a) for a in items]})


async def create(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(CREATE_SCHEMA, body)
    authorize(req.context, "os_compute_api:os-aggregates:create", {})
    name = body["aggregate"]["name"].strip()
    zone = body["aggregate"].get("availability_zone")
    zone = zone.strip() if zone else None
    if zone is not None and zone == req.services.conf.internal_service_availability_zone:
        raise Fault(400, f"Cannot create aggregate {name}. Reason: The availability zone '{zone}' is reserved for "
                         "internal services.")
    try:
        async with req.services.db.write() as conn:
            agg = await db.create(conn, name, zone)
    except db.AggregateNameExists:
        raise Fault(409, f"Aggregate {name} already exists.") from None
    await _refresh(req)
    return json_response({"aggregate": view(req, agg, with_members=False)})


async def show(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-aggregates:show", {})
    raw, agg_id = path_id(req)
    async with req.services.db.read() as conn:
        agg = await load(conn, raw, agg_id)
    return json_response({"aggregate": view(req, agg)})


async def update(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(UPDATE_SCHEMA, body)
    authorize(req.context, "os_compute_api:os-aggregates:update", {})
    raw, agg_id = path_id(req)
    changes = dict(body["aggregate"])
    name = changes.pop("name").strip() if "name" in changes else None
    _check_not_internal(req, changes.get(db.AZ_KEY), _UPDATE, raw)
    try:
        async with req.services.db.write() as conn:
            agg = await load(conn, raw, agg_id)
            if name is not None:
                await db.update_name(conn, agg_id, name)
                agg["name"] = name
            await _check_zone_change(conn, agg, changes, _UPDATE, 400, check_instances=True)
            await db.update_metadata(conn, agg_id, changes)
            agg = await load(conn, raw, agg_id)
    except db.AggregateNameExists:
        raise Fault(409, f"Aggregate {name} already exists.") from None
    await _refresh(req)
    return json_response({"aggregate": view(req, agg)})


async def delete(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-aggregates:delete", {})
    raw, agg_id = path_id(req)
    async with req.services.db.write() as conn:
        agg = await load(conn, raw, agg_id)
        if agg["hosts"]:
            # Nova answers 400 here (InvalidAggregateActionDelete), not 409.
            raise Fault(400, _REMOVE.format(id=raw, reason="Host aggregate is not empty"))
        await db.delete_aggregate(conn, agg_id)
    await _refresh(req)
    return empty_response(200)


async def _add_host(req: ApiRequest, body: dict[str, Any]) -> Response:
    validation.validate(ADD_HOST_SCHEMA, body)
    host = body["add_host"]["host"]
    authorize(req.context, "os_compute_api:os-aggregates:add_host", {})
    raw, agg_id = path_id(req)
    async with req.services.db.write() as conn:
        if not await db.compute_host_exists(conn, host):
            raise Fault(404, f"Compute host {host} could not be found.")
        agg = await load(conn, raw, agg_id)
        await _check_zone_change(conn, agg, agg["metadata"], _ADD, 409, hosts=[host])
        await _check_no_instance_moves(conn, agg, host, adding=True)
        try:
            await db.add_host(conn, agg_id, host)
        except db.HostExists:
            raise Fault(409, f"Aggregate {agg_id} already has host {host}.") from None
        agg = await load(conn, raw, agg_id)
    await _refresh(req)
    return json_response({"aggregate": view(req, agg)})


async def _remove_host(req: ApiRequest, body: dict[str, Any]) -> Response:
    validation.validate(REMOVE_HOST_SCHEMA, body)
    host = body["remove_host"]["host"]
    authorize(req.context, "os_compute_api:os-aggregates:remove_host", {})
    raw, agg_id = path_id(req)
    not_found = f"Cannot remove host {host} in aggregate {raw}"
    async with req.services.db.write() as conn:
        if not await db.compute_host_exists(conn, host):
            raise Fault(404, not_found)
        agg = await load(conn, raw, agg_id, not_found)
        await _check_no_instance_moves(conn, agg, host, adding=False)
        if not await db.remove_host(conn, agg_id, host):
            raise Fault(404, not_found)
        agg = await load(conn, raw, agg_id)
    await _refresh(req)
    return json_response({"aggregate": view(req, agg)})


async def _set_metadata(req: ApiRequest, body: dict[str, Any]) -> Response:
    validation.validate(SET_METADATA_SCHEMA, body)
    authorize(req.context, "os_compute_api:os-aggregates:set_metadata", {})
    raw, agg_id = path_id(req)
    changes = body["set_metadata"]["metadata"]
    _check_not_internal(req, changes.get(db.AZ_KEY), _UPDATE_META, raw)
    async with req.services.db.write() as conn:
        agg = await load(conn, raw, agg_id)
        await _check_zone_change(conn, agg, changes, _UPDATE_META, 400, check_instances=True)
        await db.update_metadata(conn, agg_id, changes)
        agg = await load(conn, raw, agg_id)
    await _refresh(req)
    return json_response({"aggregate": view(req, agg)})


_ACTIONS: dict[str, ActionHandler] = {
    "add_host": _add_host,
    "remove_host": _remove_host,
    "set_metadata": _set_metadata,
}


async def action(req: ApiRequest) -> Response:
    return await dispatch_action(req, _ACTIONS)


ROUTES: list[Route] = [
    Route("/os-aggregates", "GET", index),
    Route("/os-aggregates", "POST", create),
    Route("/os-aggregates/{aggregate_id}", "GET", show),
    Route("/os-aggregates/{aggregate_id}", "PUT", update),
    Route("/os-aggregates/{aggregate_id}", "DELETE", delete),
    Route("/os-aggregates/{aggregate_id}/action", "POST", action),
]
