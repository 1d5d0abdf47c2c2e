"""The Networking API this process serves, for Nova's side in the same process (the all-in-one, ``stratus api``).

Nova's side talks to the Networking service through its HTTP API only (``neutron_client``). When the endpoint it
is configured with is the one this very process listens on, its requests go to the served application through
ASGI instead of a socket: the same requests, the same application stack (size limit, authentication, policy), the
same answers, without the TCP connection, the HTTP parsing on both sides and the client's connection pool, which
together cost more than most handlers. Each request runs in a task of its own, as on a server: a caller that is
cancelled (a build timing out) does not cut a create off between its commit and its notifications. An endpoint
elsewhere (a real Neutron, another process's embedded one) is reached over HTTP as before.
"""

from __future__ import annotations

import asyncio
import urllib.parse

import httpx
from starlette.types import ASGIApp

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
