"""Instance actions: ``/servers/{server_id}/os-instance-actions`` list and show, as Nova's.

An action is one user request on a server (``create``, ``delete``), named by its request id; its events are the
steps the services took, one per step per attempt (the conductor's scheduling, each compute host's build).

Versions: 2.21 shows the actions of deleted servers too. Before 2.51 only callers passing
``os_compute_api:os-instance-actions:events`` (admins) see an action's events, with their tracebacks; from 2.51
everyone who may see the action sees its events, the traceback still only for those callers. 2.58 adds
``updated_at`` and pages the list with ``limit``, ``marker`` (a request id) and ``changes-since`` (unknown query
parameters are refused), with a ``next`` link. 2.62 adds each event's ``hostId`` (sha224 of project and host,
as the server's) and, for ``events`` callers, its ``host``. 2.66 adds ``changes-before`` (not before
``changes-since``); 2.84 each event's ``details`` (why it failed, null otherwise) for callers passing
``os_compute_api:os-instance-actions:events:details`` (admins).
"""

from __future__ import annotations

from typing import Any

import jsonschema
from starlette.responses import Response

from stratus.api.common import collection_links, limit_and_marker, reject_unexpected_query, visible_project
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.api.server_view import host_id
from stratus.db import actions as db
from stratus.db import instances
from stratus.identity.policy import authorize, check
from stratus.utils import isotime_usec, parse_isotime

_V221 = APIVersion.parse("2.21")  # actions of deleted servers
_V251 = APIVersion.parse("2.51")  # events for every caller, the traceback for admins only
_V258 = APIVersion.parse("2.58")  # updated_at; limit, marker and changes-since; strict query
_V262 = APIVersion.parse("2.62")  # event hostId, and host for admins
_V266 = APIVersion.parse("2.66")  # changes-before
_V284 = APIVersion.parse("2.84")  # event details, for callers passing events:details

_RULE = "os_compute_api:os-instance-actions:"
_ACTION_KEYS = ("action", "instance_uuid", "request_id", "user_id", "project_id", "start_time", "message")
_QUERY_V258 = ("limit", "marker", "changes-since")
_QUERY_V266 = (*_QUERY_V258, "changes-before")
_ONE_VALUE = jsonschema.Draft4Validator({"type": "array", "maxItems": 1})


async def _instance(req: ApiRequest, conn: Any, server_id: str) -> dict[str, Any]:
    """The server, deleted ones too from 2.21; another project's is not found for non-admins, as in Nova."""
    inst = await instances.get_plain(conn, server_id, project_id=visible_project(req.context))
    if inst is None or (inst["deleted"] and not req.at_least(_V221)):
        raise Fault(404, f"Instance {server_id} could not be found.")
    return inst


def _check_query(req: ApiRequest) -> None:
    """Nova's query schema of 2.58: only limit, marker and changes-since (and changes-before from 2.66), each at
    most once."""
    allowed = _QUERY_V266 if req.at_least(_V266) else _QUERY_V258
    reject_unexpected_query(req, allowed)
    for key in allowed:
        values = req.query.getlist(key)
        error = next(_ONE_VALUE.iter_errors(values), None)
        if error is not None:
            raise Fault(400, f"Invalid input for query parameters {key}. Value: {values}. {error.message}")


def _time(req: ApiRequest, key: str) -> Any:
    value = req.query.get(key)
    if value is None:
        return None
    try:
        return parse_isotime(value)
    except (ValueError, OverflowError):
        raise Fault(400, f"Invalid input for query parameters {key}. Value: {value}. "
                         f"'{value}' is not a 'date-time'") from None


def _action(req: ApiRequest, row: dict[str, Any]) -> dict[str, Any]:
    out = {key: row[key] for key in _ACTION_KEYS}
    out["start_time"] = isotime_usec(row["start_time"])
    if req.at_least(_V258):
        out["updated_at"] = isotime_usec(row["updated_at"])
    return out


def _event(row: dict[str, Any], project_id: str, traceback: bool, host: bool, hashed_host: bool,
           details: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"event": row["event"], "start_time": isotime_usec(row["start_time"]),
                           "finish_time": isotime_usec(row["finish_time"]), "result": row["result"]}
    if traceback:
        out["traceback"] = row["traceback"]
    if host:
        out["host"] = row["host"] or ""  # a string, as Nova's schema has it, also where no host was recorded
    if hashed_host:
        out["hostId"] = host_id(project_id, row["host"])
    if details:
        out["details"] = row["details"]
    return out


async def index(req: ApiRequest) -> Response:
    """The server's actions, newest first."""
    server_id = req.path["server_id"]
    paged = req.at_least(_V258)
    limit: int | None = None
    marker = changes_since = changes_before = None
    if paged:  # the query is checked first, as Nova's schema does
        _check_query(req)
        changes_since = _time(req, "changes-since")
        if req.at_least(_V266):
            changes_before = _time(req, "changes-before")
            if changes_since and changes_before and changes_before < changes_since:
                raise Fault(400, "The value of changes-since must be less than or equal to changes-before.")
        limit, marker = limit_and_marker(req)
    async with req.services.db.read() as conn:
        inst = await _instance(req, conn, server_id)
        authorize(req.context, _RULE + "list", {"project_id": inst["project_id"]})
        try:
            rows = await db.list_actions(conn, inst["uuid"], limit=limit, marker=marker,
                                         changes_since=changes_since, changes_before=changes_before)
        except db.MarkerNotFound:
            raise Fault(400, f"Marker {marker} could not be found.") from None
    items = [_action(req, r) for r in rows]
    body: dict[str, Any] = {"instanceActions": items}
    if paged and limit is not None and (
            links := collection_links(req, f"servers/{server_id}/os-instance-actions", items, limit, "request_id")):
        body["links"] = links
    return json_response(body)


async def show(req: ApiRequest) -> Response:
    """One action by request id, with its events as the caller's version and rights allow."""
    server_id, request_id = req.path["server_id"], req.path["request_id"]
    ctx = req.context
    async with req.services.db.read() as conn:
        inst = await _instance(req, conn, server_id)
        target = {"project_id": inst["project_id"]}
        authorize(ctx, _RULE + "show", target)
        row = await db.get_action(conn, inst["uuid"], request_id)
        if row is None:
            raise Fault(404, f"Action {request_id} not found")
        privileged = check(ctx, _RULE + "events", target)
        details = req.at_least(_V284) and check(ctx, _RULE + "events:details", target)
        events = (await db.list_events(conn, row["id"])
                  if privileged or req.at_least(_V251) else None)
    action = _action(req, row)
    if events is not None:
        project_id = row["project_id"] or inst["project_id"]
        hashed_host = req.at_least(_V262)
        action["events"] = [_event(e, project_id, traceback=privileged, host=privileged and hashed_host,
                                   hashed_host=hashed_host, details=details) for e in events]
    return json_response({"instanceAction": action})


ROUTES: list[Route] = [
    Route("/servers/{server_id}/os-instance-actions", "GET", index),
    Route("/servers/{server_id}/os-instance-actions/{request_id}", "GET", show),
]
