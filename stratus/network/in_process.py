"""The Networking API this process serves, for Nova's side in the same process (the all-in-one, ``stratus api``).

Nova's side talks to the Networking service through its HTTP API only (``neutron_client``). When the endpoint it
is configured with is the one this very process listens on, its requests go to the served application through
ASGI instead of a socket: the same requests, the same application stack (size limit, authentication, policy), the
same answers, without the TCP connection, the HTTP parsing on both sides and the client's connection pool, which
together cost more than most handlers. Each request runs in a task of its own, as on a server: a caller that is
cancelled (a build timing out) does not cut a create off between its commit and its notifications. An endpoint
elsewhere (a real Neutron, another process's embedded one) is reached over HTTP as before.

``call`` hands the application a request as an HTTP server does (the scope, the body, a disconnect once answered)
and collects its answer; ``InProcessTransport`` does the same under httpx, for an httpx client. Nova's client uses
``call``: building an httpx request (its URL parsed and checked character by character, its headers merged) cost
as much as the answer of a small list.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse

import httpx
from starlette.types import ASGIApp, Message

LOG = logging.getLogger(__name__)

#: the hosts that name this machine's loopback, as an endpoint URL may spell them
LOOPBACK = ("127.0.0.1", "localhost", "::1")

_SERVED: dict[int, tuple[str, ASGIApp]] = {}


def register(listen: str, port: int, app: ASGIApp) -> None:
    """``app`` is served on ``listen``:``port`` by this process (the whole stack the HTTP server runs)."""
    _SERVED[int(port)] = (listen, app)


def unregister(port: int) -> None:
    _SERVED.pop(int(port), None)


def served_at(endpoint: str) -> ASGIApp | None:
    """The application this process serves at ``endpoint`` (``http://127.0.0.1:9696``), if it is one of its own."""
    parts = urllib.parse.urlsplit(endpoint)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    found = _SERVED.get(port)
    if found is None or parts.scheme != "http":
        return None
    listen, app = found
    host = parts.hostname or ""
    wildcard = listen in ("", "0.0.0.0", "::")
    if host == listen or (host in LOOPBACK and (wildcard or listen in LOOPBACK)):
        return app
    return None


class InProcessTransport(httpx.AsyncBaseTransport):
    """httpx's ASGI transport, each request in a task of its own (a cancelled caller leaves it running)."""

    def __init__(self, app: ASGIApp) -> None:
        # an unexpected failure is the application's 500 answer, as a server sends it, not an exception here
        self._asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("127.0.0.1", 0))
        self._running: set[asyncio.Task[httpx.Response]] = set()  # held until done: a task is weakly referenced

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        task = asyncio.get_running_loop().create_task(self._asgi.handle_async_request(request))
        self._running.add(task)
        task.add_done_callback(self._done)
        return await asyncio.shield(task)

    def _done(self, task: asyncio.Task[httpx.Response]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that went away does not leave it unreported twice

    async def aclose(self) -> None:
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)


#: the tasks of ``call`` still running, held until done (a task is weakly referenced)
_RUNNING: set[asyncio.Task[tuple[int, list[tuple[bytes, bytes]], bytes]]] = set()


async def call(app: ASGIApp, method: str, path: str, query: str, headers: list[tuple[bytes, bytes]],
               body: bytes = b"") -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """``method path?query`` with ``headers`` (lower-case names) and ``body``, answered by ``app`` as a server has
    it answered: (status, headers, body). An application that fails before answering is a 500 (a server's answer
    too); the request runs in a task of its own, which a cancelled caller leaves running."""
    task = asyncio.get_running_loop().create_task(_call(app, method, path, query, headers, body))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return await asyncio.shield(task)


async def _call(app: ASGIApp, method: str, path: str, query: str, headers: list[tuple[bytes, bytes]],
                body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": urllib.parse.unquote(path), "raw_path": path.encode(), "root_path": "",
             "query_string": query.encode(), "headers": headers, "client": ("127.0.0.1", 0),
             "server": ("127.0.0.1", 80)}
    answered = asyncio.Event()
    sent_body = False
    status, response_headers, chunks = 500, [], []

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, response_headers
        if message["type"] == "http.response.start":
            status, response_headers = int(message["status"]), list(message.get("headers") or [])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                answered.set()

    try:
        await app(scope, receive, send)
    except Exception:  # the application's own 500 is sent already (Starlette's error middleware raises after)
        if not answered.is_set():
            LOG.exception("%s %s failed in-process", method, path)
            return 500, [], b""
    finally:
        answered.set()
    return status, response_headers, b"".join(chunks)


async def drain() -> None:
    """Wait for the requests of ``call`` still running (a caller that went away left them)."""
    while _RUNNING:
        await asyncio.gather(*list(_RUNNING), return_exceptions=True)
