"""Flavor access: which projects may use a private flavor (admin only).

``GET /flavors/{id}/os-flavor-access`` lists them; ``POST /flavors/{id}/action`` with ``addTenantAccess`` or
``removeTenantAccess`` changes them. The action path is owned here: flavors have no other actions.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.api import flavors, validation
from stratus.api.common import ActionHandler, dispatch_action
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.db import flavors as db
from stratus.identity.policy import authorize

# From 2.7 a public flavor refuses new tenants (409) instead of silently recording them.
_V27 = APIVersion.parse("2.7")


def _tenant_schema(action: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            action: {
                "type": "object",
                "properties": {"tenant": {"type": "string", "minLength": 1, "maxLength": 255}},
                "required": ["tenant"],
                "additionalProperties": False,
            },
        },
        "required": [action],
        "additionalProperties": False,
    }


ADD_SCHEMA = _tenant_schema("addTenantAccess")
REMOVE_SCHEMA = _tenant_schema("removeTenantAccess")


def _marshall(flavorid: str, projects: list[str]) -> dict[str, Any]:
    return {"flavor_access": [{"flavor_id": flavorid, "tenant_id": p} for p in projects]}


async def index(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-flavor-access", {"project_id": req.context.project_id})
    flavorid = req.path["flavor_id"]
    async with req.services.db.read() as conn:
        flavor = await flavors.load(req, conn, flavorid)
        if flavor["is_public"]:
            raise Fault(404, "Access list not available for public flavors.")
        projects = await db.access_list(conn, flavor["id"])
    return json_response(_marshall(flavorid, projects))


async def _add_tenant_access(req: ApiRequest, body: dict[str, Any]) -> Response:
    validation.validate(ADD_SCHEMA, body)
    authorize(req.context, "os_compute_api:os-flavor-access:add_tenant_access", {})
    flavorid, tenant = req.path["flavor_id"], body["addTenantAccess"]["tenant"]
    async with req.services.db.write() as conn:
        flavor = await flavors.load(req, conn, flavorid)
        if req.at_least(_V27) and flavor["is_public"]:
            raise Fault(409, "Can not add access to a public flavor.")
        if not await db.add_access(conn, flavor["id"], tenant):
            raise Fault(409, f"Flavor access already exists for flavor {flavorid} and project {tenant} "
                             "combination.")
        projects = await db.access_list(conn, flavor["id"])
    return json_response(_marshall(flavorid, projects))


async def _remove_tenant_access(req: ApiRequest, body: dict[str, Any]) -> Response:
    validation.validate(REMOVE_SCHEMA, body)
    authorize(req.context, "os_compute_api:os-flavor-access:remove_tenant_access", {})
    flavorid, tenant = req.path["flavor_id"], body["removeTenantAccess"]["tenant"]
    async with req.services.db.write() as conn:
        flavor = await flavors.load(req, conn, flavorid)
        if not await db.remove_access(conn, flavor["id"], tenant):
            raise Fault(404, f"Flavor access not found for {flavorid} / {tenant} combination.")
        projects = await db.access_list(conn, flavor["id"])
    return json_response(_marshall(flavorid, projects))


_ACTIONS: dict[str, ActionHandler] = {
    "addTenantAccess": _add_tenant_access,
    "removeTenantAccess": _remove_tenant_access,
}


async def action(req: ApiRequest) -> Response:
    return await dispatch_action(req, _ACTIONS, malformed="Malformed request body: too many body keys")


ROUTES: list[Route] = [
    Route("/flavors/{flavor_id}/os-flavor-access", "GET", index),
    Route("/flavors/{flavor_id}/action", "POST", action),
]
