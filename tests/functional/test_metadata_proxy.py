"""The per-network metadata proxy (stratus/metadata/proxy.py) in front of a real all-in-one's metadata API.

The proxy serves on a loopback socket the test binds and hands over, as the data plane hands over one bound to
169.254.169.254:80 in a network's namespace. Requesters are told apart by their source address (each client binds
its own 127.0.0.x), which the resolver maps to ports as the network service would.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus import conf as stratus_conf
from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from stratus.metadata import proxy
from tests.functional.helpers import boot, upload_image, wait_for_status

SECRET = "proxy-shared-secret"
NETWORK = "6a2b9a0e-51a4-4d55-9d1c-0f4b1a6f4e01"
USER_DATA = b"#cloud-config\nruncmd: [true]\n"
WEBOB_404 = "404 Not Found\n\nThe resource could not be found.\n\n   "


@pytest.fixture(scope="module")
def px_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    cloud = start_cloud(tmp_path_factory.mktemp("px-cloud"), f"""
        [neutron]
        service_metadata_proxy = True
        metadata_proxy_shared_secret = {SECRET}
        """)
    try:
        yield cloud
    finally:
        stop_cloud(cloud)


@pytest.fixture(scope="module")
def servers(px_cloud: Cloud) -> dict[str, dict[str, Any]]:
    """Two servers of project p1 and one of p2."""
    out = {}
    with px_cloud.image_client() as images:
        image = upload_image(images)
    for name, token in (("a", "alice:p1"), ("b", "alice:p1"), ("c", "carol:p2")):
        with px_cloud.client(token=token, version="2.64") as api:
            resp = boot(api, image["id"], name=f"px-{name}", networks="none",
                        user_data=base64.b64encode(USER_DATA + name.encode()).decode())
            assert resp.status_code == 202, resp.text
            out[name] = wait_for_status(api, resp.json()["server"]["id"], {"ACTIVE"})
    return out


class Ports:
    """What the network service knows: (network, fixed IP) -> the port's device and tenant; the calls made."""

    def __init__(self, table: dict[tuple[str, str], proxy.Requester]) -> None:
        self.table = table
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, network_id: str, address: str) -> proxy.Requester | None:
        self.calls.append((network_id, address))
        return self.table.get((network_id, address))


def _bound() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def started(px_cloud: Cloud, servers: dict[str, dict[str, Any]]) -> AsyncIterator[Any]:
    """A factory of running proxies (closed after the test): (secret, upstream, unix socket) -> (url, Ports)."""
    running: list[proxy.MetadataProxy] = []
    ports = Ports({
        (NETWORK, "127.0.0.2"): proxy.Requester(servers["a"]["id"], servers["a"]["tenant_id"]),
        (NETWORK, "127.0.0.3"): proxy.Requester(servers["b"]["id"], servers["b"]["tenant_id"]),
        # a port whose tenant is not the instance's: the API must not serve the instance
        (NETWORK, "127.0.0.4"): proxy.Requester(servers["c"]["id"], servers["a"]["tenant_id"]),
    })

    async def start(secret: str = SECRET, upstream: str | None = None, unix_socket: str | None = None
                    ) -> tuple[str, Ports]:
        sock = _bound()
        port = sock.getsockname()[1]
        running.append(await proxy.serve(sock, NETWORK, ports, secret, upstream or px_cloud.metadata_url,
                                         unix_socket))
        return f"http://127.0.0.1:{port}", ports

    yield start
    for p in running:
        await p.close()


