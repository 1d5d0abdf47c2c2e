"""``POST /v3/auth/tokens`` without the HTTP: the auth methods (password, application_credential, token) prove who
the caller is, the scope (a project, a domain, or none) picks what the token is for, and the roles are the user's
effective roles there, snapshotted into the new token.

The body has been checked against ``stratus.identity.schema.TOKEN_ISSUE`` (the route's schema). The slow part,
bcrypt, runs in the hasher's worker threads with no database connection held, its turn shared fairly between the
accounts being tried; with ``[security_compliance] lockout_failure_attempts`` a locked account is refused before
any check (``stratus.identity.lockout``).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Awaitable, Callable
from typing import Any

from stratus.db import identity as db
from stratus.db.engine import Connection
from stratus.identity.common import IdentityServices
from stratus.identity.errors import IdentityError, bad_request, unauthorized
from stratus.identity.passwords import UNKNOWN
from stratus.identity.tokens import Token
from stratus.utils import parse_isotime, utcnow


@dataclasses.dataclass
class Proof:
    """What one auth method established."""

    user: dict[str, Any]
    application_credential: dict[str, Any] | None = None
    original: Token | None = None  # the token method's token


Method = Callable[[IdentityServices, dict[str, Any]], Awaitable[Proof]]


async def _domain_id(conn: Connection, ref: dict[str, Any] | None, what: str) -> str:
    """The id of the domain ``ref`` names (by id or name); 401 if there is none."""
    if not ref or not (ref.get("id") or ref.get("name")):
        raise bad_request(f"Expecting to find domain in {what}. The server could not comply with the request "
                          "since it is either malformed or otherwise incorrect.")
    domain = await (db.get_domain(conn, ref["id"]) if ref.get("id") else db.find_domain(conn, ref["name"]))
    if domain is None or not domain["enabled"]:
        raise unauthorized()
    return str(domain["id"])


async def _user(conn: Connection, ref: dict[str, Any]) -> dict[str, Any] | None:
    if ref.get("id"):
        return await db.get_user(conn, ref["id"])
    if not ref.get("name"):
        raise bad_request("Expecting to find user id or name with domain.")
    return await db.find_user(conn, ref["name"], await _domain_id(conn, ref.get("domain"), "user"))


async def check_password(services: IdentityServices, user: dict[str, Any] | None, secret: str) -> None:
    """401 unless ``secret`` is the password of ``user`` (None: no such user; the check costs the same time), or
    if the account is locked; a wrong password counts towards the lockout."""
    lockout = services.lockout

    async def unless_locked() -> None:
        if user is not None:
            await lockout.refuse_if_locked(services.db, user["id"])

    hashed = user["password_hash"] if user else None
    if not await services.hasher.check(secret, hashed, key=user["id"] if user else UNKNOWN, before=unless_locked):
        if user is not None:
            await lockout.failed(services.db, user["id"])
        raise unauthorized()
    assert user is not None
    await lockout.succeeded(services.db, user)


async def password(services: IdentityServices, data: dict[str, Any]) -> Proof:
    ref = data["user"]
    async with services.db.read() as conn:
        user = await _user(conn, ref)
    await check_password(services, user, ref["password"])
    assert user is not None
    return Proof(user)


async def application_credential(services: IdentityServices, data: dict[str, Any]) -> Proof:
    async with services.db.read() as conn:
        if data.get("id"):
            credential = await db.get_application_credential(conn, data["id"])
        elif data.get("name") and data.get("user"):
            owner = await _user(conn, data["user"])
            credential = owner and await db.find_application_credential(conn, owner["id"], data["name"])
        else:
            raise bad_request("Expecting to find application credential id, or name with user.")
        user = credential and await db.get_user(conn, credential["user_id"])
    key = "application_credential:" + credential["id"] if credential else UNKNOWN
    if not await services.hasher.check(data["secret"], credential["secret_hash"] if credential else None, key=key):
        raise unauthorized()
    assert credential is not None and user is not None
    if credential["expires_at"] is not None and credential["expires_at"] <= utcnow():
        raise unauthorized("The application credential has expired.")
    return Proof(user, application_credential=credential)


async def token(services: IdentityServices, data: dict[str, Any]) -> Proof:
    original = await services.tokens.validate(data["id"], cached=False)
    if original is None:
        raise unauthorized("The token to rescope is not valid.")
    if original.application_credential_id is not None:
        raise IdentityError(403, "A token created with an application credential cannot be rescoped.")
    async with services.db.read() as conn:
        user = await db.get_user(conn, original.user_id)
    if user is None:
        raise unauthorized()
    return Proof(user, original=original)


METHODS: dict[str, Method] = {"password": password, "application_credential": application_credential,
                              "token": token}


_SCOPES = ("project", "domain", "unscoped", "system", "OS-TRUST:trust")


async def _scope(conn: Connection, scope: Any, user: dict[str, Any]) -> tuple[str | None, str | None]:
    """(project_id, domain_id) of the requested scope; (None, None) for unscoped (``"unscoped"``, or
    ``{"unscoped": {}}`` as old keystoneauth sends it)."""
    if scope is None:  # Keystone scopes to the default project when the user has a role there
        project_id = user["default_project_id"]
        if project_id and await db.effective_roles(conn, user["id"], db.PROJECT, project_id):
            project = await db.get_project(conn, project_id)
            if project is not None and project["enabled"]:
                return project_id, None
        return None, None
    kinds = [k for k in _SCOPES if (k == scope if isinstance(scope, str) else k in scope)]
    if len(kinds) != 1:
        raise bad_request("Expecting to find system, project, domain, OS-TRUST:trust or unscoped in scope. The "
                          "server could not comply with the request since it is either malformed or otherwise "
                          "incorrect. The client is assumed to be in error.")
    if kinds == ["unscoped"]:
        return None, None
    if kinds == ["system"]:
        raise unauthorized("System-scoped tokens are not supported by the embedded identity service.")
    if kinds == ["OS-TRUST:trust"]:
        raise unauthorized("Trusts are not supported by the embedded identity service.")
    if "project" in scope:
        ref = scope["project"] or {}
        if ref.get("id"):
            project = await db.get_project(conn, ref["id"])
        elif ref.get("name"):
            project = await db.find_project(conn, ref["name"], await _domain_id(conn, ref.get("domain"), "project"))
        else:
            raise bad_request("Expecting to find project id or name with domain.")
        if project is None or not project["enabled"]:
            raise unauthorized(f"Could not find project: {ref.get('id') or ref.get('name')}.")
        domain = await db.get_domain(conn, project["domain_id"])
        if domain is None or not domain["enabled"]:
            raise unauthorized()
        return str(project["id"]), None
    return None, await _domain_id(conn, scope["domain"], "scope")


async def authenticate(services: IdentityServices, body: Any) -> tuple[str, Token]:
    """Check the credentials in a ``POST /v3/auth/tokens`` body (valid against ``schema.TOKEN_ISSUE``) and issue
    the token; returns (id, token)."""
    identity, scope = body["auth"]["identity"], body["auth"].get("scope")
    names = list(dict.fromkeys(identity["methods"]))
    if any(name not in METHODS for name in names):
        raise unauthorized("Attempted to authenticate with an unsupported method.")
    proofs = []
    for name in names:
        if name not in identity:
            raise bad_request(f"Invalid input for field 'identity': '{name}' is a required property")
        proofs.append(await METHODS[name](services, identity[name]))
    user = proofs[0].user
    if any(p.user["id"] != user["id"] for p in proofs):
        raise unauthorized("The auth methods name different users.")
    credential = next((p.application_credential for p in proofs if p.application_credential), None)
    original = next((p.original for p in proofs if p.original), None)
    expires_at: datetime.datetime | None = None
    async with services.db.read() as conn:
        domain = await db.get_domain(conn, user["domain_id"])
        if not user["enabled"] or domain is None or not domain["enabled"]:
            raise unauthorized()
        if credential is not None:
            named = scope.get("project") if isinstance(scope, dict) else None
            if scope is not None and (named or {}).get("id") != credential["project_id"]:
                raise unauthorized("Application credentials cannot request a scope.")
            project_id, domain_id = credential["project_id"], None
            expires_at = credential["expires_at"]
        elif original is not None and scope is None:  # rescoping to nothing new keeps the scope
            project_id, domain_id = original.project_id, original.domain_id
        else:
            project_id, domain_id = await _scope(conn, scope, user)
        if original is not None:
            expires_at = original.expires_at
        roles: list[dict[str, str]] = []
        if project_id or domain_id:
            target = (db.PROJECT, project_id) if project_id else (db.DOMAIN, domain_id)
            roles = await db.effective_roles(conn, user["id"], target[0], str(target[1]))
            if credential is not None:  # what was delegated, as far as the user still holds it
                delegated = {r["id"] for r in credential["roles"]}
                delegated.update(db.expand(delegated, await db.implications(conn)))
                roles = [r for r in roles if r["id"] in delegated]
            if not roles:
                raise unauthorized(f"User {user['id']} has no access to {target[0]} {target[1]}.")
    async with services.db.write() as conn:
        return await services.tokens.issue(
            conn, user_id=user["id"], roles=roles, methods=names, project_id=project_id, domain_id=domain_id,
            application_credential_id=credential["id"] if credential else None, expires_at=expires_at,
            parent_audit_id=original.audit_ids[-1] if original else None)


def parse_expiry(value: Any) -> datetime.datetime | None:
    """An ``expires_at`` in a request body (ISO 8601, or null); naive UTC."""
    if value is None:
        return None
    try:
        return parse_isotime(str(value))
    except ValueError:
        raise bad_request(f"Invalid input for field 'expires_at': {value!r} is not an ISO 8601 time.") from None
