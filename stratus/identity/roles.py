"""``/v3/roles`` (list, show, create, delete), the grants on projects and domains
(``PUT/HEAD/GET/DELETE /v3/{projects|domains}/{id}/users/{user_id}/roles/{role_id}`` and their lists), and
``GET /v3/role_assignments`` (filters user.id, scope.project.id, scope.domain.id, role.id; ``effective`` adds the
implied roles; ``include_names``). Roles are global (no domain-specific roles); groups do not exist."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from stratus.db import identity as db
from stratus.db.engine import Connection
from stratus.identity.common import (
    IdentityRequest,
    domain_or_404,
    domain_ref,
    empty,
    flag,
    json_response,
    project_or_404,
    role_or_404,
    user_or_404,
)
from stratus.identity.errors import IdentityError, bad_request, conflict


def view(req: IdentityRequest, role: dict[str, Any]) -> dict[str, Any]:
    return {"id": role["id"], "name": role["name"], "domain_id": None, "description": role["description"],
            "options": {}, "links": req.link("roles", role["id"])}


async def index(req: IdentityRequest) -> Response:
    req.authorize("identity:list_roles")
    if req.query.get("domain_id"):  # no domain-specific roles
        return json_response({"roles": [], "links": req.collection_links()})
    async with req.services.db.read() as conn:
        found = await db.list_roles(conn, name=req.query.get("name"))
    return json_response({"roles": [view(req, r) for r in found], "links": req.collection_links()})


async def show(req: IdentityRequest) -> Response:
    req.authorize("identity:get_role")
    async with req.services.db.read() as conn:
        role = await role_or_404(conn, req.path["role_id"])
    return json_response({"role": view(req, role)})


async def create(req: IdentityRequest) -> Response:
    req.authorize("identity:create_role")
    body = (await req.body())["role"]
    if body.get("domain_id"):
        raise bad_request("Domain-specific roles are not supported by the embedded identity service.")
    async with req.services.db.write() as conn:
        try:
            role = await db.create_role(conn, name=body["name"], description=body.get("description"))
        except db.Duplicate as exc:
            raise conflict("role", str(exc)) from None
    return json_response({"role": view(req, role)}, 201)


async def delete(req: IdentityRequest) -> Response:
    req.authorize("identity:delete_role")
    async with req.services.db.write() as conn:
        await role_or_404(conn, req.path["role_id"])
        await db.delete_role(conn, req.path["role_id"])
    return empty()


# --- grants ------------------------------------------------------------------------------------------------------
def _target(req: IdentityRequest) -> tuple[str, str]:
    if "project_id" in req.path:
        return db.PROJECT, req.path["project_id"]
    return db.DOMAIN, req.path["domain_id"]


async def _grant_parts(req: IdentityRequest, conn: Connection, with_role: bool = True) -> tuple[str, str]:
    """404 unless the target, the user and (``with_role``) the role exist; returns (target type, target id)."""
    target_type, target_id = _target(req)
    await (project_or_404(conn, target_id) if target_type == db.PROJECT else domain_or_404(conn, target_id))
    await user_or_404(conn, req.path["user_id"])
    if with_role:
        await role_or_404(conn, req.path["role_id"])
    return target_type, target_id


async def grant(req: IdentityRequest) -> Response:
    req.authorize("identity:create_grant")
    try:
        async with req.services.db.write() as conn:
            target_type, target_id = await _grant_parts(req, conn)
            await db.assign(conn, req.path["user_id"], target_type, target_id, req.path["role_id"])
    except IntegrityError:  # PostgreSQL: a concurrent writer made the same grant, or took a part of it away
        async with req.services.db.read() as conn:
            target_type, target_id = await _grant_parts(req, conn)
            if not await db.has_assignment(conn, req.path["user_id"], target_type, target_id, req.path["role_id"]):
                raise conflict("role assignment", "it changed while being made; try again") from None
    return empty()


async def check_grant(req: IdentityRequest) -> Response:
    req.authorize("identity:check_grant")
    async with req.services.db.read() as conn:
        target_type, target_id = await _grant_parts(req, conn)
        if not await db.has_assignment(conn, req.path["user_id"], target_type, target_id, req.path["role_id"]):
            raise IdentityError(404, f"Could not find role assignment with role: {req.path['role_id']}, "
                                     f"user or group: {req.path['user_id']}, {target_type}: {target_id}.")
    return empty()


async def revoke_grant(req: IdentityRequest) -> Response:
    req.authorize("identity:revoke_grant")
    async with req.services.db.write() as conn:
        target_type, target_id = await _grant_parts(req, conn)
        if not await db.unassign(conn, req.path["user_id"], target_type, target_id, req.path["role_id"]):
            raise IdentityError(404, f"Could not find role assignment with role: {req.path['role_id']}, "
                                     f"user or group: {req.path['user_id']}, {target_type}: {target_id}.")
    return empty()


async def list_grants(req: IdentityRequest) -> Response:
    req.authorize("identity:list_grants")
    async with req.services.db.read() as conn:
        target_type, target_id = await _grant_parts(req, conn, with_role=False)
        granted = {a["role_id"] for a in await db.list_assignments(
            conn, user_id=req.path["user_id"], target_type=target_type, target_id=target_id)}
        found = [r for r in await db.list_roles(conn) if r["id"] in granted]
    return json_response({"roles": [view(req, r) for r in found], "links": req.collection_links()})


# --- /v3/role_assignments ----------------------------------------------------------------------------------------
async def list_assignments(req: IdentityRequest) -> Response:
    req.authorize("identity:list_role_assignments")
    q = req.query
    if "group.id" in q:
        return json_response({"role_assignments": [], "links": req.collection_links()})
    target_type, target_id = ((db.PROJECT, q["scope.project.id"]) if "scope.project.id" in q else
                              (db.DOMAIN, q["scope.domain.id"]) if "scope.domain.id" in q else (None, None))
    effective, names = flag(q, "effective"), flag(q, "include_names")
    async with req.services.db.read() as conn:
        direct = await db.list_assignments(conn, user_id=q.get("user.id"), target_type=target_type,
                                           target_id=target_id, role_id=None if effective else q.get("role.id"))
        rows = [(a, None) for a in direct]
        if effective:  # each grant, then the roles it implies, linked to the grant they come from
            implied = await db.implications(conn)
            rows = [({**a, "role_id": role_id}, None if role_id == a["role_id"] else a["role_id"])
                    for a in direct for role_id in db.expand([a["role_id"]], implied)]
            rows = [r for r in rows if q.get("role.id", r[0]["role_id"]) == r[0]["role_id"]]
        out = [await _assignment_view(req, conn, a, prior, names) for a, prior in rows]
    return json_response({"role_assignments": out, "links": req.collection_links()})


async def _assignment_view(req: IdentityRequest, conn: Connection, a: dict[str, Any], prior: str | None,
                           names: bool) -> dict[str, Any]:
    kind = "projects" if a["target_type"] == db.PROJECT else "domains"
    base = req.base()
    links = {"assignment": f"{base}/{kind}/{a['target_id']}/users/{a['user_id']}/roles/{prior or a['role_id']}"}
    if prior:
        links["prior_role"] = f"{base}/roles/{prior}"
    role: dict[str, Any] = {"id": a["role_id"]}
    user: dict[str, Any] = {"id": a["user_id"]}
    target: dict[str, Any] = {"id": a["target_id"]}
    if names:
        found_role = await db.get_role(conn, a["role_id"])
        role["name"] = found_role["name"] if found_role else a["role_id"]
        found_user = await db.get_user(conn, a["user_id"])
        if found_user is not None:
            user.update(name=found_user["name"], domain=await domain_ref(conn, found_user["domain_id"]))
        if a["target_type"] == db.PROJECT:
            project = await db.get_project(conn, a["target_id"])
            if project is not None:
                target.update(name=project["name"], domain=await domain_ref(conn, project["domain_id"]))
        else:
            target.update(await domain_ref(conn, a["target_id"]))
    return {"role": role, "user": user, "scope": {a["target_type"]: target}, "links": links}

