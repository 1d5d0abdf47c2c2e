"""The identity application in process: discovery, Keystone's error forms for unknown paths and methods, the
discovery-only form used with noauth2, and the self-service password change."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from stratus.identity.api import create_app
from stratus.identity.common import IdentityServices
from tests.unit.identity.conftest import ADMIN_PASSWORD
from tests.unit.identity.test_identity_login import ADMIN_PROJECT, password_body


@pytest.fixture
async def client(identity: IdentityServices) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url="http://keystone.test:5000") as c:
        yield c


async def test_discovery_and_keystone_errors(client: httpx.AsyncClient) -> None:
    root = await client.get("/")
    assert root.status_code == 300
    assert root.json()["versions"]["values"][0]["links"][0]["href"] == "http://keystone.test:5000/v3/"
    assert (await client.get("/v3")).json()["version"]["id"] == "v3.14"
    resp = await client.post("/v3/auth/tokens", json=password_body("admin", ADMIN_PASSWORD, ADMIN_PROJECT))
    assert resp.status_code == 201
    admin = {"X-Auth-Token": resp.headers["X-Subject-Token"]}
    missing = await client.get("/v3/no-such-thing", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["title"] == "Not Found"
    read_only = await client.post("/v3/services", headers=admin, json={"service": {"type": "x"}})
    assert read_only.status_code == 405 and read_only.json()["error"]["code"] == 405
    malformed = await client.post("/v3/auth/tokens", content=b"{not json")
    assert malformed.status_code == 400 and malformed.json()["error"]["title"] == "Bad Request"
    unauthenticated = await client.get("/v3/users")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["WWW-Authenticate"] == 'Keystone uri="http://keystone.test:5000"'
    assert (await client.head("/v3/users", headers=admin)).status_code == 200


async def test_users_change_their_own_password(client: httpx.AsyncClient) -> None:
    token = (await client.post("/v3/auth/tokens", json=password_body("admin", ADMIN_PASSWORD, ADMIN_PROJECT)))
    user_id = token.json()["token"]["user"]["id"]
    wrong = await client.post(f"/v3/users/{user_id}/password",
                              json={"user": {"original_password": "nope", "password": "new-one"}})
    assert wrong.status_code == 401
    changed = await client.post(f"/v3/users/{user_id}/password",
                                json={"user": {"original_password": ADMIN_PASSWORD, "password": "new-one"}})
    assert changed.status_code == 204
    # the old tokens are revoked, the old password refused, the new one accepted
    assert (await client.get("/v3/users", headers={"X-Auth-Token": token.headers["X-Subject-Token"]})
            ).status_code == 401
    assert (await client.post("/v3/auth/tokens", json=password_body("admin", ADMIN_PASSWORD))).status_code == 401
    assert (await client.post("/v3/auth/tokens", json=password_body("admin", "new-one"))).status_code == 201


async def test_discovery_only_without_the_embedded_strategy() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://k") as c:
        assert (await c.get("/v3")).status_code == 200
        off = await c.post("/v3/auth/tokens", json={})
        assert off.status_code == 501 and "auth_strategy" in off.json()["error"]["message"]
