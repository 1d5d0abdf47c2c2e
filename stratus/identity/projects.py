"""``/v3/projects``: create, list (filters name, domain_id, enabled), show, update, delete. Projects are flat: each
one's parent is its domain (no hierarchy, no project tags API beyond the ``tags`` attribute). Attributes other than
Keystone's own are kept and shown, as Keystone keeps them."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.db import identity as db
from stratus.identity.common import (
    IdentityRequest,
    domain_or_404,
    empty,
    json_response,
    parse_bool,
    project_or_404,
)
from stratus.identity.domains import extra_of
from stratus.identity.errors import bad_request, conflict

OWN = ("id", "name", "domain_id", "description", "enabled", "parent_id", "is_domain", "tags", "options", "links")


def view(req: IdentityRequest, project: dict[str, Any]) -> dict[str, Any]:
    return {**(project["extra"] or {}), "id": project["id"], "name": project["name"],
            "domain_id": project["domain_id"],
            "description": project["description"] or "", "enabled": project["enabled"],
            "parent_id": project["domain_id"], "is_domain": False, "tags": project["tags"], "options": {},
            "links": req.link("projects", project["id"])}


async def create(req: IdentityRequest) -> Response:
    req.authorize("identity:create_project")
    body = (await req.body())["project"]
    if body.get("is_domain"):
        raise bad_request("Projects acting as domains are not supported; create a domain instead.")
    domain_id = body.get("domain_id") or await caller_domain(req)
    async with req.services.db.write() as conn:
        await domain_or_404(conn, domain_id)
        if body.get("parent_id") not in (None, domain_id):
            raise bad_request("Project hierarchies are not supported: parent_id must be the domain.")
        try:
            project = await db.create_project(conn, name=body["name"], domain_id=domain_id,
                                              description=body.get("description") or "",
                                              enabled=body.get("enabled", True), tags=body.get("tags"),
                                              extra=extra_of(body, OWN))
        except db.Duplicate as exc:
            raise conflict("project", str(exc)) from None
    return json_response({"project": view(req, project)}, 201)


async def caller_domain(req: IdentityRequest) -> str:
    """Keystone's default domain for a new project or user: the domain of the caller's scope."""
    caller = req.me
    if caller.domain_id:
        return caller.domain_id
    if caller.project_id:
        async with req.services.db.read() as conn:
            project = await db.get_project(conn, caller.project_id)
        if project is not None:
            return str(project["domain_id"])
    return db.DEFAULT_DOMAIN_ID


async def index(req: IdentityRequest) -> Response:
    req.authorize("identity:list_projects")
    q = req.query
    if "is_domain" in q and parse_bool("is_domain", q["is_domain"]):
        return json_response({"projects": [], "links": req.collection_links()})
    enabled = parse_bool("enabled", q["enabled"]) if "enabled" in q else None
    async with req.services.db.read() as conn:
        found = await db.list_projects(conn, name=q.get("name"), domain_id=q.get("domain_id"), enabled=enabled)
    if "parent_id" in q:
        found = [p for p in found if p["domain_id"] == q["parent_id"]]
    return json_response({"projects": [view(req, p) for p in found], "links": req.collection_links()})


async def show(req: IdentityRequest) -> Response:
    req.authorize("identity:get_project", project_id=req.path["project_id"])
    async with req.services.db.read() as conn:
        project = await project_or_404(conn, req.path["project_id"])
    return json_response({"project": view(req, project)})


async def update(req: IdentityRequest) -> Response:
    req.authorize("identity:update_project")
    body = (await req.body())["project"]
    async with req.services.db.write() as conn:
        project = await project_or_404(conn, req.path["project_id"])
        if body.get("domain_id", project["domain_id"]) != project["domain_id"]:
            raise bad_request("Cannot change Domain ID")
        if body.get("parent_id", project["domain_id"]) != project["domain_id"]:
            raise bad_request("Project hierarchies are not supported: parent_id must be the domain.")
        if body.get("is_domain"):
            raise bad_request("Cannot change is_domain")
        values = {k: body[k] for k in ("name", "description", "enabled", "tags") if k in body}
        if extra := extra_of(body, OWN):
            values["extra"] = {**(project["extra"] or {}), **extra}
        try:
            project = await db.update_project(conn, project, values)
        except db.Duplicate as exc:
            raise conflict("project", str(exc)) from None
    return json_response({"project": view(req, project)})


async def delete(req: IdentityRequest) -> Response:
    req.authorize("identity:delete_project")
    async with req.services.db.write() as conn:
        await project_or_404(conn, req.path["project_id"])
        await db.delete_project(conn, req.path["project_id"])
    return empty()
