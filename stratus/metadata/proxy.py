"""The per-network metadata proxy: what a guest reaches at 169.254.169.254:80, as Neutron's metadata path (the
haproxy in each ``qdhcp-<network>`` namespace plus the ``neutron-metadata-agent`` behind it) in one piece.

The network's data plane binds the listening socket inside the network's namespace and hands it over; the proxy
serves HTTP on it, and for every request:

1. finds who is asking from the TCP peer's address on this network (never from a header the guest sent) through
   a resolver (the network service's port lookup: network id + fixed IP -> the port's ``device_id`` and
   ``tenant_id``, as the agent's ``_get_ports_for_remote_address``); nobody, or an address two ports share, is
   Neutron's ``404``;
2. forwards the request (method, path, query, body) to the metadata API over loopback or a unix socket with
   ``X-Forwarded-For`` (the peer's address), ``X-Instance-ID``, ``X-Tenant-ID`` and ``X-Instance-ID-Signature``
   (the hex HMAC-SHA256 of the instance id keyed with ``[neutron] metadata_proxy_shared_secret``), and no other
   header of the guest's;
3. answers as the agent's ``_proxy_request``: a ``200`` as the metadata API sent it (body and content type), a
   ``400/404/409/502/503/504`` as webob's plain error of that status, a ``403`` as webob's default ``403`` (the
   API refused the signature: the shared secrets differ), a ``500`` with Neutron's message, anything else (or the
   API out of reach) a ``500`` "An unknown error has occurred".

Run it with :func:`serve`; it is a plain ASGI app (:class:`MetadataProxyApp`) served by uvicorn on the given socket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import socket
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import httpx
import uvicorn

LOG = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: the most a guest may send (the password POST is at most 1020 bytes; user data is never sent by the guest)
MAX_BODY = 64 * 1024
UNKNOWN_ERROR = "An unknown error has occurred. Please try your request again."
REMOTE_500 = "Remote metadata server experienced an internal server error."
#: webob's default explanations of the statuses the agent passes on as themselves
EXPLANATIONS = {
    400: "The server could not comply with the request since it is either malformed or otherwise incorrect.",
    403: "Access was denied to this resource.",
    404: "The resource could not be found.",
    409: "There was a conflict when trying to complete your request.",
    413: "The body of your request was too large for this server.",
    500: "The server has either erred or is incapable of performing the requested operation.",
    502: "Bad gateway.",
    503: "The server is currently unavailable. Please try again at a later time.",
    504: "The gateway has timed out.",
}


@dataclasses.dataclass(frozen=True)
class Requester:
    """The instance behind a fixed IP: its port's ``device_id`` and ``tenant_id``."""

    instance_id: str
    tenant_id: str


#: (network id, fixed IP) -> the requester, or None when no single port of the network has that address
Resolver = Callable[[str, str], Awaitable[Requester | None]]


def sign_instance_id(secret: str, instance_id: str) -> str:
    """Neutron's ``sign_instance_id``: what Nova's metadata API checks in ``X-Instance-ID-Signature``."""
    return hmac.new(secret.encode(), instance_id.encode(), hashlib.sha256).hexdigest()


