"""Every identity route driven with generated bad input (bodies mutated from valid ones, wrong types, huge strings,
NUL bytes, non-UTF-8, odd ids and query strings): never a 500, always Keystone's error body without a traceback,
and nothing stored changes when a request is refused."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from stratus.db import identity as db
from stratus.db import models
from stratus.identity import bootstrap
from stratus.identity.api import ROUTES, Spec, create_app
from stratus.identity.common import IdentityServices
from tests.unit.identity.conftest import ADMIN_PASSWORD
from tests.unit.json_fuzz import bodies, texts

TABLES = [models.domains, models.projects, models.users, models.roles, models.implied_roles,
          models.role_assignments, models.application_credentials, models.tokens]
BUDGET_SECONDS = 25.0  # a safety net for slow machines (the module takes ~15 s): later examples send nothing
_STARTED: list[float] = []
_PARAM = re.compile(r"{(\w+)}")

TEMPLATES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v3/auth/tokens"): {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}},
    ("POST", "/v3/domains"): {"domain": {"name": "fuzzed", "description": "d", "enabled": True}},
    ("PATCH", "/v3/domains/{domain_id}"): {"domain": {"description": "d"}},
    ("POST", "/v3/projects"): {"project": {"name": "fuzzed", "domain_id": "default", "tags": ["a"]}},
    ("PATCH", "/v3/projects/{project_id}"): {"project": {"description": "d", "tags": ["b"]}},
    ("POST", "/v3/users"): {"user": {"name": "fuzzed", "password": "pw", "email": "e@example.org"}},
    ("PATCH", "/v3/users/{user_id}"): {"user": {"email": "f@example.org"}},
    ("POST", "/v3/users/{user_id}/password"): {"user": {"original_password": "pw", "password": "pw2"}},
    ("POST", "/v3/users/{user_id}/application_credentials"): {"application_credential": {
        "name": "fuzzed", "roles": [{"name": "member"}], "expires_at": None}},
    ("POST", "/v3/roles"): {"role": {"name": "fuzzed", "description": "d"}},
}


async def _snapshot(identity: IdentityServices) -> list[list[tuple[Any, ...]]]:
    async with identity.db.read() as conn:
        return [sorted(tuple(map(repr, row)) for row in await conn.execute(select(table))) for table in TABLES]


class Fuzz:
    """State kept across examples: the admin token (logged in again if a request revoked it) and known ids."""

    def __init__(self, identity: IdentityServices, client: httpx.AsyncClient) -> None:
        self.identity = identity
        self.client = client
        self.token = ""
        self.ids: list[str] = ["default"]
        if not _STARTED:
            _STARTED.append(time.monotonic())
        self.deadline = _STARTED[0] + BUDGET_SECONDS
        self.seen: dict[int, int] = {}

    async def admin(self) -> str:
        if not self.token or await self.identity.tokens.validate(self.token, cached=False) is None:
            await bootstrap.bootstrap(self.identity, ADMIN_PASSWORD)
            resp = await self.client.post("/v3/auth/tokens", json=TEMPLATES[("POST", "/v3/auth/tokens")])
            assert resp.status_code == 201, resp.text
            self.token = resp.headers["X-Subject-Token"]
            async with self.identity.db.read() as conn:
                self.ids = ["default", *(r["id"] for r in await db.list_projects(conn)),
                            *(u["id"] for u in await db.list_users(conn)),
                            *(r["id"] for r in await db.list_roles(conn))]
        return self.token


@pytest.fixture
async def fuzz(identity: IdentityServices) -> Fuzz:
    transport = httpx.ASGITransport(app=create_app(identity))
    client = httpx.AsyncClient(transport=transport, base_url="http://keystone.test:5000")
    return Fuzz(identity, client)


BODY_ROUTES = [(path, method, spec) for path, method, spec in ROUTES if spec.body is not None]
FUZZ_SETTINGS = settings(deadline=None, database=None, derandomize=True,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                HealthCheck.data_too_large])


def fuzz_settings(examples: int) -> settings:
    return settings(FUZZ_SETTINGS, max_examples=examples)


async def _request(fuzz: Fuzz, data: st.DataObject, route: tuple[str, str, Spec], with_body: bool) -> None:
    path, method, spec = route
    token = await fuzz.admin()
    url = path
    for name in _PARAM.findall(path):
        known_id = st.integers(0, 15).map(lambda i: quote(fuzz.ids[i % len(fuzz.ids)]))  # what exists now
        value = data.draw(st.one_of(known_id, known_id,
                                    texts.map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")),
                                    st.sampled_from(["%ff", "%c0%80", "%00", "%ed%a0%80"])), label=name)
        url = url.replace("{" + name + "}", value or "x")
    known = list(spec.query)
    query = data.draw(st.dictionaries(st.sampled_from(known) | texts if known else texts, texts, max_size=3),
                      label="query")
    headers = {"X-Auth-Token": data.draw(st.sampled_from([token] * 7 + ["", "garbage", "x" * 300]), label="token")}
    if path == "/v3/auth/tokens" and method != "POST":
        headers["X-Subject-Token"] = data.draw(st.sampled_from([token, "", "nope", "\t"]), label="subject")
    content: bytes | None = None
    if with_body:
        body = data.draw(bodies(TEMPLATES.get((method, path))), label="body")
        content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
        headers["Content-Type"] = data.draw(st.sampled_from(["application/json"] * 5 + ["text/plain", ""]),
                                            label="content-type")
    if time.monotonic() > fuzz.deadline:
        return
    before = await _snapshot(fuzz.identity)
    resp = await fuzz.client.request(method, url, params=query, content=content,
                                     headers={k: v for k, v in headers.items() if v})
    fuzz.seen[resp.status_code] = fuzz.seen.get(resp.status_code, 0) + 1
    assert resp.status_code < 500, (method, url, query, content, resp.text)
    assert "Traceback" not in resp.text
    if resp.status_code >= 400 and method != "HEAD":
        error = resp.json()["error"]
        assert error["code"] == resp.status_code and error["title"] and error["message"], resp.text
        assert await _snapshot(fuzz.identity) == before, (method, url, content, resp.text)


@pytest.mark.parametrize("route", BODY_ROUTES, ids=[f"{m} {p}" for p, m, _ in BODY_ROUTES])
@fuzz_settings(50)
@given(data=st.data())
async def test_bodies_never_fail_with_500(fuzz: Fuzz, route: tuple[str, str, Spec], data: st.DataObject) -> None:
    await _request(fuzz, data, route, with_body=True)


@fuzz_settings(250)
@given(data=st.data())
async def test_paths_and_queries_never_fail_with_500(fuzz: Fuzz, data: st.DataObject) -> None:
    route = data.draw(st.sampled_from(ROUTES), label="route")
    await _request(fuzz, data, route, with_body=data.draw(st.booleans(), label="stray body"))
