"""Server groups: ``/os-server-groups`` list, create, show, delete, as Nova's.

A group has one policy (affinity, anti-affinity, soft-affinity, soft-anti-affinity) and, from 2.64, rules
(``max_server_per_host``, anti-affinity only). Servers join a group at boot through the ``group`` scheduler hint
and leave it when deleted; bodies list the live members. The ``server_groups`` quota (the project's and the
user's) is counted in the transaction that creates the group, under the project's quota lock, so concurrent
creates cannot pass it.

Versions: 2.13 adds ``project_id`` and ``user_id``; 2.15 accepts the soft policies; 2.64 takes and shows
``policy`` and ``rules`` instead of ``policies`` and ``metadata`` (always ``{}``).
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.responses import Response

from stratus.api import validation
from stratus.api.common import query_int, visible_project
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.db import quotas
from stratus.db import server_groups as db
from stratus.identity.policy import authorize

_V213 = APIVersion.parse("2.13")  # project_id and user_id
_V215 = APIVersion.parse("2.15")  # soft-affinity and soft-anti-affinity
_V264 = APIVersion.parse("2.64")  # policy and rules instead of policies and metadata

HARD_POLICIES = ["anti-affinity", "affinity"]
SOFT_POLICIES = ["soft-anti-affinity", "soft-affinity"]

CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "server_group": {
            "type": "object",
            "properties": {
                "name": validation.name,
                # One policy, as a list of one item until 2.64.
                "policies": {"type": "array", "items": [{"type": "string", "enum": list(HARD_POLICIES)}],
                             "uniqueItems": True, "minItems": 1, "maxItems": 1, "additionalItems": False},
            },
            "required": ["name", "policies"],
            "additionalProperties": False,
        },
    },
    "required": ["server_group"],
    "additionalProperties": False,
}
CREATE_SCHEMA_V215 = copy.deepcopy(CREATE_SCHEMA)
CREATE_SCHEMA_V215["properties"]["server_group"]["properties"]["policies"]["items"][0]["enum"] += SOFT_POLICIES
CREATE_SCHEMA_V264 = copy.deepcopy(CREATE_SCHEMA)
_group_v264 = CREATE_SCHEMA_V264["properties"]["server_group"]
del _group_v264["properties"]["policies"]
_group_v264["properties"]["policy"] = {"type": "string", "enum": HARD_POLICIES + SOFT_POLICIES}
_group_v264["properties"]["rules"] = {"type": "object",
                                      "properties": {"max_server_per_host": validation.positive_integer},
                                      "additionalProperties": False}
_group_v264["required"] = ["name", "policy"]


def _create_schema(req: ApiRequest) -> dict[str, Any]:
    if req.at_least(_V264):
        return CREATE_SCHEMA_V264
    return CREATE_SCHEMA_V215 if req.at_least(_V215) else CREATE_SCHEMA


def view(req: ApiRequest, group: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": group["uuid"], "name": group["name"]}
    if req.at_least(_V264):
        out["policy"] = group["policy"]
        out["rules"] = dict(group["rules"])
    else:
        out["policies"] = [group["policy"]]
        out["metadata"] = {}  # exposed by Nova but never used; always empty
    out["members"] = list(group["members"])
    if req.at_least(_V213):
        out["project_id"] = group["project_id"]
        out["user_id"] = group["user_id"]
    return out


def _policy_and_rules(req: ApiRequest, params: dict[str, Any]) -> tuple[str, dict[str, int]]:
    if not req.at_least(_V264):
        return params["policies"][0], {}
    policy = params["policy"]
    rules = {k: int(v) for k, v in (params.get("rules") or {}).items()}  # the validator bounded both forms
    if rules and policy != "anti-affinity":
        raise Fault(400, "Only anti-affinity policy supports rules.")
    return policy, rules


async def create(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(_create_schema(req), body)
    ctx = req.context
    authorize(ctx, "os_compute_api:os-server-groups:create", {"project_id": ctx.project_id})
    params = body["server_group"]
    policy, rules = _policy_and_rules(req, params)
    async with req.services.db.write() as conn:
        await quotas.lock_project(conn, ctx.project_id)
        try:
            await quotas.check_deltas(conn, req.services.conf, ctx.project_id, ctx.user_id, {"server_groups": 1})
        except quotas.OverQuota:
            raise Fault(403, "Quota exceeded, too many server groups.") from None
        group = await db.create(conn, name=params["name"], project_id=ctx.project_id, user_id=ctx.user_id,
                                policy=policy, rules=rules)
    return json_response({"server_group": view(req, group)})


async def _load(req: ApiRequest, conn: Any, rule: str) -> dict[str, Any]:
    """The group (404 first, as Nova: another project's group is not found either), then the policy check
    against its project."""
    uuid = req.path["group_id"]
    group = await db.get(conn, uuid, visible_project(req.context))
    if group is None:
        raise Fault(404, f"Instance group {uuid} could not be found.")
    authorize(req.context, rule, {"project_id": group["project_id"]})
    return group


async def show(req: ApiRequest) -> Response:
    async with req.services.db.read() as conn:
        group = await _load(req, conn, "os_compute_api:os-server-groups:show")
    return json_response({"server_group": view(req, group)})


async def delete(req: ApiRequest) -> Response:
    async with req.services.db.write() as conn:
        group = await _load(req, conn, "os_compute_api:os-server-groups:delete")
        if not await db.delete_group(conn, group["id"]):
            raise Fault(404, f"Instance group {group['uuid']} could not be found.")
    return empty_response(204)


async def index(req: ApiRequest) -> Response:
    """The caller's project's groups; every project's for admins asking ``all_projects`` (others are not told
    no: they get their own, as in Nova). ``offset`` and ``limit`` slice the list; ``limit`` 0 means the max."""
    ctx = req.context
    authorize(ctx, "os_compute_api:os-server-groups:index", {"project_id": ctx.project_id})
    project_id: str | None = ctx.project_id
    if "all_projects" in req.query and ctx.is_admin:
        authorize(ctx, "os_compute_api:os-server-groups:index:all_projects", {"project_id": ctx.project_id})
        project_id = None
    max_limit = int(req.services.conf.api.max_limit)
    limit = min(query_int(req, "limit") or max_limit, max_limit)
    offset = query_int(req, "offset") or 0
    async with req.services.db.read() as conn:
        groups = await db.list_groups(conn, project_id, offset=offset, limit=limit)
    return json_response({"server_groups": [view(req, g) for g in groups]})


ROUTES: list[Route] = [
    Route("/os-server-groups", "GET", index),
    Route("/os-server-groups", "POST", create),
    Route("/os-server-groups/{group_id}", "GET", show),
    Route("/os-server-groups/{group_id}", "DELETE", delete),
]
