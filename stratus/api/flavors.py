"""Flavors: list, detail and show for everyone; create, update and delete for admins (Nova's flavor_manage).

2.55 adds ``description`` (create, every body) and ``PUT /flavors/{flavor_id}`` to change it; 2.61 puts
``extra_specs`` in the detail, show, create and update bodies for callers the extra specs index policy allows.
The strict query schema (2.75) is past our maximum version.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from starlette.responses import Response

from stratus.api import validation
from stratus.api.common import collection_links, limit_and_marker, links
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.db import flavors as db
from stratus.identity.policy import authorize, check

_V275 = APIVersion.parse("2.75")  # swap 0, not "", when there is none
_V255 = APIVersion.parse("2.55")  # description; PUT /flavors/{flavor_id}
_V261 = APIVersion.parse("2.61")  # extra_specs in flavor bodies

_MAX_INT = validation.MAX_INT
_MAX_FLOAT = 3.40282e38

_positive = {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1, "maximum": _MAX_INT}
_non_negative = {**_positive, "minimum": 0}
_boolean = {"type": ["boolean", "string"],
            "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
                     False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]}

CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "flavor": {
            "type": "object",
            "properties": {
                "name": validation.name,
                # A number is accepted and stored as its string; null or absent asks for a generated UUID.
                "id": {"type": ["string", "number", "null"], "minLength": 1, "maxLength": 255,
                       "pattern": "^(?! )[a-zA-Z0-9. _-]+(?<! )$"},
                "ram": _positive,
                "vcpus": _positive,
                "disk": _non_negative,
                "OS-FLV-EXT-DATA:ephemeral": _non_negative,
                "swap": _non_negative,
                "rxtx_factor": {"type": ["number", "string"], "pattern": r"^[0-9]+(\.[0-9]+)?$",
                                "minimum": 0, "exclusiveMinimum": True, "maximum": _MAX_FLOAT},
                "os-flavor-access:is_public": _boolean,
            },
            "required": ["name", "ram", "vcpus", "disk"],
            "additionalProperties": False,
        },
    },
    "required": ["flavor"],
    "additionalProperties": False,
}
# A TEXT column: up to 64 KiB, or null.
_DESCRIPTION = {**validation.description, "maxLength": 65535}
CREATE_SCHEMA_V255 = copy.deepcopy(CREATE_SCHEMA)
CREATE_SCHEMA_V255["properties"]["flavor"]["properties"]["description"] = _DESCRIPTION
UPDATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"flavor": {"type": "object", "properties": {"description": _DESCRIPTION},
                              "required": ["description"], "additionalProperties": False}},
    "required": ["flavor"],
    "additionalProperties": False,
}

# Integer fields of the create body.
_INT_FIELDS = ("ram", "vcpus", "disk", "OS-FLV-EXT-DATA:ephemeral", "swap")


def _basic(req: ApiRequest, flavor: dict[str, Any]) -> dict[str, Any]:
    body = {"id": flavor["flavorid"], "name": flavor["name"], "links": links(req, "flavors", flavor["flavorid"])}
    if req.at_least(_V255):
        body["description"] = flavor["description"]
    return body


def _with_extra_specs(req: ApiRequest) -> bool:
    """From 2.61 a flavor body carries its extra specs, if the caller may list them (else they are left out)."""
    return req.at_least(_V261) and check(req.context, "os_compute_api:os-flavor-extra-specs:index",
                                         {"project_id": req.context.project_id})


def show_view(req: ApiRequest, flavor: dict[str, Any], with_extra_specs: bool | None = None) -> dict[str, Any]:
    """Nova's flavor body: ``swap`` is ``""`` when there is none before 2.75, a quirk clients rely on (0 from 2.75).

    ``with_extra_specs`` is decided here when not given (a list decides it once for all its flavors).
    """
    if with_extra_specs is None:
        with_extra_specs = _with_extra_specs(req)
    body = {
        "id": flavor["flavorid"],
        "name": flavor["name"],
        "ram": flavor["memory_mb"],
        "disk": flavor["root_gb"],
        "swap": flavor["swap"] if req.at_least(_V275) else flavor["swap"] or "",
        "OS-FLV-EXT-DATA:ephemeral": flavor["ephemeral_gb"],
        "OS-FLV-DISABLED:disabled": flavor["disabled"],
        "vcpus": flavor["vcpus"],
        "os-flavor-access:is_public": flavor["is_public"],
        "rxtx_factor": flavor["rxtx_factor"],
        "links": links(req, "flavors", flavor["flavorid"]),
    }
    if req.at_least(_V255):
        body["description"] = flavor["description"]
    if with_extra_specs:
        body["extra_specs"] = flavor["extra_specs"]
    return body


def _is_public_filter(req: ApiRequest) -> bool | None:
    """Admins choose: absent means public (plus shared), ``none`` means all; others always get public."""
    value = req.query.get("is_public")
    if value is None:
        return True
    if value.lower() == "none":
        return None
    try:
        return validation.bool_from_string(value, "is_public")
    except Fault:
        raise Fault(400, f"Invalid is_public filter [{value}]") from None


def _min_filter(req: ApiRequest, param: str) -> int | None:
    """``minRam``/``minDisk`` as Nova reads them (``int()``), within the range every integer must fit."""
    value = req.query.get(param)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not validation.MIN_INT64 <= number <= validation.MAX_INT64:
        raise Fault(400, f"Invalid {param} filter [{validation.short(value)}]")
    return number


async def _list(req: ApiRequest, with_extra_specs: bool = False) -> tuple[list[dict[str, Any]], int]:
    ctx = req.context
    limit, marker = limit_and_marker(req)
    sort_key = req.query.get("sort_key") or "flavorid"
    sort_dir = req.query.get("sort_dir") or "asc"
    if sort_key not in db.SORT_KEYS:
        raise Fault(400, f"Invalid sort_key [{sort_key}]")
    if sort_dir not in ("asc", "desc"):
        raise Fault(400, f"Invalid sort_dir [{sort_dir}]: must be 'asc' or 'desc'")
    filters: dict[str, Any] = ({"is_public": _is_public_filter(req)} if ctx.is_admin
                               else {"is_public": True, "disabled": False})
    try:
        async with req.services.db.read() as conn:
            items = await db.list_flavors(conn, project_id=ctx.project_id, is_admin=ctx.is_admin,
                                          min_memory_mb=_min_filter(req, "minRam"),
                                          min_root_gb=_min_filter(req, "minDisk"), sort_key=sort_key,
                                          sort_dir=sort_dir, limit=limit, marker=marker,
                                          with_extra_specs=with_extra_specs, **filters)
    except db.MarkerNotFound:
        raise Fault(400, f"marker [{marker}] not found") from None
    return items, limit


async def index(req: ApiRequest) -> Response:
    items, limit = await _list(req)
    body: dict[str, Any] = {"flavors": [_basic(req, f) for f in items]}
    if next_link := collection_links(req, "flavors", items, limit, "flavorid"):
        body["flavors_links"] = next_link
    return json_response(body)


async def detail(req: ApiRequest) -> Response:
    with_extra_specs = _with_extra_specs(req)
    items, limit = await _list(req, with_extra_specs)
    body: dict[str, Any] = {"flavors": [show_view(req, f, with_extra_specs) for f in items]}
    if next_link := collection_links(req, "flavors/detail", items, limit, "flavorid"):
        body["flavors_links"] = next_link
    return json_response(body)


async def load(req: ApiRequest, conn: Any, flavorid: str) -> dict[str, Any]:
    """The flavor as the caller may see it, or Nova's 404 (private flavors hide from other projects)."""
    flavor = await db.get(conn, flavorid, project_id=req.context.project_id, is_admin=req.context.is_admin)
    if flavor is None:
        raise Fault(404, f"Flavor {flavorid} could not be found.")
    return flavor


