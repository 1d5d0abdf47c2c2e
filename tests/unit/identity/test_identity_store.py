"""The identity store on a real SQLite database: passwords, role implication, tokens (expiry, revocation, cache)."""

from __future__ import annotations

import datetime
import time
import types
from typing import Any

import pytest

from stratus.db import identity as db
from stratus.identity import bootstrap
from stratus.identity import tokens as tokens_mod
from stratus.identity.common import IdentityServices
from stratus.identity.passwords import Hasher
from stratus.identity.tokens import TokenStore
from stratus.utils import utcnow


async def _user_with_role(identity: IdentityServices, name: str, role: str = "member",
                          password: str = "pw") -> tuple[dict[str, Any], dict[str, Any]]:
    async with identity.db.write() as conn:
        project = await db.create_project(conn, name=f"{name}-project", domain_id=db.DEFAULT_DOMAIN_ID)
        user = await db.create_user(conn, name=name, domain_id=db.DEFAULT_DOMAIN_ID,
                                    password_hash=await identity.hasher.hash(password))
        granted = await db.find_role(conn, role)
        assert granted is not None
        await db.assign(conn, user["id"], db.PROJECT, project["id"], granted["id"])
    return user, project


async def _issue(identity: IdentityServices, user: dict[str, Any], project: dict[str, Any],
                 **kwargs: Any) -> str:
    async with identity.db.write() as conn:
        roles = await db.effective_roles(conn, user["id"], db.PROJECT, project["id"])
        token_id, _ = await identity.tokens.issue(conn, user_id=user["id"], roles=roles, methods=["password"],
                                                  project_id=project["id"], **kwargs)
    return token_id


async def test_passwords_are_salted_slow_hashes_and_long_ones_count_whole() -> None:
    hasher = Hasher(4)
    first, second = await hasher.hash("s3cret"), await hasher.hash("s3cret")
    assert first != second and first.startswith("$2b$04$")
    assert await hasher.check("s3cret", first) and await hasher.check("s3cret", second)
    assert not await hasher.check("s3cret!", first)
    assert not await hasher.check("s3cret", None)
    assert not await hasher.check("s3cret", "not a hash")
    long = "x" * 100
    assert not await hasher.check(long + "a", await hasher.hash(long + "b"))  # beyond bcrypt's 72 bytes


async def test_role_implication_admin_manager_member_reader(identity: IdentityServices) -> None:
    admin, _ = await _user_with_role(identity, "boss", "admin")
    member, project = await _user_with_role(identity, "worker", "member")
    manager, managed = await _user_with_role(identity, "lead", "manager")
    service, serviced = await _user_with_role(identity, "nova-svc", "service")
    async with identity.db.read() as conn:
        boss_project = (await db.user_project_ids(conn, admin["id"]))[0]
        assert [r["name"] for r in await db.effective_roles(conn, admin["id"], db.PROJECT, boss_project)] == [
            "admin", "manager", "member", "reader"]
        assert [r["name"] for r in await db.effective_roles(conn, manager["id"], db.PROJECT, managed["id"])] == [
            "manager", "member", "reader"]
        # the service role implies nothing, and nothing implies it
        assert [r["name"] for r in await db.effective_roles(conn, service["id"], db.PROJECT, serviced["id"])] == [
            "service"]
        assert [r["name"] for r in await db.effective_roles(conn, member["id"], db.PROJECT, project["id"])] == [
            "member", "reader"]
        assert await db.effective_roles(conn, member["id"], db.PROJECT, boss_project) == []
        # only the grants are stored; implication happens when reading
        assert [a["role_id"] for a in await db.list_assignments(conn, user_id=member["id"])] == [
            (await db.find_role(conn, "member"))["id"]]  # type: ignore[index]


