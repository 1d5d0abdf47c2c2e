"""``/os-quota-sets/{project_id}``: a project's (or, with ``?user_id=``, one of its users') quotas, as Nova's.

``GET`` shows the limits, ``/detail`` adds ``in_use`` and ``reserved`` (always 0: usage is counted, never
reserved), ``/defaults`` shows the defaults (the ``default`` quota class over ``[quota]``). ``PUT`` (admin) sets
limits: a limit under what is used (or, for a project, under the sum of its users' limits) is a 400 unless
``force``; a user's limit may not pass what the project has left to give. ``DELETE`` (admin) reverts the project
and all its users, or only the user, to the defaults: 202.

Versions: 2.36 drops the nova-network quotas (fixed_ips, floating_ips, security_groups, security_group_rules),
2.57 the personality ones (injected_files, injected_file_content_bytes, injected_file_path_bytes), from every
response and from what ``PUT`` accepts.
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.responses import Response

from stratus.api import validation
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.db import quotas
from stratus.identity.policy import authorize

_V236 = APIVersion.parse("2.36")  # no more nova-network quotas
_V257 = APIVersion.parse("2.57")  # no more personality quotas

NETWORK_QUOTAS = ("fixed_ips", "floating_ips", "security_group_rules", "security_groups")
PERSONALITY_QUOTAS = ("injected_files", "injected_file_content_bytes", "injected_file_path_bytes")
MAX_LIMIT = validation.MAX_INT  # the database's integer

# Nova's value: an integer, or a string of one, from -1 (unlimited) to MAX_LIMIT (the validator bounds both forms).
QUOTA_VALUE: dict[str, Any] = {"type": ["integer", "string"], "pattern": "^-?[0-9]+$", "minimum": -1,
                               "maximum": MAX_LIMIT}
BOOLEAN: dict[str, Any] = {"type": ["boolean", "string"], "enum": [
    True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
    False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]}


def filtered(req: ApiRequest, network_until: APIVersion = _V236) -> tuple[str, ...]:
    """The resources a version no longer shows (the quota classes drop the network ones at 2.50)."""
    if req.at_least(_V257):
        return NETWORK_QUOTAS + PERSONALITY_QUOTAS
    return NETWORK_QUOTAS if req.at_least(network_until) else ()


def update_schema(body_key: str, hidden: tuple[str, ...], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{body_key: {resource: value}}`` with Nova's value rules; ``hidden`` resources are unknown keys."""
    props = {r: copy.deepcopy(QUOTA_VALUE) for r in quotas.RESOURCES if r not in hidden}
    props.update(extra or {})
    return {"type": "object", "required": [body_key], "additionalProperties": False,
            "properties": {body_key: {"type": "object", "properties": props, "additionalProperties": False}}}


def check_values(values: dict[str, Any]) -> dict[str, int]:
    """The values (which the schema bounded) as integers."""
    return {key: int(value) for key, value in values.items()}


def view(values: dict[str, Any], hidden: tuple[str, ...], identifier: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": identifier} if identifier is not None else {}
    body.update({r: values[r] for r in quotas.RESOURCES if r not in hidden and r in values})
    return body


def _user_id(req: ApiRequest) -> str | None:
    """``?user_id=`` (the first one, as Nova's ``parse_qs``); empty means none."""
    values = req.query.getlist("user_id")
    return values[0] if values and values[0] else None


async def show(req: ApiRequest) -> Response:
    project_id = req.path["project_id"]
    authorize(req.context, "os_compute_api:os-quota-sets:show", {"project_id": project_id})
    async with req.services.db.read() as conn:
        values = await quotas.limits(conn, req.services.conf, project_id, _user_id(req))
    return json_response({"quota_set": view(values, filtered(req), project_id)})


async def detail(req: ApiRequest) -> Response:
    project_id = req.path["project_id"]
    authorize(req.context, "os_compute_api:os-quota-sets:detail", {"project_id": project_id})
    async with req.services.db.read() as conn:
        values = await quotas.detail(conn, req.services.conf, project_id, _user_id(req))
    return json_response({"quota_set": view(values, filtered(req), project_id)})


async def defaults(req: ApiRequest) -> Response:
    project_id = req.path["project_id"]
    authorize(req.context, "os_compute_api:os-quota-sets:defaults", {"project_id": project_id})
    async with req.services.db.read() as conn:
        values = await quotas.defaults(conn, req.services.conf)
    return json_response({"quota_set": view(values, filtered(req), project_id)})


def _check_range(resource: str, limit: int, minimum: int, maximum: int) -> None:
    """Nova's ``_validate_quota_limit``; -1 counts as infinity on every side."""
    def inf(value: int) -> float:
        return float("inf") if value == -1 else value

    if inf(limit) < inf(minimum):
        raise Fault(400, f"Quota limit {limit} for {resource} must be greater than or equal to already used and "
                         f"reserved {minimum}.")
    if inf(limit) > inf(maximum):
        raise Fault(400, f"Quota limit {limit} for {resource} must be less than or equal to {maximum}.")


async def update(req: ApiRequest) -> Response:
    body = await req.json()
    hidden = filtered(req)
    validation.validate(update_schema("quota_set", hidden, {"force": BOOLEAN}), body)
    project_id = req.path["project_id"]
    authorize(req.context, "os_compute_api:os-quota-sets:update", {"project_id": project_id})
    user_id = _user_id(req)
    requested = dict(body["quota_set"])
    force = validation.bool_from_string(requested.pop("force", False), "force")
    values = check_values(requested)
    conf = req.services.conf
    async with req.services.db.write() as conn:
        await quotas.lock_project(conn, project_id)  # usage cannot grow between the check and the write
        if not force:
            ranges = await quotas.settable(conn, conf, project_id, user_id)
            for resource, limit in values.items():
                _check_range(resource, limit, *ranges[resource])
        await quotas.set_limits(conn, project_id, values, user_id)
        result = await quotas.limits(conn, conf, project_id, user_id)
    return json_response({"quota_set": view(result, hidden)})


async def delete(req: ApiRequest) -> Response:
    project_id = req.path["project_id"]
    authorize(req.context, "os_compute_api:os-quota-sets:delete", {"project_id": project_id})
    async with req.services.db.write() as conn:
        await quotas.delete_limits(conn, project_id, _user_id(req))
    return empty_response(202)


_PATH = "/os-quota-sets/{project_id}"
ROUTES: list[Route] = [
    Route(_PATH, "GET", show),
    Route(_PATH, "PUT", update),
    Route(_PATH, "DELETE", delete),
    Route(_PATH + "/defaults", "GET", defaults),
    Route(_PATH + "/detail", "GET", detail),
]