async def _get(url: str, source: str, path: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(transport=transport, timeout=10, trust_env=False) as client:
        return await client.request(method, url + path, **kwargs)


async def test_each_guest_gets_its_own_documents(started: Any, servers: dict[str, dict[str, Any]]) -> None:
    url, ports = await started()
    for source, name in (("127.0.0.2", "a"), ("127.0.0.3", "b")):
        resp = await _get(url, source, "/openstack/latest/meta_data.json")
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/json"
        assert resp.json()["uuid"] == servers[name]["id"] and resp.json()["name"] == f"px-{name}"
        user_data = await _get(url, source, "/openstack/2012-08-10/user_data")
        assert user_data.content == USER_DATA + name.encode()
        assert user_data.headers["content-type"] == "text/plain; charset=UTF-8"
        # the EC2 tree sees the guest's address (X-Forwarded-For), not the proxy's
        assert (await _get(url, source, "/latest/meta-data/local-ipv4")).text == source
        assert (await _get(url, source, "/2009-04-04/meta-data/hostname")).text == f"px-{name}.novalocal"
    assert (NETWORK, "127.0.0.2") in ports.calls and (NETWORK, "127.0.0.3") in ports.calls


async def test_an_http_1_0_reader_gets_a_length_framed_body(started: Any, servers: dict[str, dict[str, Any]]
                                                           ) -> None:
    """What the simplest guests send (busybox nc, an HTTP/1.0 request): the answer is the bytes of the document,
    framed by Content-Length, never chunked."""
    url, _ports = await started()
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), local_addr=("127.0.0.2", 0))
    writer.write(b"GET /latest/meta-data/local-ipv4 HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    assert b"transfer-encoding" not in head.lower() and b"content-length: 9" in head.lower(), raw
    assert body == b"127.0.0.2"


async def test_headers_the_guest_sends_are_not_trusted(started: Any, servers: dict[str, dict[str, Any]]) -> None:
    url, _ports = await started()
    other = servers["b"]
    resp = await _get(url, "127.0.0.2", "/openstack/latest/meta_data.json", headers={
        "X-Instance-ID": other["id"], "X-Tenant-ID": other["tenant_id"], "X-Forwarded-For": "127.0.0.3",
        "X-Instance-ID-Signature": proxy.sign_instance_id(SECRET, other["id"])})
    assert resp.status_code == 200 and resp.json()["uuid"] == servers["a"]["id"]
    ip = await _get(url, "127.0.0.2", "/latest/meta-data/local-ipv4", headers={"X-Forwarded-For": "127.0.0.3"})
    assert ip.text == "127.0.0.2"


async def test_unknown_requester_is_404(started: Any) -> None:
    url, ports = await started()
    resp = await _get(url, "127.0.0.9", "/openstack/latest/meta_data.json")
    assert resp.status_code == 404
    assert resp.text == WEBOB_404 and resp.headers["content-type"] == "text/plain; charset=UTF-8"
    assert ports.calls[-1] == (NETWORK, "127.0.0.9")
    # a port of the network whose tenant is not the instance's: the API finds no such instance of that tenant
    mismatch = await _get(url, "127.0.0.4", "/openstack/latest/meta_data.json")
    assert mismatch.status_code == 404 and mismatch.text == WEBOB_404


async def test_forged_signature_is_refused(started: Any) -> None:
    """A proxy whose secret is not the API's: the API refuses the signature (its 403), the guest gets the
    agent's plain 403 and no document."""
    url, _ports = await started(secret="not-the-secret")
    resp = await _get(url, "127.0.0.2", "/openstack/latest/meta_data.json")
    assert resp.status_code == 403
    assert resp.text == "403 Forbidden\n\nAccess was denied to this resource.\n\n   "
    empty = await _get(url, "127.0.0.2", "/openstack/latest/meta_data.json")
    assert "uuid" not in empty.text


async def test_missing_signature_is_refused_by_the_api(px_cloud: Cloud, servers: dict[str, dict[str, Any]]
                                                       ) -> None:
    """What the proxy adds is what the API requires: without the signature (or with one for another id) the API
    itself answers 400/403, so nothing reaching it without the proxy's secret gets a document."""
    server = servers["a"]
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        path = px_cloud.metadata_url + "/openstack/latest/meta_data.json"
        missing = await client.get(path, headers={"X-Instance-ID": server["id"], "X-Tenant-ID": server["tenant_id"],
                                                  "X-Forwarded-For": "127.0.0.2"})
        assert missing.status_code == 400
        assert "X-Instance-ID-Signature header is missing from request." in missing.text
        wrong = await client.get(path, headers={
            "X-Instance-ID": server["id"], "X-Tenant-ID": server["tenant_id"], "X-Forwarded-For": "127.0.0.2",
            "X-Instance-ID-Signature": proxy.sign_instance_id(SECRET, servers["b"]["id"])})
        assert wrong.status_code == 403
        signed = await client.get(path, headers={
            "X-Instance-ID": server["id"], "X-Tenant-ID": server["tenant_id"], "X-Forwarded-For": "127.0.0.2",
            "X-Instance-ID-Signature": proxy.sign_instance_id(SECRET, server["id"])})
        assert signed.status_code == 200 and signed.json()["uuid"] == server["id"]


async def test_password_post_and_errors_pass_through(started: Any, servers: dict[str, dict[str, Any]]) -> None:
    url, _ports = await started()
    path = "/openstack/latest/password"
    assert (await _get(url, "127.0.0.3", path)).content == b""
    posted = await _get(url, "127.0.0.3", path, method="POST", content=b"encrypted")
    assert posted.status_code == 200
    assert (await _get(url, "127.0.0.3", path)).text == "encrypted"
    again = await _get(url, "127.0.0.3", path, method="POST", content=b"other")
    assert again.status_code == 409
    assert again.text == "409 Conflict\n\nThere was a conflict when trying to complete your request.\n\n   "
    missing = await _get(url, "127.0.0.3", "/openstack/latest/nothing")
    assert missing.status_code == 404 and missing.text == WEBOB_404
    too_big = await _get(url, "127.0.0.3", path, method="POST", content=b"x" * (proxy.MAX_BODY + 1))
    assert too_big.status_code == 413


async def test_upstream_over_a_unix_socket(started: Any, px_cloud: Cloud, servers: dict[str, dict[str, Any]],
                                           tmp_path: Path) -> None:
    """The agent's path: the proxy reaches the API through a unix socket (here a relay to its TCP port)."""
    api = httpx.URL(px_cloud.metadata_url)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(api.host, api.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    path = str(tmp_path / "metadata_proxy")
    server = await asyncio.start_unix_server(relay, path)
    try:
        url, _ports = await started(upstream="http://metadata", unix_socket=path)
        resp = await _get(url, "127.0.0.2", "/openstack/latest/meta_data.json")
        assert resp.status_code == 200 and resp.json()["uuid"] == servers["a"]["id"]
    finally:
        server.close()


async def test_metadata_api_out_of_reach_is_500(started: Any) -> None:
    sock = _bound()
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    url, _ports = await started(upstream=dead)
    resp = await _get(url, "127.0.0.2", "/openstack/latest/meta_data.json")
    assert resp.status_code == 500
    assert resp.text == f"500 Internal Server Error\n\n{proxy.UNKNOWN_ERROR}\n\n   "


async def test_serve_from_conf(started: Any, px_cloud: Cloud, servers: dict[str, dict[str, Any]]) -> None:
    """The deployment's own options: its secret and where its metadata API listens."""
    conf = stratus_conf.load(overrides={"DEFAULT": {"metadata_listen_port": httpx.URL(px_cloud.metadata_url).port},
                                        "neutron": {"metadata_proxy_shared_secret": SECRET}})
    _url, ports = await started()  # the resolver of the other tests
    sock = _bound()
    running = await proxy.serve_from_conf(conf, sock, NETWORK, ports)
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        resp = await _get(url, "127.0.0.3", "/openstack/latest/meta_data.json")
        assert resp.status_code == 200 and resp.json()["uuid"] == servers["b"]["id"]
    finally:
        await running.close()


def test_upstream_url() -> None:
    assert proxy.upstream_url("0.0.0.0", 8775) == "http://127.0.0.1:8775"
    assert proxy.upstream_url("127.0.0.1", 8775) == "http://127.0.0.1:8775"
    assert proxy.upstream_url("::", 8775) == "http://[::1]:8775"
    assert proxy.upstream_url("fd00::5", 80) == "http://[fd00::5]:80"
