"""Every identity request body is checked against its route's schema: a malformed one is Keystone's 400 (or 413
when it is too large), never a 500, and it changes nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from stratus.identity.api import create_app
from stratus.identity.common import IdentityServices
from tests.unit.identity.conftest import ADMIN_PASSWORD

ADMIN_SCOPE = {"project": {"name": "admin", "domain": {"id": "default"}}}
BAD_SCOPES: list[Any] = [
    {"project": "x"}, {"project": 5}, {"project": ["admin"]}, {"domain": 5}, {"domain": "default"},
    {"project": {"id": ["a"]}}, {"project": {"name": ["admin"], "domain": {"id": "default"}}},
    {"project": {"name": "admin", "domain": "default"}}, {"project": {"name": "admin", "domain": {"id": 5}}},
    {"project": {"name": "admin", "domain": {"name": ["Default"]}}}, {"domain": {"id": ["default"]}},
    {"domain": {"name": {"x": 1}}}, {"project": {}}, {"domain": {}}, {"project": {"name": "admin", "domain": {}}},
]


def _password(user: Any = None, scope: Any = None) -> dict[str, Any]:
    auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": user if user is not None else {
        "name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}}}
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


@pytest.fixture
async def client(identity: IdentityServices) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url="http://keystone.test:5000/v3") as c:
        yield c


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> dict[str, str]:
    resp = await client.post("/auth/tokens", json=_password(scope=ADMIN_SCOPE))
    assert resp.status_code == 201
    return {"X-Auth-Token": resp.headers["X-Subject-Token"]}


def assert_bad_request(resp: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == status and error["title"] == ("Bad Request" if status == 400 else error["title"])
    assert "Traceback" not in resp.text
    return error  # type: ignore[no-any-return]


async def _bodies_for_every_method(client: httpx.AsyncClient, admin: dict[str, str]) -> list[dict[str, Any]]:
    """A valid identity for each auth method (password, token, application_credential)."""
    token_id = admin["X-Auth-Token"]
    user_id = (await client.get("/auth/tokens", headers={**admin, "X-Subject-Token": token_id})
               ).json()["token"]["user"]["id"]
    cred = (await client.post(f"/users/{user_id}/application_credentials", headers=admin,
                              json={"application_credential": {"name": "ci", "secret": "s3cret"}})).json()
    return [
        _password()["auth"]["identity"],
        {"methods": ["token"], "token": {"id": token_id}},
        {"methods": ["application_credential"],
         "application_credential": {"id": cred["application_credential"]["id"], "secret": "s3cret"}},
    ]


async def test_scopes_that_are_not_objects_are_400_for_every_auth_method(client: httpx.AsyncClient,
                                                                         admin: dict[str, str]) -> None:
    for identity in await _bodies_for_every_method(client, admin):
        for scope in BAD_SCOPES:
            resp = await client.post("/auth/tokens", json={"auth": {"identity": identity, "scope": scope}})
            error = assert_bad_request(resp)
            assert error["message"].startswith(("Invalid input for field 'scope", "Invalid input for field scope")), (
                scope, error)


@pytest.mark.parametrize("body", [
    [], "auth", 5, None, {"auth": []}, {"auth": {"identity": []}},
    {"auth": {"identity": {"methods": "password", "password": {}}}},
    {"auth": {"identity": {"methods": {"password": 1}}}},
    {"auth": {"identity": {"methods": [["password"]]}}},
    {"auth": {"identity": {"methods": []}}},
    _password({"id": ["x"], "password": "p"}), _password({"name": ["admin"], "domain": {"id": "default"},
                                                         "password": "p"}),
    _password({"name": "admin", "domain": {"id": ["default"]}, "password": "p"}),
    _password({"name": "admin", "domain": "default", "password": "p"}),
    _password({"name": "admin", "domain": {}, "password": "p"}),
    _password({"password": "p"}), _password({"name": "admin", "domain": {"id": "default"}, "password": 5}),
    _password({"name": "admin", "domain": {"id": "default"}, "password": "p" * 5000}),
    _password({"name": "a" * 1000, "domain": {"id": "default"}, "password": "p"}),
    {"auth": {"identity": {"methods": ["token"], "token": {"id": ["x"]}}}},
    {"auth": {"identity": {"methods": ["token"], "token": "x"}}},
    {"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": 5,
                                                                                             "secret": "s"}}}},
    {"auth": {"identity": {"methods": ["application_credential"], "application_credential": {
        "name": "ci", "secret": "s", "user": "admin"}}}},
    {"auth": {"identity": {"methods": ["application_credential"], "application_credential": {
        "name": "ci", "secret": "s", "user": {"name": "admin", "domain": ["default"]}}}}},
])
async def test_malformed_token_requests_are_400(client: httpx.AsyncClient, body: Any) -> None:
    assert_bad_request(await client.post("/auth/tokens", json=body))


async def test_keystone_messages(client: httpx.AsyncClient) -> None:
    resp = await client.post("/auth/tokens", json=_password(scope={"project": "x"}))
    assert assert_bad_request(resp)["message"] == "Invalid input for field 'scope/project': 'x' is not of type 'object'"
    resp = await client.post("/auth/tokens", json=_password({"password": "p"}))
    assert assert_bad_request(resp)["message"] == ("Invalid input for field identity/password/user: id or name must "
                                                   "be present.")
    resp = await client.post("/auth/tokens", json=_password(scope={"project": {"name": "admin", "domain": {}}}))
    assert assert_bad_request(resp)["message"] == ("Invalid input for field scope/project/domain: id or name must "
                                                   "be present.")
    secret = "p" * 5000  # a refused password is not echoed back
    resp = await client.post("/auth/tokens", json=_password({"name": "admin", "domain": {"id": "default"},
                                                             "password": secret}))
    assert secret not in resp.text and "is too long" in resp.text
    for content in (b"{not json", b"[1, 2]", b"\xff\xfe", b'"\\ud800"'):
        resp = await client.post("/auth/tokens", content=content, headers={"Content-Type": "application/json"})
        assert assert_bad_request(resp)["message"] == (
            "Expecting to find valid JSON in request body. The server could not comply with the request since it is "
            "either malformed or otherwise incorrect. The client is assumed to be in error.")
    resp = await client.post("/auth/tokens", content=b"auth=x", headers={"Content-Type": "text/plain"})
    assert assert_bad_request(resp)["message"].startswith("Expecting to find application/json in Content-Type header")


async def test_bodies_are_size_limited(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    big = {"project": {"name": "big", "description": "d" * 200_000}}
    error = assert_bad_request(await client.post("/projects", headers=admin, json=big), 413)
    assert error["message"] == "Request is too large. Larger than max_request_body_size (114688)."

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"project": {"name": "big", "description": "'
        for _ in range(200):
            yield b"d" * 1024
        yield b'"}}'

    assert_bad_request(await client.post("/projects", headers={**admin, "Content-Type": "application/json"},
                                         content=chunks()), 413)
    assert (await client.get("/projects", headers=admin, params={"name": "big"})).json()["projects"] == []


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PATCH", "/domains/default", {"domain": {}}),
    ("PATCH", "/domains/default", {"domain": {"name": 5}}),
    ("PATCH", "/domains/default", {"domain": {"enabled": "yes"}}),
    ("PATCH", "/domains/default", {"domain": {"options": {"immutable": True}}}),
    ("POST", "/domains", {"domain": {"name": "d" * 65}}),
    ("POST", "/domains", {"domain": {"name": "ok", "description": 5}}),
    ("POST", "/projects", {"project": {"name": "p", "domain_id": ["default"]}}),
    ("POST", "/projects", {"project": {"name": "p", "tags": "t"}}),
    ("POST", "/projects", {"project": {"name": "p", "tags": ["a/b"]}}),
    ("POST", "/projects", {"project": {"name": "p", "tags": ["a", "a"]}}),
    ("POST", "/projects", {"project": {"name": "p", "enabled": 1}}),
    ("POST", "/projects", {"project": "p"}),
    ("POST", "/projects", {"project": {"name": "p"}, "other": 1}),
    ("POST", "/users", {"user": {"name": "u", "default_project_id": ["x"]}}),
    ("POST", "/users", {"user": {"name": "u", "password": ["x"]}}),
    ("POST", "/users", {"user": {"name": "u", "options": {"lock_password": True}}}),
    ("POST", "/users", {"user": {"name": "u", "options": {"ignore_lockout_failure_attempts": "yes"}}}),
    ("POST", "/users", {"user": {"name": "u\x00"}}),
    ("POST", "/roles", {"role": {"name": {"x": 1}}}),
    ("POST", "/roles", {"role": {"name": "r", "options": []}}),
])
async def test_bad_bodies_are_400_and_change_nothing(client: httpx.AsyncClient, admin: dict[str, str], method: str,
                                                     path: str, body: Any) -> None:
    before = (await client.get("/domains/default", headers=admin)).json()
    assert_bad_request(await client.request(method, path, headers=admin, json=body))
    assert (await client.get("/domains/default", headers=admin)).json() == before
    assert [p["name"] for p in (await client.get("/projects", headers=admin)).json()["projects"]] == ["admin"]
    assert [u["name"] for u in (await client.get("/users", headers=admin)).json()["users"]] == ["admin"]


async def test_unknown_attributes_are_kept_as_keystone_keeps_them(client: httpx.AsyncClient,
                                                                  admin: dict[str, str]) -> None:
    domain = (await client.patch("/domains/default", headers=admin, json={"domain": {"contact": "ops"}})).json()
    assert domain["domain"]["contact"] == "ops"
    assert (await client.get("/domains/default", headers=admin)).json()["domain"]["contact"] == "ops"
    created = await client.post("/projects", headers=admin, json={"project": {"name": "p", "cost_center": "42"}})
    assert created.status_code == 201 and created.json()["project"]["cost_center"] == "42"
    project_id = created.json()["project"]["id"]
    patched = await client.patch(f"/projects/{project_id}", headers=admin, json={"project": {"cost_center": "7"}})
    assert patched.json()["project"]["cost_center"] == "7"


async def test_scope_kinds_as_keystone_counts_them(client: httpx.AsyncClient) -> None:
    legacy = await client.post("/auth/tokens", json=_password(scope={"unscoped": {}}))  # old keystoneauth's form
    assert legacy.status_code == 201 and "project" not in legacy.json()["token"]
    for scope in ({"project": {"id": "x"}, "domain": {"id": "default"}}, {}, "everything", {"other": {}}):
        resp = await client.post("/auth/tokens", json=_password(scope=scope))
        assert assert_bad_request(resp)["message"].startswith(
            "Expecting to find system, project, domain, OS-TRUST:trust or unscoped in scope."), scope
    trust = await client.post("/auth/tokens", json=_password(scope={"OS-TRUST:trust": {"id": "t"}}))
    assert trust.status_code == 401


async def test_deeply_nested_bodies_are_no_500(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    deep = b"[" * 1000 + b"]" * 1000  # deeper than Python's recursion limit, within orjson's
    for content in (b'{"project": {"name": "deep", "extra": ' + deep + b"}}",
                    b'{"auth": {"identity": {"methods": ' + deep + b"}}}"):
        path = "/projects" if content.startswith(b'{"project"') else "/auth/tokens"
        resp = await client.post(path, headers={**admin, "Content-Type": "application/json"}, content=content)
        assert resp.status_code in (201, 400), resp.text


async def test_a_domain_may_be_created_with_its_own_id(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    created = await client.post("/domains", headers=admin, json={"domain": {"name": "ops",
                                                                           "explicit_domain_id": "ops-1"}})
    assert created.status_code == 201 and created.json()["domain"]["id"] == "ops-1"
    again = await client.post("/domains", headers=admin, json={"domain": {"name": "ops2", "explicit_domain_id":
                                                                          "ops-1"}})
    assert again.status_code == 409
    assert_bad_request(await client.post("/domains", headers=admin, json={"domain": {
        "name": "ops3", "explicit_domain_id": "no spaces"}}))


async def test_the_size_limit_is_the_operators(client: httpx.AsyncClient, admin: dict[str, str],
                                               identity: IdentityServices) -> None:
    """``[oslo_middleware] max_request_body_size`` is the identity API's limit too, not only the middleware's."""
    identity.conf.set_override("max_request_body_size", 1024, group="oslo_middleware")
    try:
        big = {"project": {"name": "big", "description": "d" * 2000}}
        error = assert_bad_request(await client.post("/projects", headers=admin, json=big), 413)
        assert error["message"] == "Request is too large. Larger than max_request_body_size (1024)."
    finally:
        identity.conf.clear_override("max_request_body_size", group="oslo_middleware")
