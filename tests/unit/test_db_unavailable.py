"""A database server that cannot be reached: the compute API's 503 with Nova's fault body (not a 500), and what
counts as a lost server (refused, gone, shutting down) as against a statement's own error."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from sqlalchemy import exc as sa_exc

from stratus import conf as conf_mod
from stratus.api.app import create_app
from stratus.api.services import ApiServices
from stratus.db.engine import DB_UNAVAILABLE, Database, is_disconnect
from stratus.identity.auth import NoAuth2
from stratus.rpc.local import LocalTransport


def _closed_port() -> int:
    """A loopback port nothing listens on (bound and released: connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _SqlState(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(("error", "lost"), [
    (ConnectionRefusedError(111, "Connect call failed"), True),
    (sa_exc.OperationalError("SELECT 1", {}, _SqlState("57P01")), True),  # admin shutdown: the server stopping
    (sa_exc.DBAPIError("SELECT 1", {}, _SqlState("57P03")), True),  # cannot connect now: starting up
    (sa_exc.DBAPIError("SELECT 1", {}, _SqlState("08006")), True),  # connection failure
    (sa_exc.InterfaceError("SELECT 1", {}, Exception("connection was closed in the middle of operation")), True),
    (sa_exc.TimeoutError("QueuePool limit of size 10 overflow 20 reached"), True),
    (sa_exc.IntegrityError("INSERT", {}, _SqlState("23505")), False),  # a statement's error: the caller's bug
    (sa_exc.ProgrammingError("SELEC 1", {}, _SqlState("42601")), False),
    (ValueError("not a database error"), False),
])
def test_is_disconnect(error: BaseException, lost: bool) -> None:
    assert is_disconnect(error) is lost


def test_is_disconnect_follows_the_cause() -> None:
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError as inner:
            raise RuntimeError("while listing servers") from inner
    except RuntimeError as outer:
        assert is_disconnect(outer)


async def test_api_answers_503_when_the_database_is_unreachable() -> None:
    conf = conf_mod.load(overrides={"api": {"auth_strategy": "noauth2"}})
    db = Database(f"postgresql+asyncpg://stratus@127.0.0.1:{_closed_port()}/stratus", pool_size=1)
    services = ApiServices(conf=conf, db=db, transport=LocalTransport(), auth=NoAuth2(), images=None)  # type: ignore[arg-type]
    app = create_app(services)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            for method, path in (("GET", "/v2.1/servers"), ("GET", "/v2.1/flavors/detail"),
                                 ("DELETE", "/v2.1/servers/6f0b1a0e-6c4e-4c3e-9a57-5b1d0c1d8c11")):
                response = await client.request(method, path, headers={"X-Auth-Token": "demo:demo"})
                assert response.status_code == 503, (method, path, response.text)
                assert response.json() == {"serviceUnavailable": {"code": 503, "message": DB_UNAVAILABLE}}
                assert response.headers["x-openstack-request-id"].startswith("req-")
    finally:
        await db.dispose()


async def test_identity_and_image_apis_answer_503_in_their_own_bodies(tmp_path: Path) -> None:
    """The embedded Keystone and Glance give the same 503 while the database server is away, each in its own
    service's error body."""
    from stratus.identity import catalog
    from stratus.identity.api import create_app as create_identity_app
    from stratus.identity.common import IdentityServices
    from stratus.identity.passwords import Hasher
    from stratus.identity.tokens import TokenStore
    from stratus.image.api import create_app as create_image_app
    from stratus.image.embedded import ImageStore

    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    db = Database(f"postgresql+asyncpg://stratus@127.0.0.1:{_closed_port()}/stratus", pool_size=1)
    identity = IdentityServices(conf=conf, db=db, tokens=TokenStore(db, 3600, 5.0), hasher=Hasher(4),
                                catalog=catalog.build(conf))
    login = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": "secret"}}}}}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_identity_app(identity)),
                                     base_url="http://k") as client:
            response = await client.post("/v3/auth/tokens", json=login)
            assert response.status_code == 503, response.text
            assert response.json() == {"error": {"code": 503, "message": DB_UNAVAILABLE,
                                                 "title": "Service Unavailable"}}
        images = create_image_app(ImageStore(conf, db), NoAuth2())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=images), base_url="http://g") as client:
            response = await client.get("/v2/images", headers={"X-Auth-Token": "demo:demo",
                                                                "Accept": "application/json"})
            assert response.status_code == 503, response.text
            assert response.json()["message"] == DB_UNAVAILABLE
            assert response.json()["code"] == "503 Service Unavailable"
    finally:
        await db.dispose()