def upstream_url(host: str, port: int) -> str:
    """The metadata API's base URL from where it listens (``[DEFAULT] metadata_listen`` and ``_port``): a
    wildcard address is reached over loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class MetadataProxyApp:
    """The proxy of one network. ``upstream``: the metadata API's base URL (``http://127.0.0.1:8775``); with
    ``unix_socket`` the connection goes to that socket instead (the URL's host is then only the Host header)."""

    def __init__(self, network_id: str, resolver: Resolver, shared_secret: str, upstream: str,
                 unix_socket: str | None = None, timeout: float = 30.0) -> None:
        self.network_id = network_id
        self.resolver = resolver
        self.shared_secret = shared_secret
        self.upstream = upstream.rstrip("/")
        transport = httpx.AsyncHTTPTransport(uds=unix_socket) if unix_socket else None
        self.client = httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            status, headers, body = await self._handle(scope, receive)
        except Exception:
            LOG.exception("metadata proxy of network %s: unexpected error", self.network_id)
            status, headers, body = _error(500, UNKNOWN_ERROR)
        # the whole body is at hand: its length framed, never chunked (an HTTP/1.0 client, as busybox's or
        # cloud-init's simplest readers, cannot undo chunked framing)
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        client = scope.get("client")
        address = str(client[0]) if client else ""
        body = await _read_body(receive)
        if body is None:
            return _error(413)
        requester = await self.resolver(self.network_id, address) if address else None
        if requester is None:
            LOG.info("metadata request from %s on network %s: no port has that address", address, self.network_id)
            return _error(404)
        path = scope.get("raw_path") or scope.get("path", "/").encode()
        if isinstance(path, bytes):
            path = path.decode("latin-1")
        query = scope.get("query_string") or b""
        url = self.upstream + path + (f"?{query.decode('latin-1')}" if query else "")
        headers = {"X-Forwarded-For": address, "X-Instance-ID": requester.instance_id,
                   "X-Tenant-ID": requester.tenant_id,
                   "X-Instance-ID-Signature": sign_instance_id(self.shared_secret, requester.instance_id)}
        try:
            resp = await self.client.request(scope["method"], url, headers=headers, content=body)
        except httpx.HTTPError as exc:
            LOG.warning("metadata proxy of network %s: the metadata API at %s is out of reach: %s",
                        self.network_id, self.upstream, exc)
            return _error(500, UNKNOWN_ERROR)
        if resp.status_code == 200:
            content_type = resp.headers.get("content-type", "text/plain; charset=UTF-8")
            return 200, [(b"content-type", content_type.encode("latin-1"))], resp.content
        if resp.status_code == 403:
            LOG.warning("the metadata API refused the request of %s for %s (403): the shared secrets "
                        "(metadata_proxy_shared_secret) do not match", address, requester.instance_id)
            return _error(403)
        if resp.status_code == 500:
            return _error(500, REMOTE_500)
        if resp.status_code in (400, 404, 409, 502, 503, 504):
            return _error(resp.status_code)
        LOG.error("metadata proxy of network %s: unexpected response code %d from the metadata API",
                  self.network_id, resp.status_code)
        return _error(500, UNKNOWN_ERROR)


async def _read_body(receive: Receive) -> bytes | None:
    out = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return out
        out += message.get("body", b"")
        if len(out) > MAX_BODY:
            return None
        if not message.get("more_body"):
            return out


def _error(status: int, explanation: str | None = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """webob's plain-text error body, as the agent's ``webob.exc`` responses."""
    text = f"{status} {HTTPStatus(status).phrase}\n\n{explanation or EXPLANATIONS[status]}\n\n   "
    return status, [(b"content-type", b"text/plain; charset=UTF-8")], text.encode()


class MetadataProxy:
    """A running proxy: the uvicorn server on the handed-over socket, and its app; ``close`` stops both (the
    socket is closed with the server)."""

    def __init__(self, app: MetadataProxyApp, server: uvicorn.Server, task: asyncio.Task[None]) -> None:
        self.app = app
        self.server = server
        self.task = task

    async def close(self) -> None:
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout=10)
        except TimeoutError:
            self.task.cancel()
        finally:
            await self.app.aclose()


async def serve(sock: socket.socket, network_id: str, resolver: Resolver, shared_secret: str, upstream: str,
                unix_socket: str | None = None) -> MetadataProxy:
    """Serve network ``network_id``'s proxy on ``sock`` (a bound TCP socket, typically 169.254.169.254:80 in the
    network's namespace; listening or not) until ``close``. Returns once the server accepts connections."""
    app = MetadataProxyApp(network_id, resolver, shared_secret, upstream, unix_socket)
    config = uvicorn.Config(app, log_config=None, access_log=False, loop="none", lifespan="off",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await app.aclose()
            task.result()  # the reason it stopped
            raise RuntimeError(f"the metadata proxy of network {network_id} stopped at start")
        await asyncio.sleep(0.01)
    return MetadataProxy(app, server, task)


async def serve_from_conf(conf: Any, sock: socket.socket, network_id: str, resolver: Resolver) -> MetadataProxy:
    """:func:`serve` with this deployment's options: the secret of ``[neutron] metadata_proxy_shared_secret``
    and the metadata API where ``[DEFAULT] metadata_listen`` and ``metadata_listen_port`` put it."""
    if not conf.neutron.metadata_proxy_shared_secret:
        LOG.warning("metadata_proxy_shared_secret is not configured: the metadata API refuses what the proxy of "
                    "network %s signs unless it has none either", network_id)
    return await serve(sock, network_id, resolver, conf.neutron.metadata_proxy_shared_secret,
                       upstream_url(conf.metadata_listen, conf.metadata_listen_port))
