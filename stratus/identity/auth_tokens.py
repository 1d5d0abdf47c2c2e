"""``/v3/auth/*``: issue (``POST /v3/auth/tokens``), validate (``GET``), check (``HEAD``) and revoke (``DELETE``)
tokens, and what the caller's token gives access to (``/v3/auth/projects``, ``/v3/auth/domains``,
``/v3/auth/catalog``). The token id travels in ``X-Subject-Token``; the body is Keystone's token document."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.db import identity as db
from stratus.db.engine import Connection
from stratus.identity import catalog, domains, methods, projects
from stratus.identity.common import IdentityRequest, IdentityServices, domain_ref, empty, flag, isotime, json_response
from stratus.identity.errors import IdentityError, bad_request
from stratus.identity.tokens import Token


async def render(services: IdentityServices, conn: Connection, token: Token, with_catalog: bool) -> dict[str, Any]:
    """Keystone's token document for ``token``."""
    user = await db.get_user(conn, token.user_id)
    body: dict[str, Any] = {
        "methods": token.methods,
        "user": {"id": token.user_id, "name": user["name"] if user else token.user_id,
                 "domain": await domain_ref(conn, user["domain_id"] if user else db.DEFAULT_DOMAIN_ID),
                 "password_expires_at": None},
        "audit_ids": token.audit_ids,
        "issued_at": isotime(token.issued_at),
        "expires_at": isotime(token.expires_at),
    }
    if token.project_id:
        project = await db.get_project(conn, token.project_id)
        body["project"] = {"id": token.project_id, "name": project["name"] if project else token.project_id,
                           "domain": await domain_ref(conn, project["domain_id"] if project
                                                      else db.DEFAULT_DOMAIN_ID)}
        body["is_domain"] = False
    elif token.domain_id:
        body["domain"] = await domain_ref(conn, token.domain_id)
    if token.project_id or token.domain_id:
        body["roles"] = token.roles
        if with_catalog:
            body["catalog"] = catalog.token_catalog(services.catalog)
    if token.application_credential_id:
        cred = await db.get_application_credential(conn, token.application_credential_id)
        body["application_credential"] = {"id": token.application_credential_id,
                                          "name": cred["name"] if cred else None,
                                          "restricted": not (cred and cred["unrestricted"])}
    return {"token": body}


async def issue(req: IdentityRequest) -> Response:
    token_id, token = await methods.authenticate(req.services, await req.body())
    async with req.services.db.read() as conn:
        body = await render(req.services, conn, token, not flag(req.query, "nocatalog"))
    return json_response(body, 201, {"X-Subject-Token": token_id})


async def _subject(req: IdentityRequest, rule: str) -> Token:
    """The token named by ``X-Subject-Token``, if the caller may see it; 404 if it is not valid."""
    subject_id = req.raw.headers.get("x-subject-token")
    if not subject_id:
        raise bad_request("Invalid input for field 'X-Subject-Token': the header is required.")
    if subject_id == req.raw.headers.get("x-auth-token"):
        subject: Token | None = req.me
    else:
        subject = await req.services.tokens.validate(subject_id, cached=False,
                                                     allow_expired=flag(req.query, "allow_expired"))
    if subject is None:
        raise IdentityError(404, "Could not find token: the token is unknown, expired or revoked.")
    req.authorize(rule, user_id=subject.user_id)
    return subject


async def validate(req: IdentityRequest) -> Response:
    subject = await _subject(req, "identity:validate_token")
    async with req.services.db.read() as conn:
        body = await render(req.services, conn, subject, not flag(req.query, "nocatalog"))
    return json_response(body, 200, {"X-Subject-Token": req.raw.headers["x-subject-token"]})


async def check(req: IdentityRequest) -> Response:
    await _subject(req, "identity:check_token")
    return empty(200)


async def revoke(req: IdentityRequest) -> Response:
    await _subject(req, "identity:revoke_token")
    if not await req.services.tokens.revoke(req.raw.headers["x-subject-token"]):
        raise IdentityError(404, "Could not find token: the token is unknown, expired or revoked.")
    return empty()


async def auth_projects(req: IdentityRequest) -> Response:
    """The enabled projects where the caller's user holds a role (what it may scope to)."""
    req.authorize("identity:get_auth_projects")
    async with req.services.db.read() as conn:
        found = await db.list_projects(conn, ids=await db.user_project_ids(conn, req.me.user_id), enabled=True)
    return json_response({"projects": [projects.view(req, p) for p in found], "links": req.collection_links()})


async def auth_domains(req: IdentityRequest) -> Response:
    req.authorize("identity:get_auth_domains")
    async with req.services.db.read() as conn:
        ids = set(await db.user_domain_ids(conn, req.me.user_id))
        found = [d for d in await db.list_domains(conn, enabled=True) if d["id"] in ids]
    return json_response({"domains": [domains.view(req, d) for d in found], "links": req.collection_links()})


async def auth_catalog(req: IdentityRequest) -> Response:
    req.authorize("identity:get_auth_catalog")
    if req.me.project_id is None and req.me.domain_id is None:
        raise IdentityError(403, "A project-scoped token is required to produce a service catalog.")
    return json_response({"catalog": catalog.token_catalog(req.services.catalog), "links": req.collection_links()})
