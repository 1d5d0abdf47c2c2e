"""Logins under pressure: bcrypt shared fairly between accounts (a flood against one account does not hold up
another's login), and Keystone's [security_compliance] lockout."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from stratus.db import identity as db
from stratus.db.models import users
from stratus.identity.api import create_app
from stratus.identity.common import IdentityServices
from stratus.identity.passwords import FairGate, Hasher, hash_sync
from stratus.utils import utcnow
from tests.unit.identity.conftest import ADMIN_PASSWORD


async def test_the_gate_serves_waiting_keys_in_turn_newest_first() -> None:
    gate = FairGate(1)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str, wait: bool = False) -> None:
        async with gate.turn(name.rstrip("0123456789")):  # the key: the name without its number
            order.append(name)
            if wait:
                await release.wait()

    first = asyncio.create_task(hold("flood0", wait=True))
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(hold(f"flood{i}")) for i in range(1, 6)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(hold("admin")), asyncio.create_task(hold("other"))]
    await asyncio.sleep(0)
    assert gate.waiting == 7
    release.set()
    await asyncio.gather(first, *tasks)
    # one turn per waiting key in the order the keys came, the newest first within a key
    assert order == ["flood0", "flood5", "admin", "other", "flood4", "flood3", "flood2", "flood1"]
    assert gate.waiting == 0


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    gate = FairGate(1)
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.turn("a"):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.waiting == 0
    release.set()
    await holder
    async with gate.turn("b"):  # the slot came back
        pass


async def test_a_check_whose_request_went_away_keeps_its_slot_until_its_thread_is_done() -> None:
    hasher = Hasher(12, workers=1)
    hashed = hash_sync("right", 12)  # about a quarter of a second to check
    gone = asyncio.create_task(hasher.check("wrong", hashed, key="a"))
    while hasher.gate.free:  # noqa: ASYNC110 - the check is on its way to the thread
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.01)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert hasher.gate.free == 0  # bcrypt still runs in the thread: its slot is not handed out
    assert await hasher.check("right", hashed, key="b")  # waits for that thread, then gets the slot
    assert hasher.gate.free == 1
    hasher.close()


async def test_a_flood_of_wrong_passwords_does_not_hold_up_another_account() -> None:
    hasher = Hasher(8, workers=1)
    hashed = hash_sync("right", 8)
    done: list[str] = []

    async def login(key: str, secret: str) -> bool:
        ok = await hasher.check(secret, hashed, key=key)
        done.append(key)
        return ok

    flood = [asyncio.create_task(login("victim", "wrong")) for _ in range(40)]
    await asyncio.sleep(0)
    admin = asyncio.create_task(login("admin", "right"))
    unknown = asyncio.create_task(hasher.check("x", None))  # no such user: as slow as a real check, and False
    assert await admin and not await unknown and not any(await asyncio.gather(*flood))
    assert done.index("admin") <= 2  # behind the check in flight and at most one more of the flood
    hasher.close()


def _login(name: str, password: str) -> dict[str, Any]:
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"id": "default"}, "password": password}}}, "scope": "unscoped"}}


@pytest.fixture
async def client(identity: IdentityServices) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url="http://keystone.test:5000/v3") as c:
        yield c


async def _admin(client: httpx.AsyncClient) -> dict[str, str]:
    body = _login("admin", ADMIN_PASSWORD)
    body["auth"]["scope"] = {"project": {"name": "admin", "domain": {"id": "default"}}}
    resp = await client.post("/auth/tokens", json=body)
    assert resp.status_code == 201
    return {"X-Auth-Token": resp.headers["X-Subject-Token"]}


async def _user(client: httpx.AsyncClient, admin: dict[str, str], name: str, **extra: Any) -> str:
    resp = await client.post("/users", headers=admin, json={"user": {"name": name, "password": "right", **extra}})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["user"]["id"])


async def test_no_lockout_by_default(client: httpx.AsyncClient, identity: IdentityServices) -> None:
    await _user(client, await _admin(client), "carol")
    for _ in range(8):
        assert (await client.post("/auth/tokens", json=_login("carol", "wrong"))).status_code == 401
    assert (await client.post("/auth/tokens", json=_login("carol", "right"))).status_code == 201


async def test_lockout_after_failures_until_unlocked_or_expired(client: httpx.AsyncClient,
                                                                identity: IdentityServices) -> None:
    identity.conf.set_override("lockout_failure_attempts", 3, group="security_compliance")
    identity.conf.set_override("lockout_duration", 600, group="security_compliance")
    admin = await _admin(client)
    user_id = await _user(client, admin, "dave")
    for _ in range(3):
        wrong = await client.post("/auth/tokens", json=_login("dave", "wrong"))
        assert wrong.json()["error"]["message"] == "The request you have made requires authentication."
    locked = await client.post("/auth/tokens", json=_login("dave", "right"))
    assert locked.status_code == 401
    assert locked.json() == {"error": {"code": 401, "title": "Unauthorized",
                                       "message": f"The account is locked for user: {user_id}."}}
    assert locked.headers["WWW-Authenticate"] == 'Keystone uri="http://keystone.test:5000"'
    changed = await client.post(f"/users/{user_id}/password",  # the self-service change is locked too
                                json={"user": {"original_password": "right", "password": "new"}})
    assert changed.status_code == 401 and "locked" in changed.json()["error"]["message"]
    # the time runs out: the count starts again
    async with identity.db.write() as conn:
        await conn.execute(update(users).where(users.c.id == user_id).values(
            failed_auth_at=utcnow() - datetime.timedelta(seconds=601)))
    assert (await client.post("/auth/tokens", json=_login("dave", "right"))).status_code == 201
    async with identity.db.read() as conn:
        assert (await db.get_user(conn, user_id))["failed_auth_count"] == 0
    for _ in range(3):
        await client.post("/auth/tokens", json=_login("dave", "wrong"))
    assert (await client.post("/auth/tokens", json=_login("dave", "right"))).status_code == 401
    # an administrator unlocks it by updating the user (enabled stays true)
    assert (await client.patch(f"/users/{user_id}", headers=admin, json={"user": {"enabled": True}})
            ).status_code == 200
    assert (await client.post("/auth/tokens", json=_login("dave", "right"))).status_code == 201


async def test_a_correct_password_clears_the_count_and_exempt_users_never_lock(
        client: httpx.AsyncClient, identity: IdentityServices) -> None:
    identity.conf.set_override("lockout_failure_attempts", 2, group="security_compliance")
    admin = await _admin(client)
    await _user(client, admin, "erin")
    for _ in range(3):  # wrong, right: never two wrong in a row
        assert (await client.post("/auth/tokens", json=_login("erin", "wrong"))).status_code == 401
        assert (await client.post("/auth/tokens", json=_login("erin", "right"))).status_code == 201
    service_id = await _user(client, admin, "svc", options={"ignore_lockout_failure_attempts": True})
    for _ in range(4):
        await client.post("/auth/tokens", json=_login("svc", "wrong"))
    assert (await client.post("/auth/tokens", json=_login("svc", "right"))).status_code == 201
    shown = (await client.get(f"/users/{service_id}", headers=admin)).json()["user"]
    assert shown["options"] == {"ignore_lockout_failure_attempts": True}
    cleared = await client.patch(f"/users/{service_id}", headers=admin,
                                 json={"user": {"options": {"ignore_lockout_failure_attempts": None}}})
    assert cleared.json()["user"]["options"] == {}
    for _ in range(2):
        await client.post("/auth/tokens", json=_login("svc", "wrong"))
    assert (await client.post("/auth/tokens", json=_login("svc", "right"))).status_code == 401


async def test_a_burst_of_guesses_stops_at_the_limit(client: httpx.AsyncClient, identity: IdentityServices) -> None:
    """Concurrent guesses are checked against the lock when their turn comes, not when they arrive."""
    identity.conf.set_override("lockout_failure_attempts", 3, group="security_compliance")
    user_id = await _user(client, await _admin(client), "frank")
    answers = await asyncio.gather(*(client.post("/auth/tokens", json=_login("frank", "wrong")) for _ in range(20)))
    locked = [a for a in answers if "locked" in a.json()["error"]["message"]]
    assert len(locked) >= 20 - 3 - identity.hasher.gate.slots
    async with identity.db.read() as conn:
        assert (await db.get_user(conn, user_id))["failed_auth_count"] <= 3 + identity.hasher.gate.slots


async def test_without_a_duration_the_lock_lasts_until_an_administrator_lifts_it(
        client: httpx.AsyncClient, identity: IdentityServices) -> None:
    identity.conf.set_override("lockout_failure_attempts", 1, group="security_compliance")
    identity.conf.set_override("lockout_duration", None, group="security_compliance")
    admin = await _admin(client)
    user_id = await _user(client, admin, "gina")
    await client.post("/auth/tokens", json=_login("gina", "wrong"))
    async with identity.db.write() as conn:
        await conn.execute(update(users).where(users.c.id == user_id).values(
            failed_auth_at=utcnow() - datetime.timedelta(days=365)))
    assert (await client.post("/auth/tokens", json=_login("gina", "right"))).status_code == 401
    await client.patch(f"/users/{user_id}", headers=admin, json={"user": {"enabled": False}})
    await client.patch(f"/users/{user_id}", headers=admin, json={"user": {"enabled": True}})
    assert (await client.post("/auth/tokens", json=_login("gina", "right"))).status_code == 201
