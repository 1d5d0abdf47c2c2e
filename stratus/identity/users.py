"""``/v3/users``: create (with a password), list (filters name, domain_id, enabled), show, update (a new password or
disabling revokes the user's tokens), delete; ``GET /v3/users/{id}/projects``; and the self-service
``POST /v3/users/{id}/password``. Attributes other than Keystone's own (email, description, …) are kept and shown."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.db import identity as db
from stratus.identity import methods, projects
from stratus.identity.common import (
    IdentityRequest,
    domain_or_404,
    empty,
    json_response,
    parse_bool,
    project_or_404,
    user_or_404,
)
from stratus.identity.errors import bad_request, conflict

_OWN = ("id", "name", "domain_id", "password", "enabled", "default_project_id", "links", "options",
        "password_expires_at", "federated")


def view(req: IdentityRequest, user: dict[str, Any]) -> dict[str, Any]:
    out = {**user["extra"], "id": user["id"], "name": user["name"], "domain_id": user["domain_id"],
           "enabled": user["enabled"], "password_expires_at": None, "options": user["options"] or {},
           "links": req.link("users", user["id"])}
    if user["default_project_id"]:
        out["default_project_id"] = user["default_project_id"]
    return out


async def create(req: IdentityRequest) -> Response:
    req.authorize("identity:create_user")
    body = (await req.body())["user"]
    domain_id = body.get("domain_id") or await projects.caller_domain(req)
    password_hash = await req.services.hasher.hash(body["password"]) if body.get("password") else None
    async with req.services.db.write() as conn:
        await domain_or_404(conn, domain_id)
        if body.get("default_project_id"):
            await project_or_404(conn, body["default_project_id"])
        try:
            user = await db.create_user(conn, name=body["name"], domain_id=domain_id, password_hash=password_hash,
                                        enabled=body.get("enabled", True),
                                        default_project_id=body.get("default_project_id"),
                                        extra={k: v for k, v in body.items() if k not in _OWN},
                                        options=_options({}, body.get("options")))
        except db.Duplicate as exc:
            raise conflict("user", str(exc)) from None
    return json_response({"user": view(req, user)}, 201)


async def index(req: IdentityRequest) -> Response:
    req.authorize("identity:list_users")
    q = req.query
    filters = {"name": q.get("name"), "domain_id": q.get("domain_id"),
               "enabled": parse_bool("enabled", q["enabled"]) if "enabled" in q else None}
    async with req.services.db.read() as conn:
        found = await db.list_users(conn, **filters)
    return json_response({"users": [view(req, u) for u in found], "links": req.collection_links()})


async def show(req: IdentityRequest) -> Response:
    req.authorize("identity:get_user", user_id=req.path["user_id"])
    async with req.services.db.read() as conn:
        user = await user_or_404(conn, req.path["user_id"])
    return json_response({"user": view(req, user)})


async def update(req: IdentityRequest) -> Response:
    req.authorize("identity:update_user")
    body = (await req.body())["user"]
    values: dict[str, Any] = {k: body[k] for k in ("name", "enabled", "default_project_id") if k in body}
    if "password" in body:
        values["password_hash"] = await req.services.hasher.hash(body["password"]) if body["password"] else None
    async with req.services.db.write() as conn:
        user = await user_or_404(conn, req.path["user_id"])
        if body.get("domain_id", user["domain_id"]) != user["domain_id"]:
            raise bad_request("Cannot change Domain ID")
        if values.get("default_project_id"):
            await project_or_404(conn, values["default_project_id"])
        extra = {k: v for k, v in body.items() if k not in _OWN}
        if extra:
            values["extra"] = {**user["extra"], **extra}
        if "options" in body:
            values["options"] = _options(user["options"] or {}, body["options"])
        try:
            user = await db.update_user(conn, user, values)
        except db.Duplicate as exc:
            raise conflict("user", str(exc)) from None
    return json_response({"user": view(req, user)})


def _options(current: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    """Keystone's user options: a null value removes the option."""
    merged = {**current, **(given or {})}
    return {k: v for k, v in merged.items() if v is not None}


async def delete(req: IdentityRequest) -> Response:
    req.authorize("identity:delete_user")
    async with req.services.db.write() as conn:
        await user_or_404(conn, req.path["user_id"])
        await db.delete_user(conn, req.path["user_id"])
    return empty()


async def list_projects(req: IdentityRequest) -> Response:
    """``GET /v3/users/{user_id}/projects``: the projects where the user holds a role."""
    req.authorize("identity:list_user_projects", user_id=req.path["user_id"])
    async with req.services.db.read() as conn:
        await user_or_404(conn, req.path["user_id"])
        found = await db.list_projects(conn, ids=await db.user_project_ids(conn, req.path["user_id"]))
    return json_response({"projects": [projects.view(req, p) for p in found], "links": req.collection_links()})


async def change_password(req: IdentityRequest) -> Response:
    """``POST /v3/users/{user_id}/password``: needs no token, the original password proves the caller."""
    body = (await req.body())["user"]
    async with req.services.db.read() as conn:
        user = await db.get_user(conn, req.path["user_id"])
    await methods.check_password(req.services, user, body["original_password"])
    assert user is not None
    new_hash = await req.services.hasher.hash(body["password"], key=user["id"])
    async with req.services.db.write() as conn:
        await db.update_user(conn, user, {"password_hash": new_hash})
    return empty()
