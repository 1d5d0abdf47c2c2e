"""``/v3/users/{user_id}/application_credentials``: create (the secret is shown once, only its bcrypt hash is kept),
list (filter name), show, delete (revokes the tokens it issued).

A user creates them for the project of the token used, delegating some or all of that token's roles. A token made
from a restricted application credential (``unrestricted`` false, the default) may not create or delete others.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.db import identity as db
from stratus.identity.common import IdentityRequest, empty, isotime, json_response, user_or_404
from stratus.identity.errors import IdentityError, bad_request, conflict, not_found
from stratus.identity.methods import parse_expiry
from stratus.identity.passwords import generate_secret
from stratus.utils import utcnow


def view(req: IdentityRequest, cred: dict[str, Any]) -> dict[str, Any]:
    return {"id": cred["id"], "name": cred["name"], "description": cred["description"], "user_id": cred["user_id"],
            "project_id": cred["project_id"], "roles": [{**r, "domain_id": None} for r in cred["roles"]],
            "expires_at": isotime(cred["expires_at"]), "unrestricted": cred["unrestricted"], "access_rules": [],
            "links": {"self": f"{req.base()}/users/{cred['user_id']}/application_credentials/{cred['id']}"}}


async def _refuse_restricted(req: IdentityRequest) -> None:
    """403 when the caller's token came from a restricted application credential."""
    credential_id = req.me.application_credential_id
    if credential_id is None:
        return
    async with req.services.db.read() as conn:
        used = await db.get_application_credential(conn, credential_id)
    if used is None or not used["unrestricted"]:
        raise IdentityError(403, "Using method 'application_credential' is not allowed for managing additional "
                                 "application credentials.")


async def create(req: IdentityRequest) -> Response:
    user_id = req.path["user_id"]
    req.authorize("identity:create_application_credential", user_id=user_id)
    body = (await req.body())["application_credential"]
    await _refuse_restricted(req)
    caller = req.me
    if caller.project_id is None:
        raise bad_request("Application credentials must be created with a project-scoped token.")
    held = {r["id"]: r for r in caller.roles}
    by_name = {r["name"]: r for r in caller.roles}
    wanted = body.get("roles") or list(caller.roles)
    roles = []
    for ref in wanted:
        role = held.get(ref.get("id", "")) or by_name.get(ref.get("name", ""))
        if role is None:
            raise bad_request(f"Invalid input for field 'roles': the token does not hold role "
                              f"{ref.get('id') or ref.get('name')}.")
        roles.append({"id": role["id"], "name": role["name"]})
    expires_at = parse_expiry(body.get("expires_at"))
    if expires_at is not None and expires_at <= utcnow():
        raise bad_request("Invalid input for field 'expires_at': the time is in the past.")
    secret = body.get("secret") or generate_secret()
    secret_hash = await req.services.hasher.hash(secret)
    async with req.services.db.write() as conn:
        try:
            cred = await db.create_application_credential(
                conn, user_id=user_id, project_id=caller.project_id, name=body["name"], secret_hash=secret_hash,
                roles_=roles, description=body.get("description"), expires_at=expires_at,
                unrestricted=bool(body.get("unrestricted")))
        except db.Duplicate as exc:
            raise conflict("application_credential", str(exc)) from None
    return json_response({"application_credential": {**view(req, cred), "secret": secret}}, 201)


async def index(req: IdentityRequest) -> Response:
    req.authorize("identity:list_application_credentials", user_id=req.path["user_id"])
    async with req.services.db.read() as conn:
        await user_or_404(conn, req.path["user_id"])
        found = await db.list_application_credentials(conn, req.path["user_id"], name=req.query.get("name"))
    return json_response({"application_credentials": [view(req, c) for c in found],
                          "links": req.collection_links()})


async def _own(req: IdentityRequest) -> dict[str, Any]:
    async with req.services.db.read() as conn:
        cred = await db.get_application_credential(conn, req.path["credential_id"])
    if cred is None or cred["user_id"] != req.path["user_id"]:
        raise not_found("application credential", req.path["credential_id"])
    return cred


async def show(req: IdentityRequest) -> Response:
    req.authorize("identity:get_application_credential", user_id=req.path["user_id"])
    return json_response({"application_credential": view(req, await _own(req))})


async def delete(req: IdentityRequest) -> Response:
    req.authorize("identity:delete_application_credential", user_id=req.path["user_id"])
    await _refuse_restricted(req)
    cred = await _own(req)
    async with req.services.db.write() as conn:
        await db.delete_application_credential(conn, cred["id"])
    return empty()