async def show(req: ApiRequest) -> Response:
    async with req.services.db.read() as conn:
        flavor = await load(req, conn, req.path["flavor_id"])
    return json_response({"flavor": show_view(req, flavor)})


async def create(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(CREATE_SCHEMA_V255 if req.at_least(_V255) else CREATE_SCHEMA, body)
    authorize(req.context, "os_compute_api:os-flavor-manage:create", {})
    vals = body["flavor"]
    # the validator bounded numbers and numeric strings alike
    sizes = {key: int(vals.get(key, 0)) for key in _INT_FIELDS}
    rxtx = float(vals.get("rxtx_factor", 1.0))
    flavorid = vals.get("id")
    # As Nova: a missing, null (or 0) id gets a UUID; a number is kept as its string.
    flavorid = str(flavorid) if flavorid else str(uuid.uuid4())
    is_public = validation.bool_from_string(vals.get("os-flavor-access:is_public", True), "is_public")
    try:
        async with req.services.db.write() as conn:
            flavor = await db.create(conn, flavorid=flavorid, name=vals["name"].strip(), memory_mb=sizes["ram"],
                                     vcpus=sizes["vcpus"], root_gb=sizes["disk"],
                                     ephemeral_gb=sizes["OS-FLV-EXT-DATA:ephemeral"], swap=sizes["swap"],
                                     rxtx_factor=rxtx, is_public=is_public, description=vals.get("description"))
    except db.FlavorConflict as exc:
        if exc.column == "flavorid":
            raise Fault(409, f"Flavor with ID {flavorid} already exists.") from None
        raise Fault(409, f"Flavor with name {vals['name'].strip()} already exists.") from None
    return json_response({"flavor": show_view(req, flavor)})


async def update(req: ApiRequest) -> Response:
    """2.55: change the description, the one mutable field of a flavor."""
    body = await req.json()
    validation.validate(UPDATE_SCHEMA, body)
    authorize(req.context, "os_compute_api:os-flavor-manage:update", {})
    flavorid = req.path["flavor_id"]
    description = body["flavor"]["description"]
    async with req.services.db.write() as conn:
        flavor = await db.get(conn, flavorid)
        if flavor is None:
            raise Fault(404, f"Flavor {flavorid} could not be found.")
        await db.update_description(conn, flavor["id"], description)
    flavor["description"] = description
    return json_response({"flavor": show_view(req, flavor)})


async def delete(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-flavor-manage:delete", {})
    flavorid = req.path["flavor_id"]
    async with req.services.db.write() as conn:
        deleted = await db.delete_flavor(conn, flavorid)
    if not deleted:
        raise Fault(404, f"Flavor {flavorid} could not be found.")
    return empty_response(202)


# /flavors/detail must come before /flavors/{flavor_id}: the first matching path wins.
ROUTES: list[Route] = [
    Route("/flavors", "GET", index),
    Route("/flavors", "POST", create),
    Route("/flavors/detail", "GET", detail),
    Route("/flavors/{flavor_id}", "GET", show),
    Route("/flavors/{flavor_id}", "PUT", update, min_version="2.55"),
    Route("/flavors/{flavor_id}", "DELETE", delete),
]