async def test_bootstrap_moves_an_old_cloud_to_the_manager_chain(services: IdentityServices) -> None:
    """A cloud bootstrapped before the manager role (admin implying member directly) gets Keystone's chain at its
    next start: manager between admin and member, the direct implication gone, service created."""
    async with services.db.write() as conn:
        await db.create_domain(conn, domain_id=db.DEFAULT_DOMAIN_ID, name="Default")
        admin = await db.create_role(conn, name="admin")
        member = await db.create_role(conn, name="member")
        reader = await db.create_role(conn, name="reader")
        await db.imply_role(conn, admin["id"], member["id"])
        await db.imply_role(conn, member["id"], reader["id"])
    await bootstrap.bootstrap(services, "pw-old-cloud")
    async with services.db.read() as conn:
        manager = await db.find_role(conn, "manager")
        assert manager is not None and await db.find_role(conn, "service") is not None
        assert await db.implications(conn) == {admin["id"]: [manager["id"]], manager["id"]: [member["id"]],
                                               member["id"]: [reader["id"]]}
    await bootstrap.bootstrap(services, "pw-old-cloud")  # idempotent
    async with services.db.read() as conn:
        assert len(await db.list_roles(conn)) == 5


async def test_token_is_stored_by_hash_and_validates(identity: IdentityServices) -> None:
    user, project = await _user_with_role(identity, "alice")
    token_id = await _issue(identity, user, project)
    async with identity.db.read() as conn:
        assert await db.get_token(conn, token_id) is None  # the id itself is not a key
        row = await db.get_token(conn, db.token_hash(token_id))
    assert row is not None and token_id not in str(row)
    token = await identity.tokens.validate(token_id)
    assert token is not None
    assert token.user_id == user["id"] and token.project_id == project["id"]
    assert token.role_names == ["member", "reader"] and not token.is_admin
    assert token.expires_at - token.issued_at <= datetime.timedelta(seconds=3600)
    assert await identity.tokens.validate(token_id + "x") is None


async def test_expired_tokens_are_invalid_but_shown_with_allow_expired(identity: IdentityServices) -> None:
    user, project = await _user_with_role(identity, "bob")
    token_id = await _issue(identity, user, project, expires_at=utcnow() - datetime.timedelta(seconds=1))
    assert await identity.tokens.validate(token_id) is None
    assert await identity.tokens.validate(token_id, allow_expired=True) is not None
    short = TokenStore(identity.db, expiration=1, cache_time=5.0)
    async with identity.db.write() as conn:
        _, token = await short.issue(conn, user_id=user["id"], roles=[], methods=["password"])
    assert token.expires_at <= token.issued_at + datetime.timedelta(seconds=1)


async def test_revocation_through_the_store_is_immediate(identity: IdentityServices) -> None:
    user, project = await _user_with_role(identity, "carol")
    token_id = await _issue(identity, user, project)
    assert await identity.tokens.validate(token_id) is not None  # now cached
    assert await identity.tokens.revoke(token_id)
    assert await identity.tokens.validate(token_id) is None
    assert not await identity.tokens.revoke(token_id)


async def test_revocation_elsewhere_is_seen_within_the_cache_time(identity: IdentityServices) -> None:
    user, project = await _user_with_role(identity, "dave")
    token_id = await _issue(identity, user, project)
    assert await identity.tokens.validate(token_id) is not None
    async with identity.db.write() as conn:  # what another process would do
        await db.revoke_token(conn, db.token_hash(token_id))
    assert await identity.tokens.validate(token_id) is not None  # still cached (5 s)
    assert await identity.tokens.validate(token_id, cached=False) is None
    uncached = TokenStore(identity.db, 3600, cache_time=0.0)
    assert await uncached.validate(token_id) is None
    identity.tokens.forget_cached()
    assert await identity.tokens.validate(token_id) is None


