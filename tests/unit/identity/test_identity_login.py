"""Logging in (the auth methods and scopes of POST /v3/auth/tokens), the bootstrap, and the authenticator the compute
and image APIs use, on a real SQLite database."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from stratus.api.errors import Fault
from stratus.db import identity as db
from stratus.identity import bootstrap, methods, schema, validation
from stratus.identity.auth import TokenAuth
from stratus.identity.common import IdentityServices
from stratus.identity.errors import IdentityError
from stratus.utils import utcnow
from tests.unit.identity.conftest import ADMIN_PASSWORD


def password_body(name: str, password: str, scope: Any = None, by_id: str | None = None) -> dict[str, Any]:
    user = {"id": by_id} if by_id else {"name": name, "domain": {"name": "Default"}}
    auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": {**user,
                                                                                       "password": password}}}}
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


ADMIN_PROJECT = {"project": {"name": "admin", "domain": {"id": "default"}}}


async def test_password_login_scoped_by_name_and_by_id(identity: IdentityServices) -> None:
    token_id, token = await methods.authenticate(identity, password_body("admin", ADMIN_PASSWORD, ADMIN_PROJECT))
    assert token.role_names == ["admin", "manager", "member", "reader"]
    assert token.is_admin and token.methods == ["password"]
    by_id = password_body("", ADMIN_PASSWORD, {"project": {"id": token.project_id}}, by_id=token.user_id)
    again = await methods.authenticate(identity, by_id)
    assert again[1].project_id == token.project_id and again[0] != token_id


async def test_unscoped_login_takes_the_default_project_unless_asked_not_to(identity: IdentityServices) -> None:
    _, token = await methods.authenticate(identity, password_body("admin", ADMIN_PASSWORD))
    assert token.project_id is not None  # the bootstrap admin's default project is admin
    _, bare = await methods.authenticate(identity, password_body("admin", ADMIN_PASSWORD, "unscoped"))
    assert bare.project_id is None and bare.domain_id is None and bare.roles == []
    on_domain = password_body("admin", ADMIN_PASSWORD, {"domain": {"name": "Default"}})
    with pytest.raises(IdentityError, match="has no access"):  # no role on the domain yet
        await methods.authenticate(identity, on_domain)
    async with identity.db.write() as conn:
        reader = await db.find_role(conn, "reader")
        assert reader is not None
        await db.assign(conn, bare.user_id, db.DOMAIN, "default", reader["id"])
    _, domain = await methods.authenticate(identity, on_domain)
    assert domain.domain_id == "default" and domain.project_id is None and domain.role_names == ["reader"]


@pytest.mark.parametrize("body", [
    password_body("admin", "wrong", ADMIN_PROJECT),
    password_body("nobody", ADMIN_PASSWORD, ADMIN_PROJECT),
    password_body("", ADMIN_PASSWORD, by_id="0" * 32),
    {"auth": {"identity": {"methods": ["totp"], "totp": {}}}},
])
async def test_bad_credentials_are_401(identity: IdentityServices, body: dict[str, Any]) -> None:
    with pytest.raises(IdentityError) as info:
        await methods.authenticate(identity, body)
    assert info.value.code == 401


async def test_malformed_bodies_are_400(identity: IdentityServices) -> None:
    for body in ({}, {"auth": {}}, {"auth": {"identity": {"methods": "password"}}},
                 {"auth": {"identity": {"methods": ["password"]}}},
                 password_body("admin", ADMIN_PASSWORD, {"project": {"name": "admin"}})):  # name needs a domain
        with pytest.raises(IdentityError) as info:
            validation.validate_body(schema.TOKEN_ISSUE, body)  # the route's check, then authenticate
            await methods.authenticate(identity, body)
        assert info.value.code == 400, body


async def test_scope_needs_a_role_and_an_enabled_user_and_project(identity: IdentityServices) -> None:
    async with identity.db.write() as conn:
        project = await db.create_project(conn, name="p1", domain_id="default")
        user = await db.create_user(conn, name="u1", domain_id="default",
                                    password_hash=await identity.hasher.hash("pw"))
    scope = {"project": {"id": project["id"]}}
    with pytest.raises(IdentityError, match="has no access") as info:
        await methods.authenticate(identity, password_body("u1", "pw", scope))
    assert info.value.code == 401
    async with identity.db.write() as conn:
        member = await db.find_role(conn, "member")
        assert member is not None
        await db.assign(conn, user["id"], db.PROJECT, project["id"], member["id"])
    _, token = await methods.authenticate(identity, password_body("u1", "pw", scope))
    assert token.role_names == ["member", "reader"]
    async with identity.db.write() as conn:
        await db.update_project(conn, project, {"enabled": False})
    with pytest.raises(IdentityError):
        await methods.authenticate(identity, password_body("u1", "pw", scope))
    async with identity.db.write() as conn:
        await db.update_user(conn, user, {"enabled": False})
    with pytest.raises(IdentityError):
        await methods.authenticate(identity, password_body("u1", "pw", "unscoped"))


async def _application_credential(identity: IdentityServices, **values: Any) -> dict[str, Any]:
    _, token = await methods.authenticate(identity, password_body("admin", ADMIN_PASSWORD, ADMIN_PROJECT))
    async with identity.db.write() as conn:
        return await db.create_application_credential(
            conn, user_id=token.user_id, project_id=str(token.project_id), name=values.pop("name", "ci"),
            secret_hash=await identity.hasher.hash("s3cret"), description=None,
            **{"roles_": [r for r in token.roles if r["name"] == "member"], "expires_at": None,
               "unrestricted": False, **values})


async def test_application_credential_login_by_id_and_by_name(identity: IdentityServices) -> None:
    cred = await _application_credential(identity)
    body = {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": {"id": cred["id"], "secret": "s3cret"}}}}
    _, token = await methods.authenticate(identity, body)
    # only what was delegated (member, and the reader it implies), not the user's admin role
    assert token.role_names == ["member", "reader"] and not token.is_admin
    assert token.project_id == cred["project_id"] and token.application_credential_id == cred["id"]
    by_name = {"auth": {"identity": {"methods": ["application_credential"], "application_credential": {
        "name": "ci", "secret": "s3cret", "user": {"name": "admin", "domain": {"id": "default"}}}}}}
    assert (await methods.authenticate(identity, by_name))[1].application_credential_id == cred["id"]
    body["auth"]["identity"]["application_credential"]["secret"] = "wrong"
    with pytest.raises(IdentityError) as info:
        await methods.authenticate(identity, body)
    assert info.value.code == 401


async def test_application_credential_expiry_caps_and_ends_its_tokens(identity: IdentityServices) -> None:
    soon = (utcnow() + datetime.timedelta(minutes=5)).replace(microsecond=0)
    cred = await _application_credential(identity, name="soon", expires_at=soon)
    body = {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": {"id": cred["id"], "secret": "s3cret"}}}}
    _, token = await methods.authenticate(identity, body)
    assert token.expires_at == soon
    past = await _application_credential(identity, name="past", expires_at=utcnow() - datetime.timedelta(seconds=1))
    body["auth"]["identity"]["application_credential"]["id"] = past["id"]
    with pytest.raises(IdentityError, match="expired"):
        await methods.authenticate(identity, body)


async def test_token_method_rescopes_keeping_the_expiry(identity: IdentityServices) -> None:
    unscoped_id, unscoped = await methods.authenticate(identity, password_body("admin", ADMIN_PASSWORD, "unscoped"))
    _, scoped = await methods.authenticate(identity, {"auth": {"identity": {"methods": ["token"],
                                                                          "token": {"id": unscoped_id}},
                                                             "scope": ADMIN_PROJECT}})
    assert scoped.project_id is not None and scoped.expires_at == unscoped.expires_at
    assert scoped.audit_ids[1] == unscoped.audit_ids[0]


async def test_bootstrap_is_idempotent_and_writes_clouds_yaml(services: IdentityServices, tmp_path: Path) -> None:
    clouds = tmp_path / "c.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"other": {"auth": {"auth_url": "http://x"}}}}))
    first = await bootstrap.bootstrap(services)  # no password given: one is generated and stored
    assert first.generated and first.password
    assert (tmp_path / "admin-password").read_text().strip() == first.password
    assert oct(os.stat(tmp_path / "admin-password").st_mode & 0o777) == "0o600"
    second = await bootstrap.bootstrap(services)
    assert not second.generated and second.password == first.password
    data = yaml.safe_load(clouds.read_text())
    assert data["clouds"]["other"] == {"auth": {"auth_url": "http://x"}}  # kept
    entry = data["clouds"]["stratus"]
    assert entry["auth"] == {"auth_url": "http://127.0.0.1:15000/v3", "username": "admin", "project_name": "admin",
                             "user_domain_name": "Default", "project_domain_name": "Default",
                             "password": first.password}
    assert entry["region_name"] == "RegionOne" and entry["identity_api_version"] == 3
    async with services.db.read() as conn:
        assert [r["name"] for r in await db.list_roles(conn)] == ["admin", "manager", "member", "reader", "service"]
        assert len(await db.list_users(conn)) == 1 and len(await db.list_projects(conn)) == 1
    await methods.authenticate(services, password_body("admin", first.password, ADMIN_PROJECT))
    await bootstrap.bootstrap(services, "given")  # an explicit password is set, as keystone-manage does
    await methods.authenticate(services, password_body("admin", "given", ADMIN_PROJECT))
    assert yaml.safe_load(clouds.read_text())["clouds"]["stratus"]["auth"]["password"] == "given"


def _echo_app(auth: TokenAuth) -> Any:
    async def whoami(request: Request) -> JSONResponse:
        try:
            ctx = auth.authenticate(request.headers)
        except Fault as fault:
            return JSONResponse({"fault": fault.code}, fault.code, headers=fault.headers)
        return JSONResponse({"user": ctx.user_id, "project": ctx.project_id, "admin": ctx.is_admin,
                             "roles": ctx.roles})

    return auth.wrap(Starlette(routes=[Route("/", whoami)]))


async def test_token_auth_gives_the_context_through_its_middleware(identity: IdentityServices) -> None:
    auth = TokenAuth(identity.tokens, "http://127.0.0.1:15000")
    admin_id, admin = await methods.authenticate(identity, password_body("admin", ADMIN_PASSWORD, ADMIN_PROJECT))
    unscoped_id, _ = await methods.authenticate(identity, password_body("admin", ADMIN_PASSWORD, "unscoped"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_echo_app(auth)), base_url="http://t") as client:
        ok = await client.get("/", headers={"X-Auth-Token": admin_id})
        assert ok.json() == {"user": admin.user_id, "project": admin.project_id, "admin": True,
                             "roles": ["admin", "manager", "member", "reader"]}
        for headers in ({}, {"X-Auth-Token": "nope"}):
            denied = await client.get("/", headers=headers)
            assert denied.status_code == 401
            assert denied.headers["www-authenticate"] == 'Keystone uri="http://127.0.0.1:15000"'
        assert (await client.get("/", headers={"X-Auth-Token": unscoped_id})).status_code == 403
        await identity.tokens.revoke(admin_id)
        assert (await client.get("/", headers={"X-Auth-Token": admin_id})).status_code == 401
    with pytest.raises(RuntimeError):  # outside the middleware there is no answer to give
        auth.authenticate({"x-auth-token": admin_id})
