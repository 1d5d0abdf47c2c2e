"""Nova's client asking the Networking API its own process serves (``in_process.call``): the application gets the
request an HTTP client sends (method, path, query, headers, JSON body), the answer is read as over HTTP (Neutron's
errors, 204, a failing application's 500), and a caller that is cancelled leaves the request running to its end."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from stratus import conf as conf_mod
from stratus.network import in_process
from stratus.network.neutron_client import NeutronClient, NeutronClientError

PORT = 19696


class _App:
    """Records each request and answers by its path."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.finished: list[str] = []
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.seen.append({"method": scope["method"], "path": scope["path"], "query": scope["query_string"],
                          "headers": dict(scope["headers"]), "body": message["body"]})
        self.arrived.set()
        path = scope["path"]
        if path == "/v2.0/boom":
            raise RuntimeError("boom")
        if path == "/v2.0/slow":
            await self.release.wait()
            self.finished.append(path)
        if scope["method"] == "DELETE":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        status, body = (404, {"NeutronError": {"type": "PortNotFound", "message": "Port p1 could not be found.",
                                               "detail": ""}}) if path.endswith("/p1") else (200, {"ports": []})
        if scope["method"] == "POST":
            status, body = 201, {"port": json.loads(message["body"])["port"]}
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


@pytest.fixture
def app() -> Any:
    served = _App()
    in_process.register("127.0.0.1", PORT, served)
    yield served
    in_process.unregister(PORT)


def _client() -> NeutronClient:
    conf = conf_mod.load(overrides={"neutron": {"endpoint_override": f"http://127.0.0.1:{PORT}"},
                                    "api": {"auth_strategy": "noauth2"}})
    return NeutronClient(conf)


async def test_the_application_gets_what_an_http_client_sends(app: _App) -> None:
    client = _client()
    assert await client.list({"auth_token": "u:p", "request_id": "req-1"}, "ports", device_id=["a", "b"],
                             fields="fixed_ips", fixed_ips="ip_address=10.0.0.3") == []
    seen = app.seen[-1]
    assert (seen["method"], seen["path"]) == ("GET", "/v2.0/ports")
    assert seen["query"] == b"device_id=a&device_id=b&fields=fixed_ips&fixed_ips=ip_address%3D10.0.0.3"
    assert seen["headers"][b"x-auth-token"] == b"u:p" and seen["headers"][b"x-openstack-request-id"] == b"req-1"
    assert seen["headers"][b"host"] == f"127.0.0.1:{PORT}".encode()
    made = await client.create(None, "ports", {"network_id": "n", "name": "é"})
    assert made == {"network_id": "n", "name": "é"}
    seen = app.seen[-1]
    assert seen["headers"][b"x-auth-token"] == b"admin:admin"  # noauth2's admin: Nova's own identity
    assert seen["headers"][b"content-type"] == b"application/json"
    assert int(seen["headers"][b"content-length"]) == len(seen["body"])
    assert json.loads(seen["body"]) == {"port": {"network_id": "n", "name": "é"}}
    assert await client.delete(None, "ports", "a/b") is None
    assert app.seen[-1]["path"] == "/v2.0/ports/a/b" and app.seen[-1]["method"] == "DELETE"
    await client.aclose()


async def test_errors_are_read_as_over_http(app: _App) -> None:
    client = _client()
    with pytest.raises(NeutronClientError) as err:
        await client.show(None, "ports", "p1")
    assert (err.value.status, err.value.type, err.value.message) == (404, "PortNotFound",
                                                                     "Port p1 could not be found.")
    with pytest.raises(NeutronClientError) as err:
        await client.request(None, "GET", "/boom")
    assert err.value.status == 500
    await client.aclose()


async def test_a_cancelled_caller_leaves_the_request_running(app: _App) -> None:
    client = _client()
    caller = asyncio.create_task(client.request(None, "GET", "/slow"))
    await asyncio.wait_for(app.arrived.wait(), 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert app.finished == []
    app.release.set()
    await client.aclose()  # waits for what is still running
    assert app.finished == ["/v2.0/slow"]