@pytest.mark.parametrize("change", ["unassign", "password", "disable", "delete_project", "delete_user"])
async def test_changes_that_revoke_the_users_tokens(identity: IdentityServices, change: str) -> None:
    user, project = await _user_with_role(identity, f"erin-{change}")
    token_id = await _issue(identity, user, project)
    async with identity.db.write() as conn:
        if change == "unassign":
            member = await db.find_role(conn, "member")
            assert member is not None
            assert await db.unassign(conn, user["id"], db.PROJECT, project["id"], member["id"])
        elif change == "password":
            await db.update_user(conn, user, {"password_hash": await identity.hasher.hash("new")})
        elif change == "disable":
            await db.update_user(conn, user, {"enabled": False})
        elif change == "delete_project":
            await db.delete_project(conn, project["id"])
        else:
            await db.delete_user(conn, user["id"])
    assert await identity.tokens.validate(token_id, cached=False) is None


async def test_duplicate_names_are_refused_per_domain(identity: IdentityServices) -> None:
    async with identity.db.write() as conn:
        await db.create_domain(conn, name="other")
        other = await db.find_domain(conn, "other")
        assert other is not None
        await db.create_user(conn, name="same", domain_id=db.DEFAULT_DOMAIN_ID, password_hash=None)
        await db.create_user(conn, name="same", domain_id=other["id"], password_hash=None)  # another domain: fine
        with pytest.raises(db.Duplicate):
            await db.create_user(conn, name="same", domain_id=db.DEFAULT_DOMAIN_ID, password_hash=None)
        with pytest.raises(db.Duplicate):
            await db.create_project(conn, name="admin", domain_id=db.DEFAULT_DOMAIN_ID)
        with pytest.raises(db.Duplicate):
            await db.create_role(conn, name="member")


async def test_purge_forgets_long_expired_tokens(identity: IdentityServices) -> None:
    user, project = await _user_with_role(identity, "frank")
    identity.tokens._last_purge = time.monotonic()  # as if it had just purged
    old = await _issue(identity, user, project, expires_at=utcnow() - datetime.timedelta(days=3))
    fresh = await _issue(identity, user, project)
    async with identity.db.write() as conn:
        assert await db.get_token(conn, db.token_hash(old)) is not None
        assert await db.purge_tokens(conn, utcnow() - datetime.timedelta(days=2)) == 1
        assert await db.get_token(conn, db.token_hash(old)) is None
        assert await db.get_token(conn, db.token_hash(fresh)) is not None


async def test_a_fresh_store_purges_at_its_first_issue_on_a_host_booted_seconds_ago(
        identity: IdentityServices, monkeypatch: pytest.MonkeyPatch) -> None:
    """time.monotonic() counts from boot: on a host up for 5 s it is 5.0, and a store that took 0.0 for "never
    purged" would think it purged 5 s ago and wait an hour."""
    user, project = await _user_with_role(identity, "grace")
    old = await _issue(identity, user, project, expires_at=utcnow() - datetime.timedelta(days=3))
    clock = [5.0]
    # the tokens module's clock only: the event loop keeps the real one
    monkeypatch.setattr(tokens_mod, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    issuer = TokenStore(identity.db, 3600, 5.0)  # a fresh store purges at its first issue, then hourly
    async with identity.db.write() as conn:
        await issuer.issue(conn, user_id=user["id"], roles=[], methods=["password"])
        assert await db.get_token(conn, db.token_hash(old)) is None
    older = await _issue(identity, user, project, expires_at=utcnow() - datetime.timedelta(days=3))
    clock[0] = 5.0 + 3000  # within the hour: no purge
    async with identity.db.write() as conn:
        await issuer.issue(conn, user_id=user["id"], roles=[], methods=["password"])
        assert await db.get_token(conn, db.token_hash(older)) is not None
    clock[0] = 5.0 + 3601  # an hour on: purged again
    async with identity.db.write() as conn:
        await issuer.issue(conn, user_id=user["id"], roles=[], methods=["password"])
        assert await db.get_token(conn, db.token_hash(older)) is None
