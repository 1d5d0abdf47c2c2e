"""``KeystoneAuth``: keystonemiddleware's auth_token in front of an ASGI application, configured from our INI.

Token validation is keystonemiddleware's own test fixture (``AuthTokenFixture`` answers for Keystone); everything
else is the real middleware. tests/integration/test_keystone.py runs the same against a real Keystone.
"""

from __future__ import annotations

import datetime
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from keystonemiddleware.fixture import AuthTokenFixture
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from stratus import conf as conf_mod
from stratus.api.errors import Fault
from stratus.identity.keystone import KeystoneAuth
from stratus.local_cloud import free_port

CHALLENGE = 'Keystone uri="http://keystone.example:5000"'


def _conf(tmp_path: Path, auth_url: str = "http://keystone.example:5000") -> Any:
    ini = tmp_path / "stratus.conf"
    ini.write_text(textwrap.dedent(f"""\
        [api]
        auth_strategy = keystone
        [keystone_authtoken]
        www_authenticate_uri = http://keystone.example:5000
        auth_url = {auth_url}
        auth_type = password
        username = nova
        password = secret
        project_name = service
        user_domain_name = Default
        project_domain_name = Default
        http_request_max_retries = 0
        """))
    return conf_mod.load([str(ini)])


def _whoami_app(auth: KeystoneAuth) -> Any:
    async def whoami(request: Request) -> JSONResponse:
        try:
            ctx = auth.authenticate(request.headers)
        except Fault as fault:
            return JSONResponse({"fault": fault.code, "message": fault.message}, fault.code, headers=fault.headers)
        return JSONResponse({"user": ctx.user_id, "project": ctx.project_id, "admin": ctx.is_admin,
                             "roles": ctx.roles, "token": ctx.auth_token})

    return auth.wrap(Starlette(routes=[Route("/v2.1/servers", whoami)]))


@pytest.fixture
def tokens() -> Iterator[AuthTokenFixture]:
    fixture = AuthTokenFixture()
    fixture.setUp()
    try:
        yield fixture
    finally:
        fixture.cleanUp()


async def test_a_valid_token_gives_the_context(tmp_path: Path, tokens: AuthTokenFixture) -> None:
    member = "member-token"
    tokens.add_token_data(token_id=member, user_id="u1", project_id="p1", role_list=["member", "reader"])
    tokens.add_token_data(token_id="admin-token", user_id="a1", project_id="p0", role_list=["admin", "member"])
    app = _whoami_app(KeystoneAuth(_conf(tmp_path)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        ok = await client.get("/v2.1/servers", headers={"X-Auth-Token": member})
        assert ok.json() == {"user": "u1", "project": "p1", "admin": False, "roles": ["member", "reader"],
                             "token": member}
        admin = await client.get("/v2.1/servers", headers={"X-Auth-Token": "admin-token"})
        assert admin.json()["admin"] is True
        # the identity headers a client sends are auth_token's to set, never the client's
        spoofed = await client.get("/v2.1/servers", headers={"X-Auth-Token": member, "X-Roles": "admin",
                                                             "X-User-Id": "a1", "X-Identity-Status": "Confirmed"})
        assert spoofed.json()["user"] == "u1" and spoofed.json()["admin"] is False


async def test_missing_unknown_and_expired_tokens_are_401_with_the_challenge(
        tmp_path: Path, tokens: AuthTokenFixture) -> None:
    expired = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    tokens.add_token_data(token_id="expired", user_id="u1", project_id="p1", role_list=["member"], expires=expired)
    app = _whoami_app(KeystoneAuth(_conf(tmp_path)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for headers in ({}, {"X-Auth-Token": "unknown"}, {"X-Auth-Token": "expired"},
                        {"X-Identity-Status": "Confirmed", "X-User-Id": "a1", "X-Project-Id": "p0"}):
            denied = await client.get("/v2.1/servers", headers=headers)
            assert denied.status_code == 401, headers
            assert denied.json()["message"] == "The request you have made requires authentication."
            assert denied.headers["www-authenticate"] == CHALLENGE


async def test_a_token_without_a_project_is_403(tmp_path: Path, tokens: AuthTokenFixture) -> None:
    tokens.add_token_data(token_id="domain-scoped", user_id="u1", role_list=["admin"])
    auth = KeystoneAuth(_conf(tmp_path))
    with pytest.raises(Fault) as raised:
        await auth.identify({"x-auth-token": "domain-scoped"})
    assert raised.value.code == 403


async def test_an_unreachable_keystone_is_503(tmp_path: Path) -> None:
    auth = KeystoneAuth(_conf(tmp_path, auth_url=f"http://127.0.0.1:{free_port()}/v3"))
    with pytest.raises(Fault) as raised:
        await auth.identify({"x-auth-token": "any"})
    assert raised.value.code == 503
