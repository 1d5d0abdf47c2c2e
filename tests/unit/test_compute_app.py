"""The compute API's one ASGI callable: Nova's 404 and 405 bodies, HEAD, the project id in the path, and the
microversion and request id headers, each once, on every response of the table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from stratus import conf as conf_mod
from stratus.api.app import create_app
from stratus.api.services import ApiServices
from stratus.db.engine import Database
from stratus.identity.auth import NoAuth2
from stratus.rpc.local import LocalTransport

ADMIN = {"X-Auth-Token": "admin:admin"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    conf = conf_mod.load(overrides={"api": {"auth_strategy": "noauth2"}})
    db = Database(f"sqlite:///{tmp_path / 'empty.sqlite'}", pool_size=1)  # no request here reads it
    services = ApiServices(conf=conf, db=db, transport=LocalTransport(), auth=NoAuth2(), images=None)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://compute") as http:
        yield http
    await db.dispose()


async def test_an_unknown_path_is_novas_404(client: httpx.AsyncClient) -> None:
    for path in ("/v2.1/no-such-path", "/v2.1/servers/", "/v2.1/extensions/os-keypairs/", "/v3"):
        resp = await client.get(path, headers=ADMIN)
        assert resp.status_code == 404, path
        assert resp.json() == {"itemNotFound": {"code": 404, "message": "The resource could not be found."}}


async def test_a_method_no_route_takes_is_a_405(client: httpx.AsyncClient) -> None:
    resp = await client.request("OPTIONS", "/v2.1/extensions", headers=ADMIN)
    assert resp.status_code == 405 and resp.json() == {"badMethod": {"code": 405, "message": "Method Not Allowed"}}
    resp = await client.post("/", headers=ADMIN)
    assert resp.status_code == 405 and resp.json()["badMethod"]["message"] == "Method Not Allowed"
    resp = await client.post("/v2.1/extensions", headers=ADMIN)  # a method of the table the path lacks: Nova's
    assert resp.status_code == 405
    assert resp.json()["badMethod"]["message"] == "The method specified is not allowed for this resource."


async def test_head_of_a_version_document(client: httpx.AsyncClient) -> None:
    resp = await client.head("/v2.1/")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"


async def test_every_response_of_the_table_has_each_header_once(client: httpx.AsyncClient) -> None:
    request_id = "req-12345678-1234-1234-1234-123456789abc"
    for headers, version in (({}, "2.1"), ({"OpenStack-API-Version": "compute 2.93"}, "2.93")):
        resp = await client.get("/v2.1/extensions/os-keypairs",
                                headers={**ADMIN, **headers, "X-OpenStack-Request-ID": request_id})
        assert resp.status_code == 200 and resp.json()["extension"]["alias"] == "os-keypairs"
        names = [name.lower() for name, _ in resp.headers.raw]
        for name, value in ((b"openstack-api-version", f"compute {version}"),
                            (b"x-openstack-nova-api-version", version),
                            (b"vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
                            (b"x-openstack-request-id", request_id), (b"x-compute-request-id", request_id)):
            assert names.count(name) == 1 and resp.headers[name.decode()] == value
    resp = await client.post("/v2.1/extensions", headers={"OpenStack-API-Version": "compute 2.1000"})
    assert resp.status_code == 406 and resp.headers["openstack-api-version"] == "compute 2.1"
    assert resp.headers["x-compute-request-id"].startswith("req-")


async def test_the_project_in_the_path_is_the_callers(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v2.1/admin/extensions/os-keypairs", headers=ADMIN)
    assert resp.status_code == 200
    resp = await client.get("/v2.1/other/extensions/os-keypairs", headers=ADMIN)
    assert resp.status_code == 400
    assert "URL's project_id 'other' doesn't match Context's project_id 'admin'" in resp.json()["badRequest"]["message"]
