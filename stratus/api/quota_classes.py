"""``/os-quota-class-sets/{class_name}``: show and set a quota class's limits (admin), as Nova's.

A class shows its own limits over ``[quota]``; only the ``default`` class is ever applied, as the default of every
project (Nova never picks another class for a request). Versions: below 2.50 ``server_groups`` and
``server_group_members`` are not shown (they can be set) and the nova-network quotas are; 2.50 swaps that;
2.57 drops the personality quotas from the responses and from what ``PUT`` accepts.
"""

from __future__ import annotations

from starlette.responses import Response

from stratus.api import validation
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.quota_sets import check_values, filtered, update_schema, view
from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.db import quotas
from stratus.identity.policy import authorize

_V250 = APIVersion.parse("2.50")  # server group quotas shown, nova-network quotas gone
SERVER_GROUP_QUOTAS = ("server_groups", "server_group_members")


def _hidden(req: ApiRequest) -> tuple[str, ...]:
    """What the response leaves out for this version."""
    hidden = filtered(req, network_until=_V250)
    return hidden if req.at_least(_V250) else hidden + SERVER_GROUP_QUOTAS


def _accepted_hidden(req: ApiRequest) -> tuple[str, ...]:
    """What ``PUT`` refuses for this version (the server group quotas are always accepted)."""
    return filtered(req, network_until=_V250)


async def show(req: ApiRequest) -> Response:
    authorize(req.context, "os_compute_api:os-quota-class-sets:show", {})
    class_name = req.path["class_name"]
    async with req.services.db.read() as conn:
        values = await quotas.class_limits(conn, req.services.conf, class_name)
    return json_response({"quota_class_set": view(values, _hidden(req), class_name)})


async def update(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(update_schema("quota_class_set", _accepted_hidden(req)), body)
    authorize(req.context, "os_compute_api:os-quota-class-sets:update", {})
    class_name = req.path["class_name"]
    if len(class_name) > 255:
        raise Fault(400, f"quota_class_name has {len(class_name)} characters, more than 255.")
    values = check_values(body["quota_class_set"])
    async with req.services.db.write() as conn:
        await quotas.set_class(conn, class_name, values)
        result = await quotas.class_limits(conn, req.services.conf, class_name)
    return json_response({"quota_class_set": view(result, _hidden(req))})


ROUTES: list[Route] = [
    Route("/os-quota-class-sets/{class_name}", "GET", show),
    Route("/os-quota-class-sets/{class_name}", "PUT", update),
]
