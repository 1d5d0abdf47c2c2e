"""Flavor extra specs: ``/flavors/{flavor_id}/os-extra_specs[/{key}]``.

Anyone who can see the flavor reads its specs; admins set and unset them. Values may be sent as numbers and
are stored as strings; the response echoes the request body, as Nova's does. From 2.86 the specs of Nova's
namespaces are validated (``flavor_extra_spec_validation``): a misspelt ``hw:`` key or a bad value is a 400 and
nothing is stored.
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.responses import Response

from stratus.api import flavor_extra_spec_validation, flavors, validation
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.db import flavors as db
from stratus.identity.policy import authorize

_SPECS: dict[str, Any] = copy.deepcopy(validation.metadata)
_SPECS["patternProperties"]["^[a-zA-Z0-9-_:. ]{1,255}$"]["type"] = ["string", "number"]

CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"extra_specs": _SPECS},
    "required": ["extra_specs"],
    "additionalProperties": False,
}
UPDATE_SCHEMA: dict[str, Any] = {**copy.deepcopy(_SPECS), "minProperties": 1, "maxProperties": 1}


_V286 = APIVersion.parse("2.86")  # known extra specs are validated


def _as_strings(req: ApiRequest, specs: dict[str, Any]) -> dict[str, str]:
    """Numbers become strings; JSON Schema cannot bound a number's length, so it is checked here. From 2.86 each
    spec is validated as Nova's known extra specs."""
    out = {}
    for key, value in specs.items():
        text = value if isinstance(value, str) else str(value)
        if len(text) > 255:
            raise Fault(400, "Invalid input received: extra_specs value has more than 255 characters.")
        if req.at_least(_V286):
            flavor_extra_spec_validation.validate(key, text)
        out[key] = text
    return out


def _no_key(flavorid: str, key: str) -> Fault:
    return Fault(404, f"Flavor {flavorid} has no extra specs with key {key}.")


async def _flavor(req: ApiRequest, conn: Any) -> dict[str, Any]:
    return await flavors.load(req, conn, req.path["flavor_id"])


async def index(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-flavor-extra-specs:index", {"project_id": req.context.project_id})
    async with req.services.db.read() as conn:
        flavor = await _flavor(req, conn)
    return json_response({"extra_specs": flavor["extra_specs"]})


async def show(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-flavor-extra-specs:show", {"project_id": req.context.project_id})
    key = req.path["key"]
    async with req.services.db.read() as conn:
        flavor = await _flavor(req, conn)
    if key not in flavor["extra_specs"]:
        raise _no_key(req.path["flavor_id"], key)
    return json_response({key: flavor["extra_specs"][key]})


async def create(req: ApiRequest) -> Response:
    """Merge the given specs into the flavor's (200, not 201: Nova's v2.1 contract)."""
    body = await req.json()
    validation.validate(CREATE_SCHEMA, body)
    authorize(req.context, "os_compute_api:os-flavor-extra-specs:create", {})
    specs = _as_strings(req, body["extra_specs"])
    async with req.services.db.write() as conn:
        flavor = await _flavor(req, conn)
        await db.update_extra_specs(conn, flavor["id"], specs)
    return json_response(body)


async def update(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(UPDATE_SCHEMA, body)
    authorize(req.context, "os_compute_api:os-flavor-extra-specs:update", {})
    specs = _as_strings(req, body)
    if req.path["key"] not in specs:
        raise Fault(400, "Request body and URI mismatch")
    async with req.services.db.write() as conn:
        flavor = await _flavor(req, conn)
        await db.update_extra_specs(conn, flavor["id"], specs)
    return json_response(body)


async def delete(req: ApiRequest) -> Response:
    """Unset one key; 200 with an empty body, as Nova answers."""
    authorize(req.context, "os_compute_api:os-flavor-extra-specs:delete", {})
    key = req.path["key"]
    async with req.services.db.write() as conn:
        flavor = await _flavor(req, conn)
        if not await db.delete_extra_spec(conn, flavor["id"], key):
            raise _no_key(req.path["flavor_id"], key)
    return Response(b"", status_code=200)


ROUTES: list[Route] = [
    Route("/flavors/{flavor_id}/os-extra_specs", "GET", index),
    Route("/flavors/{flavor_id}/os-extra_specs", "POST", create),
    Route("/flavors/{flavor_id}/os-extra_specs/{key}", "GET", show),
    Route("/flavors/{flavor_id}/os-extra_specs/{key}", "PUT", update),
    Route("/flavors/{flavor_id}/os-extra_specs/{key}", "DELETE", delete),
]
