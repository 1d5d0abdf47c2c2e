"""``GET /os-migrations``: the migration records of every move (resize, cold and live migration, evacuation), as
Nova's ``MigrationsController.index``.

Filters ``status``, ``host`` (source or destination), ``source_compute``, ``migration_type``,
``instance_uuid``, ``hidden``; hidden records are never shown. Versions: 2.23 adds ``migration_type`` (and
``links`` on in-progress live migrations); 2.59 adds ``uuid``, pages newest first with ``limit`` / ``marker`` (a
migration uuid) and a ``migrations_links`` next link, takes ``changes-since`` and refuses unknown parameters;
2.66 ``changes-before``; 2.80 ``user_id`` / ``project_id`` filters and fields. Policy as Nova 2024.2's: the
list is the project manager's; all projects (no ``project_id``, or another one) and the host fields are the
admin's (without ``index:host`` the hosts and nodes are null).
"""

from __future__ import annotations

from typing import Any

import jsonschema
from starlette.responses import Response

from stratus.api.common import collection_links, limit_and_marker, links, reject_unexpected_query
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.db import migration_records as records
from stratus.identity.policy import authorize, check
from stratus.utils import isotime_usec, parse_isotime

_V223 = APIVersion.parse("2.23")  # migration_type, links of in-progress live migrations
_V259 = APIVersion.parse("2.59")  # uuid; paging; changes-since; strict query
_V266 = APIVersion.parse("2.66")  # changes-before
_V280 = APIVersion.parse("2.80")  # user_id and project_id: filters and fields

_RULE = "os_compute_api:os-migrations:"
_FILTERS = ("hidden", "host", "instance_uuid", "source_compute", "status", "migration_type")
_ONE_VALUE = jsonschema.Draft4Validator({"type": "array", "maxItems": 1})
#: Nova's ``live_migration_in_progress``: the live migrations a link is given to
_LIVE_IN_PROGRESS = ("queued", "preparing", "running", "post-migrating")
_HOST_FIELDS = ("dest_compute", "dest_host", "dest_node", "source_compute", "source_node")


def _allowed(req: ApiRequest) -> tuple[str, ...]:
    allowed = (*_FILTERS, "limit", "marker", "changes-since")
    if req.at_least(_V266):
        allowed += ("changes-before",)
    if req.at_least(_V280):
        allowed += ("user_id", "project_id")
    return allowed


def _time(req: ApiRequest, key: str) -> Any:
    value = req.query.get(key)
    if value is None:
        return None
    try:
        return parse_isotime(value)
    except (ValueError, OverflowError):
        raise Fault(400, f"Invalid input for query parameters {key}. Value: {value}. "
                         f"'{value}' is not a 'date-time'") from None


def _filters(req: ApiRequest) -> dict[str, Any]:
    """The query as Nova's schemas of the request's version read it."""
    strict = req.at_least(_V259)
    if strict:
        allowed = _allowed(req)
        reject_unexpected_query(req, allowed)
        for key in ("limit", "marker", "changes-since", "changes-before", "user_id", "project_id"):
            values = req.query.getlist(key)
            if key in allowed and (error := next(_ONE_VALUE.iter_errors(values), None)) is not None:
                raise Fault(400, f"Invalid input for query parameters {key}. Value: {values}. {error.message}")
    filters: dict[str, Any] = {k: req.query.get(k) for k in _FILTERS if req.query.get(k) is not None}
    if "hidden" in filters:
        filters["hidden"] = str(filters["hidden"]).lower() in ("1", "t", "true", "on", "y", "yes")
    if strict:
        filters["changes-since"] = _time(req, "changes-since")
    if req.at_least(_V266):
        filters["changes-before"] = _time(req, "changes-before")
        since, before = filters["changes-since"], filters["changes-before"]
        if since is not None and before is not None and before < since:
            raise Fault(400, "The value of changes-since must be less than or equal to changes-before.")
    if req.at_least(_V280):
        filters.update(user_id=req.query.get("user_id"), project_id=req.query.get("project_id"))
    return filters


def view(req: ApiRequest, row: dict[str, Any], add_host: bool) -> dict[str, Any]:
    """One migration as Nova's ``_output`` writes it for the request's version."""
    old, new = row["old_flavor"] or {}, row["new_flavor"] or {}
    out: dict[str, Any] = {
        "id": row["id"], "status": row["status"], "instance_uuid": row["instance_uuid"],
        "source_compute": row["source_compute"], "source_node": row["source_node"],
        "dest_compute": row["dest_compute"], "dest_node": row["dest_node"], "dest_host": row["dest_host"],
        "old_instance_type_id": old.get("id"), "new_instance_type_id": new.get("id"),
        "created_at": isotime_usec(row["created_at"]), "updated_at": isotime_usec(row["updated_at"]),
    }
    if not add_host:
        out.update(dict.fromkeys(_HOST_FIELDS))
    if req.at_least(_V223):
        out["migration_type"] = row["migration_type"]
        if row["migration_type"] == records.LIVE_MIGRATION and row["status"] in _LIVE_IN_PROGRESS:
            out["links"] = links(req, f"servers/{row['instance_uuid']}/migrations", str(row["id"]))
    if req.at_least(_V259):
        out["uuid"] = row["uuid"]
    if req.at_least(_V280):
        out["user_id"], out["project_id"] = row["user_id"], row["project_id"]
    return out


async def index(req: ApiRequest) -> Response:
    ctx = req.context
    authorize(ctx, _RULE + "index", {"project_id": ctx.project_id})
    filters = _filters(req)
    project_id = req.query.get("project_id")
    if not project_id or project_id != ctx.project_id:
        authorize(ctx, _RULE + "index:all_projects", {"project_id": ctx.project_id})
    add_host = check(ctx, _RULE + "index:host", {"project_id": ctx.project_id})
    paged = req.at_least(_V259)
    limit: int | None = None
    marker = None
    if paged:
        limit, marker = limit_and_marker(req)
    async with req.services.db.read() as conn:
        try:
            rows = await records.list_filtered(conn, filters, newest_first=paged, limit=limit, marker=marker)
        except records.MarkerNotFound:
            raise Fault(400, f"Marker {marker} could not be found.") from None
    items = [view(req, r, add_host) for r in rows if not r["hidden"]]
    body: dict[str, Any] = {"migrations": items}
    if paged and limit is not None and (found := collection_links(req, "os-migrations", items, limit, "uuid")):
        body["migrations_links"] = found
    return json_response(body)


ROUTES: list[Route] = [
    Route("/os-migrations", "GET", index),
]
