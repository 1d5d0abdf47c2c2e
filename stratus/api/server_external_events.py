"""``POST /os-server-external-events``: the Networking service tells Nova that a port was plugged, unplugged or
changed (``network-vif-plugged``, ...); each event goes to the host of its instance over RPC, where a build or an
attach may be waiting for it. 200 when every event was accepted, 207 when some were not (each with its own
``code``: 404 unknown instance, 422 instance on no host), 404 when none was, as Nova's."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam, select
from starlette.responses import Response

from stratus.api import validation
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.compute.rpcapi import ComputeAPI
from stratus.db.models import instances
from stratus.identity import policy

V251 = APIVersion.parse("2.51")
V276 = APIVersion.parse("2.76")
V282 = APIVersion.parse("2.82")
V293 = APIVersion.parse("2.93")


def _names(version: APIVersion) -> list[str]:
    """The event names each microversion accepts (Nova's schemas)."""
    names = ["network-changed", "network-vif-plugged", "network-vif-unplugged", "network-vif-deleted"]
    if version >= V251:
        names.append("volume-extended")
    if version >= V276:
        names.append("power-update")
    if version >= V282:
        names.append("accelerator-request-bound")
    if version >= V293:
        names.append("volume-reimaged")
    return names


#: the schema of each set of names, made once: the validator is kept by the schema object's identity
#: (stratus/api/validation.py), and a new schema per request was dumped to JSON and looked up each time
_SCHEMAS: dict[tuple[str, ...], tuple[dict[str, Any], frozenset[str]]] = {}

#: the instances' hosts, the statements built once (the Networking service posts a batch of ports' events, most
#: often of one server: an equality then, not an expanding IN rendered again at each execution)
_HOSTS = select(instances.c.uuid, instances.c.host).where(
    instances.c.uuid.in_(bindparam("uuids", expanding=True)), instances.c.deleted == 0)
_HOST = select(instances.c.uuid, instances.c.host).where(instances.c.uuid == bindparam("uuids"),
                                                         instances.c.deleted == 0)


def _schema(version: APIVersion) -> tuple[dict[str, Any], frozenset[str]]:
    """The schema of ``version``'s bodies, and the event names it allows."""
    names = tuple(_names(version))
    found = _SCHEMAS.get(names)
    if found is None:
        found = _SCHEMAS[names] = (_make_schema(list(names)), frozenset(names))
    return found


def _make_schema(names: list[str]) -> dict[str, Any]:
    event = {"type": "object", "properties": {
        "server_uuid": {"type": "string", "format": "uuid"},
        "name": {"type": "string", "enum": names},
        "status": {"type": "string", "enum": ["failed", "completed", "in-progress"]},
        "tag": {"type": "string", "maxLength": 255}},
        "required": ["server_uuid", "name"], "additionalProperties": False}
    return {"type": "object", "properties": {"events": {"type": "array", "minItems": 1, "items": event}},
            "required": ["events"], "additionalProperties": False}


#: a server's uuid as Neutron spells it: a string jsonschema's ``uuid`` format takes (it takes a few more spellings,
#: which the schema's validator then judges)
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_EVENT_KEYS = frozenset(("server_uuid", "name", "status", "tag"))
_STATUSES = frozenset(("failed", "completed", "in-progress"))


def _plainly_valid(body: Any, names: frozenset[str]) -> bool:
    """True only for a body the schema accepts and ``validation.check_body`` passes (``{"events": [...]}``, each
    event's keys among the schema's, its uuid canonical, its name and status among those allowed, its tag short
    and without a NUL): what the Networking service sends, checked in plain Python. Anything else (False) goes
    to the schema's validator, which accepts or refuses it with its own message, as before."""
    if type(body) is not dict or len(body) != 1:
        return False
    events = body.get("events")
    if type(events) is not list or not events:
        return False
    for event in events:
        if type(event) is not dict or not event.keys() <= _EVENT_KEYS:
            return False
        uuid, name = event.get("server_uuid"), event.get("name")
        if type(uuid) is not str or type(name) is not str or name not in names or \
                _CANONICAL_UUID.fullmatch(uuid) is None:
            return False
        if "status" in event and (type(event["status"]) is not str or event["status"] not in _STATUSES):
            return False
        if "tag" in event and (type(event["tag"]) is not str or len(event["tag"]) > 255 or "\x00" in event["tag"]):
            return False
    return True


async def create(req: ApiRequest) -> Response:
    policy.authorize(req.context, "os_compute_api:os-server-external-events:create", {})
    body = await req.json()
    schema, names = _schema(req.version)
    if not _plainly_valid(body, names):
        validation.validate(schema, body)
    events = [{**e, "status": e.get("status", "completed")} for e in body["events"]]
    uuids = sorted({e["server_uuid"] for e in events})
    async with req.services.db.read() as conn:
        found = await conn.execute(_HOSTS, {"uuids": uuids}) if len(uuids) > 1 else \
            await conn.execute(_HOST, {"uuids": uuids[0]})
        rows = {r.uuid: r.host for r in found}
    by_host: dict[str, list[dict[str, Any]]] = defaultdict(list)
    accepted = 0
    for event in events:
        uuid = event["server_uuid"]
        if uuid not in rows:
            event.update(code=404, status="failed")
        elif not rows[uuid]:
            event.update(code=422, status="failed")
        else:
            event["code"] = 200
            accepted += 1
            by_host[rows[uuid]].append({k: v for k, v in event.items() if k != "code"})
    if not accepted:
        raise Fault(404, "No instances found for any event")
    compute = ComputeAPI(req.services.transport)
    for host, host_events in by_host.items():
        await compute.external_instance_event(req.context.to_dict(), host, host_events)
    return json_response({"events": events}, status=200 if accepted == len(events) else 207)


ROUTES: list[Route] = [Route("/os-server-external-events", "POST", create)]
