"""``/v3/domains``: list (filters name, enabled), show, create, update, delete (a domain must be disabled first, as in
Keystone; ``default`` cannot be deleted). Attributes other than Keystone's own are kept and shown, as Keystone
keeps them."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.db import identity as db
from stratus.identity.common import IdentityRequest, domain_or_404, empty, json_response, parse_bool
from stratus.identity.errors import IdentityError, bad_request, conflict

OWN = ("id", "name", "description", "enabled", "tags", "options", "links", "explicit_domain_id")


def extra_of(body: dict[str, Any], own: tuple[str, ...] = OWN) -> dict[str, Any]:
    """The attributes of a request body that are not Keystone's own: kept as they are (``extra``)."""
    return {k: v for k, v in body.items() if k not in own}


def view(req: IdentityRequest, domain: dict[str, Any]) -> dict[str, Any]:
    return {**(domain["extra"] or {}), "id": domain["id"], "name": domain["name"],
            "description": domain["description"] or "", "enabled": domain["enabled"], "tags": [], "options": {},
            "links": req.link("domains", domain["id"])}


async def index(req: IdentityRequest) -> Response:
    req.authorize("identity:list_domains")
    q = req.query
    async with req.services.db.read() as conn:
        found = await db.list_domains(conn, name=q.get("name"),
                                      enabled=parse_bool("enabled", q["enabled"]) if "enabled" in q else None)
    return json_response({"domains": [view(req, d) for d in found], "links": req.collection_links()})


async def show(req: IdentityRequest) -> Response:
    req.authorize("identity:get_domain", domain_id=req.path["domain_id"])
    async with req.services.db.read() as conn:
        domain = await domain_or_404(conn, req.path["domain_id"])
    return json_response({"domain": view(req, domain)})


async def create(req: IdentityRequest) -> Response:
    req.authorize("identity:create_domain")
    body = (await req.body())["domain"]
    if body.get("tags"):
        raise bad_request("Domain tags are not supported by the embedded identity service.")
    async with req.services.db.write() as conn:
        try:
            domain = await db.create_domain(conn, name=body["name"], description=body.get("description") or "",
                                            enabled=body.get("enabled", True),
                                            domain_id=body.get("explicit_domain_id"), extra=extra_of(body))
        except db.Duplicate as exc:
            raise conflict("domain", str(exc)) from None
    return json_response({"domain": view(req, domain)}, 201)


async def update(req: IdentityRequest) -> Response:
    req.authorize("identity:update_domain")
    body = (await req.body())["domain"]
    if body.get("tags"):
        raise bad_request("Domain tags are not supported by the embedded identity service.")
    async with req.services.db.write() as conn:
        current = await domain_or_404(conn, req.path["domain_id"])
        values = {k: body[k] for k in ("name", "description", "enabled") if k in body}
        if extra := extra_of(body):
            values["extra"] = {**(current["extra"] or {}), **extra}
        try:
            domain = await db.update_domain(conn, req.path["domain_id"], values)
        except db.Duplicate as exc:
            raise conflict("domain", str(exc)) from None
    assert domain is not None
    return json_response({"domain": view(req, domain)})


async def delete(req: IdentityRequest) -> Response:
    req.authorize("identity:delete_domain")
    async with req.services.db.write() as conn:
        domain = await domain_or_404(conn, req.path["domain_id"])
        if domain["id"] == db.DEFAULT_DOMAIN_ID:
            raise IdentityError(403, "The default domain cannot be deleted.")
        if domain["enabled"]:
            raise IdentityError(403, "Cannot delete a domain that is enabled, please disable it first.")
        await db.delete_domain(conn, domain["id"])
    return empty()
