"""Identity queries: domains, projects, users, roles and their implications, role assignments, application
credentials and tokens (the embedded Keystone v3 subset).

Plain functions over an explicit connection, rows out as dicts. Passwords and secrets arrive here already hashed
(``stratus.identity.passwords``); token ids arrive as their sha256 (``token_hash``), never as themselves.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from stratus.db.engine import Connection
from stratus.db.models import (
    application_credentials,
    domains,
    implied_roles,
    projects,
    role_assignments,
    roles,
    tokens,
    users,
)
from stratus.utils import utcnow

DEFAULT_DOMAIN_ID = "default"
PROJECT, DOMAIN = "project", "domain"


class Duplicate(Exception):
    """A name already taken where it must be unique (message says which)."""


def new_id() -> str:
    """Keystone's id form: 32 hex digits."""
    return uuid.uuid4().hex


def token_hash(token_id: str) -> str:
    return hashlib.sha256(token_id.encode()).hexdigest()


def _row(row: Any) -> dict[str, Any] | None:
    return None if row is None else dict(row._mapping)


def _rowcount(result: Any) -> int:
    return cast("CursorResult[Any]", result).rowcount


async def _insert(conn: Connection, table: Any, values: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        await conn.execute(insert(table).values(**values))
    except IntegrityError:  # a name taken by a concurrent writer; the caller's transaction rolls back
        raise Duplicate(what) from None
    return values


def _filtered(table: Any, filters: dict[str, Any]) -> Any:
    query = select(table)
    for column, value in filters.items():
        if value is not None:
            query = query.where(table.c[column] == value)
    return query


# --- domains -----------------------------------------------------------------------------------------------------
async def get_domain(conn: Connection, domain_id: str) -> dict[str, Any] | None:
    return _row((await conn.execute(select(domains).where(domains.c.id == domain_id))).first())


async def find_domain(conn: Connection, name: str) -> dict[str, Any] | None:
    return _row((await conn.execute(select(domains).where(domains.c.name == name))).first())


async def list_domains(conn: Connection, **filters: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in await conn.execute(_filtered(domains, filters).order_by(domains.c.name))]


async def create_domain(conn: Connection, *, name: str, domain_id: str | None = None, description: str = "",
                        enabled: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    if await find_domain(conn, name) is not None:
        raise Duplicate(f"Duplicate entry found with name {name}.")
    if domain_id is not None and await get_domain(conn, domain_id) is not None:
        raise Duplicate(f"Duplicate ID, {domain_id}.")
    values = {"id": domain_id or new_id(), "name": name, "description": description, "enabled": enabled,
              "extra": extra or {}, "created_at": utcnow(), "updated_at": None}
    return await _insert(conn, domains, values, f"Duplicate entry found with name {name}.")


async def update_domain(conn: Connection, domain_id: str, values: dict[str, Any]) -> dict[str, Any] | None:
    if "name" in values and (other := await find_domain(conn, values["name"])) and other["id"] != domain_id:
        raise Duplicate(f"Duplicate entry found with name {values['name']}.")
    await conn.execute(update(domains).where(domains.c.id == domain_id).values(**values, updated_at=utcnow()))
    if values.get("enabled") is False:  # everything in it stops working at once, as in Keystone
        await conn.execute(update(tokens).where(or_(
            tokens.c.domain_id == domain_id,
            tokens.c.user_id.in_(select(users.c.id).where(users.c.domain_id == domain_id)),
            tokens.c.project_id.in_(select(projects.c.id).where(projects.c.domain_id == domain_id))))
            .values(revoked=True))
    return await get_domain(conn, domain_id)


async def delete_domain(conn: Connection, domain_id: str) -> None:
    """Delete a domain with everything in it: its users (their tokens and credentials cascade) and projects."""
    user_ids = [r.id for r in await conn.execute(select(users.c.id).where(users.c.domain_id == domain_id))]
    for user_id in user_ids:
        await delete_user(conn, user_id)
    for project_id in [r.id for r in await conn.execute(select(projects.c.id)
                                                          .where(projects.c.domain_id == domain_id))]:
        await delete_project(conn, project_id)
    await _forget_target(conn, DOMAIN, domain_id)
    await conn.execute(delete(domains).where(domains.c.id == domain_id))


# --- projects ----------------------------------------------------------------------------------------------------
async def get_project(conn: Connection, project_id: str) -> dict[str, Any] | None:
    return _row((await conn.execute(select(projects).where(projects.c.id == project_id))).first())


async def find_project(conn: Connection, name: str, domain_id: str) -> dict[str, Any] | None:
    return _row((await conn.execute(select(projects).where(projects.c.name == name,
                                                           projects.c.domain_id == domain_id))).first())


async def list_projects(conn: Connection, ids: Iterable[str] | None = None, **filters: Any) -> list[dict[str, Any]]:
    query = _filtered(projects, filters)
    if ids is not None:
        query = query.where(projects.c.id.in_(list(ids)))
    return [dict(r._mapping) for r in await conn.execute(query.order_by(projects.c.name, projects.c.id))]


def _duplicate_project(name: str, domain_id: str) -> str:
    return f"Duplicate entry found with name {name} at domain ID {domain_id}."


async def create_project(conn: Connection, *, name: str, domain_id: str, project_id: str | None = None,
                         description: str = "", enabled: bool = True, tags: list[str] | None = None,
                         extra: dict[str, Any] | None = None) -> dict[str, Any]:
    if await find_project(conn, name, domain_id) is not None:
        raise Duplicate(_duplicate_project(name, domain_id))
    values = {"id": project_id or new_id(), "name": name, "domain_id": domain_id, "description": description,
              "enabled": enabled, "tags": tags or [], "extra": extra or {}, "created_at": utcnow(),
              "updated_at": None}
    return await _insert(conn, projects, values, _duplicate_project(name, domain_id))


async def update_project(conn: Connection, project: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Change a project; disabling it revokes the tokens scoped to it."""
    if "name" in values and values["name"] != project["name"] and await find_project(
            conn, values["name"], project["domain_id"]) is not None:
        raise Duplicate(_duplicate_project(values["name"], project["domain_id"]))
    await conn.execute(update(projects).where(projects.c.id == project["id"]).values(**values, updated_at=utcnow()))
    if values.get("enabled") is False:
        await revoke_tokens(conn, project_id=project["id"])
    return {**project, **values}


async def delete_project(conn: Connection, project_id: str) -> None:
    """Delete a project, its role assignments and the tokens scoped to it (its application credentials cascade)."""
    await _forget_target(conn, PROJECT, project_id)
    await conn.execute(update(users).where(users.c.default_project_id == project_id)
                       .values(default_project_id=None))
    await conn.execute(delete(projects).where(projects.c.id == project_id))


async def _forget_target(conn: Connection, target_type: str, target_id: str) -> None:
    await conn.execute(delete(role_assignments).where(role_assignments.c.target_type == target_type,
                                                      role_assignments.c.target_id == target_id))
    column = tokens.c.project_id if target_type == PROJECT else tokens.c.domain_id
    await conn.execute(update(tokens).where(column == target_id).values(revoked=True))


# --- users -------------------------------------------------------------------------------------------------------
async def get_user(conn: Connection, user_id: str) -> dict[str, Any] | None:
    return _row((await conn.execute(select(users).where(users.c.id == user_id))).first())


async def find_user(conn: Connection, name: str, domain_id: str) -> dict[str, Any] | None:
    return _row((await conn.execute(select(users).where(users.c.name == name,
                                                        users.c.domain_id == domain_id))).first())


async def list_users(conn: Connection, **filters: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in await conn.execute(_filtered(users, filters)
                                                         .order_by(users.c.name, users.c.id))]


def _duplicate_user(name: str, domain_id: str) -> str:
    return f"Duplicate entry found with name {name} at domain ID {domain_id}."


async def create_user(conn: Connection, *, name: str, domain_id: str, password_hash: str | None,
                      user_id: str | None = None, enabled: bool = True, default_project_id: str | None = None,
                      extra: dict[str, Any] | None = None, options: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
    if await find_user(conn, name, domain_id) is not None:
        raise Duplicate(_duplicate_user(name, domain_id))
    values = {"id": user_id or new_id(), "name": name, "domain_id": domain_id, "password_hash": password_hash,
              "enabled": enabled, "default_project_id": default_project_id, "extra": extra or {},
              "options": options or {}, "failed_auth_count": None, "failed_auth_at": None,
              "created_at": utcnow(), "updated_at": None}
    return await _insert(conn, users, values, _duplicate_user(name, domain_id))


async def update_user(conn: Connection, user: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Change a user; a new password or disabling the user revokes every token of the user, as in Keystone. The
    update of a user who stays enabled clears its failed logins (Keystone's ``enabled`` setter does: this is how
    an administrator unlocks an account)."""
    if "name" in values and values["name"] != user["name"] and await find_user(
            conn, values["name"], user["domain_id"]) is not None:
        raise Duplicate(_duplicate_user(values["name"], user["domain_id"]))
    if values.get("enabled", user["enabled"]):
        values = {**values, "failed_auth_count": 0, "failed_auth_at": None}
    await conn.execute(update(users).where(users.c.id == user["id"]).values(**values, updated_at=utcnow()))
    if "password_hash" in values or values.get("enabled") is False:
        await revoke_tokens(conn, user_id=user["id"])
    return {**user, **values}


async def record_failed_auth(conn: Connection, user_id: str, when: datetime.datetime) -> None:
    """One more wrong password for the user (counted in the database, so every API process sees it)."""
    await conn.execute(update(users).where(users.c.id == user_id).values(
        failed_auth_count=func.coalesce(users.c.failed_auth_count, 0) + 1, failed_auth_at=when))


async def reset_failed_auth(conn: Connection, user_id: str) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(failed_auth_count=0, failed_auth_at=None))


async def delete_user(conn: Connection, user_id: str) -> None:
    """Delete a user; assignments, application credentials and tokens cascade."""
    await conn.execute(delete(users).where(users.c.id == user_id))


# --- roles and implications --------------------------------------------------------------------------------------
async def get_role(conn: Connection, role_id: str) -> dict[str, Any] | None:
    return _row((await conn.execute(select(roles).where(roles.c.id == role_id))).first())


async def find_role(conn: Connection, name: str) -> dict[str, Any] | None:
    return _row((await conn.execute(select(roles).where(roles.c.name == name))).first())


async def list_roles(conn: Connection, name: str | None = None) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in await conn.execute(_filtered(roles, {"name": name}).order_by(roles.c.name))]


async def create_role(conn: Connection, *, name: str, role_id: str | None = None, description: str | None = None
                      ) -> dict[str, Any]:
    if await find_role(conn, name) is not None:
        raise Duplicate(f"Duplicate entry found with name {name}.")
    values = {"id": role_id or new_id(), "name": name, "description": description, "created_at": utcnow(),
              "updated_at": None}
    return await _insert(conn, roles, values, f"Duplicate entry found with name {name}.")


async def delete_role(conn: Connection, role_id: str) -> None:
    """Delete a role; its assignments and implications cascade. Tokens keep their snapshot until they expire,
    except that every token carrying the role is revoked here."""
    held = [r.id_hash for r in await conn.execute(select(tokens.c.id_hash, tokens.c.roles)
                                                  .where(tokens.c.revoked.is_(False)))
            if any(role["id"] == role_id for role in r.roles)]
    if held:
        await conn.execute(update(tokens).where(tokens.c.id_hash.in_(held)).values(revoked=True))
    await conn.execute(delete(roles).where(roles.c.id == role_id))


async def imply_role(conn: Connection, prior_role_id: str, implied_role_id: str) -> None:
    """``prior`` implies ``implied`` (admin ⊇ manager ⊇ member ⊇ reader); present already is fine."""
    exists = (await conn.execute(select(implied_roles).where(
        implied_roles.c.prior_role_id == prior_role_id, implied_roles.c.implied_role_id == implied_role_id))).first()
    if exists is None:
        await conn.execute(insert(implied_roles).values(prior_role_id=prior_role_id, implied_role_id=implied_role_id))


async def unimply_role(conn: Connection, prior_role_id: str, implied_role_id: str) -> None:
    """``prior`` no longer implies ``implied`` directly; absent already is fine."""
    await conn.execute(delete(implied_roles).where(implied_roles.c.prior_role_id == prior_role_id,
                                                   implied_roles.c.implied_role_id == implied_role_id))


async def implications(conn: Connection) -> dict[str, list[str]]:
    """prior role id → the role ids it implies directly (a small table, read whole)."""
    out: dict[str, list[str]] = {}
    for r in await conn.execute(select(implied_roles)):
        out.setdefault(r.prior_role_id, []).append(r.implied_role_id)
    return out


def expand(role_ids: Iterable[str], implied: dict[str, list[str]]) -> list[str]:
    """``role_ids`` and every role they imply, transitively, in discovery order."""
    seen: list[str] = []
    pending = list(role_ids)
    while pending:
        role_id = pending.pop(0)
        if role_id not in seen:
            seen.append(role_id)
            pending.extend(implied.get(role_id, []))
    return seen


# --- role assignments --------------------------------------------------------------------------------------------
async def assign(conn: Connection, user_id: str, target_type: str, target_id: str, role_id: str) -> None:
    """Grant ``role_id`` to the user on a project or domain; granted already is fine (Keystone answers 204).
    The same grant by a concurrent writer on a server database raises IntegrityError (the transaction is lost)."""
    if not await has_assignment(conn, user_id, target_type, target_id, role_id):
        await conn.execute(insert(role_assignments).values(user_id=user_id, target_type=target_type,
                                                           target_id=target_id, role_id=role_id))


async def unassign(conn: Connection, user_id: str, target_type: str, target_id: str, role_id: str) -> bool:
    """Take the grant back and revoke the user's tokens on that target; False if there was no such grant."""
    result = await conn.execute(delete(role_assignments).where(
        role_assignments.c.user_id == user_id, role_assignments.c.target_type == target_type,
        role_assignments.c.target_id == target_id, role_assignments.c.role_id == role_id))
    if _rowcount(result) == 0:
        return False
    await revoke_tokens(conn, user_id=user_id, **{"project_id" if target_type == PROJECT else "domain_id": target_id})
    return True


async def has_assignment(conn: Connection, user_id: str, target_type: str, target_id: str, role_id: str) -> bool:
    return (await conn.execute(select(role_assignments.c.role_id).where(
        role_assignments.c.user_id == user_id, role_assignments.c.target_type == target_type,
        role_assignments.c.target_id == target_id, role_assignments.c.role_id == role_id))).first() is not None


async def list_assignments(conn: Connection, *, user_id: str | None = None, target_type: str | None = None,
                           target_id: str | None = None, role_id: str | None = None) -> list[dict[str, Any]]:
    """Direct grants as {user_id, target_type, target_id, role_id}, filtered by whichever arguments are given."""
    query = select(role_assignments)
    for column, value in (("user_id", user_id), ("target_type", target_type), ("target_id", target_id),
                          ("role_id", role_id)):
        if value is not None:
            query = query.where(role_assignments.c[column] == value)
    query = query.order_by(role_assignments.c.user_id, role_assignments.c.target_type,
                           role_assignments.c.target_id, role_assignments.c.role_id)
    return [dict(r._mapping) for r in await conn.execute(query)]


async def effective_roles(conn: Connection, user_id: str, target_type: str, target_id: str
                          ) -> list[dict[str, Any]]:
    """The user's roles on a project or domain as [{id, name}]: the grants and every role they imply."""
    direct = [r.role_id for r in await conn.execute(select(role_assignments.c.role_id).where(
        role_assignments.c.user_id == user_id, role_assignments.c.target_type == target_type,
        role_assignments.c.target_id == target_id))]
    if not direct:
        return []
    role_ids = expand(direct, await implications(conn))
    names = {r.id: r.name for r in await conn.execute(select(roles.c.id, roles.c.name)
                                                      .where(roles.c.id.in_(role_ids)))}
    return [{"id": role_id, "name": names[role_id]} for role_id in role_ids if role_id in names]


async def user_project_ids(conn: Connection, user_id: str) -> list[str]:
    """Projects where the user holds any role."""
    return [r.target_id for r in await conn.execute(
        select(role_assignments.c.target_id).distinct().where(role_assignments.c.user_id == user_id,
                                                              role_assignments.c.target_type == PROJECT))]


async def user_domain_ids(conn: Connection, user_id: str) -> list[str]:
    return [r.target_id for r in await conn.execute(
        select(role_assignments.c.target_id).distinct().where(role_assignments.c.user_id == user_id,
                                                              role_assignments.c.target_type == DOMAIN))]


# --- application credentials -------------------------------------------------------------------------------------
async def create_application_credential(conn: Connection, *, user_id: str, project_id: str, name: str,
                                        secret_hash: str, roles_: list[dict[str, Any]], description: str | None,
                                        expires_at: datetime.datetime | None, unrestricted: bool) -> dict[str, Any]:
    if await find_application_credential(conn, user_id, name) is not None:
        raise Duplicate(f"Duplicate entry found with name {name}.")
    values = {"id": new_id(), "name": name, "user_id": user_id, "project_id": project_id,
              "secret_hash": secret_hash, "description": description, "roles": roles_, "unrestricted": unrestricted,
              "expires_at": expires_at, "created_at": utcnow()}
    return await _insert(conn, application_credentials, values, f"Duplicate entry found with name {name}.")


async def get_application_credential(conn: Connection, credential_id: str) -> dict[str, Any] | None:
    return _row((await conn.execute(select(application_credentials)
                                    .where(application_credentials.c.id == credential_id))).first())


async def find_application_credential(conn: Connection, user_id: str, name: str) -> dict[str, Any] | None:
    return _row((await conn.execute(select(application_credentials).where(
        application_credentials.c.user_id == user_id, application_credentials.c.name == name))).first())


async def list_application_credentials(conn: Connection, user_id: str, name: str | None = None
                                       ) -> list[dict[str, Any]]:
    query = _filtered(application_credentials, {"user_id": user_id, "name": name})
    return [dict(r._mapping) for r in await conn.execute(query.order_by(application_credentials.c.name))]


async def delete_application_credential(conn: Connection, credential_id: str) -> None:
    """Delete it and revoke the tokens it issued."""
    await conn.execute(delete(application_credentials).where(application_credentials.c.id == credential_id))
    await revoke_tokens(conn, application_credential_id=credential_id)


# --- tokens ------------------------------------------------------------------------------------------------------
async def insert_token(conn: Connection, values: dict[str, Any]) -> None:
    """Store a token: ``id_hash`` (never the id), user, scope, roles snapshot, methods, audit ids, times."""
    await conn.execute(insert(tokens).values(revoked=False, **values))


async def get_token(conn: Connection, id_hash: str) -> dict[str, Any] | None:
    """The stored token, revoked or expired ones included (the caller judges)."""
    return _row((await conn.execute(select(tokens).where(tokens.c.id_hash == id_hash))).first())


async def revoke_token(conn: Connection, id_hash: str) -> bool:
    """False if there is no such unrevoked token."""
    result = await conn.execute(update(tokens).where(tokens.c.id_hash == id_hash, tokens.c.revoked.is_(False))
                                .values(revoked=True))
    return _rowcount(result) > 0


async def revoke_tokens(conn: Connection, *, user_id: str | None = None, project_id: str | None = None,
                        domain_id: str | None = None, application_credential_id: str | None = None) -> int:
    """Revoke every token matching all the given attributes (at least one); how many were revoked."""
    conditions = [tokens.c[column] == value for column, value in (
        ("user_id", user_id), ("project_id", project_id), ("domain_id", domain_id),
        ("application_credential_id", application_credential_id)) if value is not None]
    assert conditions, "revoke_tokens needs a filter"
    result = await conn.execute(update(tokens).where(and_(*conditions), tokens.c.revoked.is_(False))
                                .values(revoked=True))
    return _rowcount(result)


async def purge_tokens(conn: Connection, expired_before: datetime.datetime) -> int:
    """Forget tokens that expired before ``expired_before`` (revoked or not)."""
    return _rowcount(await conn.execute(delete(tokens).where(tokens.c.expires_at < expired_before)))
