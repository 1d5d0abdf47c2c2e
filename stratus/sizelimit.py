"""Request body size limit: oslo.middleware's ``sizelimit`` (``[oslo_middleware] max_request_body_size``) as pure
ASGI middleware, in front of the compute and identity APIs as Nova's and Keystone's pipelines put it.

A ``Content-Length`` past the limit is refused before any byte of the body is read; a body without one (chunked)
is counted as it arrives and refused as soon as it passes the limit, so no more than the limit is ever held. Both
are oslo's 413 with webob's body for the client's ``Accept`` (JSON for OpenStack clients), and the connection is
closed rather than the rest of the body read.

The body is read whole (it is small, by this limit) before the application runs: the application then never sees
a client that goes away mid-body. Such a client is no error of the server: it is logged at INFO, without a
traceback, and nothing runs for it. ``exempt`` names the requests that stream a body of any size past the limit
(an image API's data upload, say), which go to the application untouched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from oslo_config import cfg
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOG = logging.getLogger(__name__)

GROUP = "oslo_middleware"
OPTS = [
    cfg.IntOpt("max_request_body_size", default=114688, min=0,
               help="The maximum body size for each request to the compute and identity APIs, in bytes (oslo."
                    "middleware's option and default, 112 KiB); a larger one is a 413."),
]

_STATUS = "413 Request Entity Too Large"
_TITLE = "Request Entity Too Large"


class RequestBodySizeLimiter:
    """Refuse a request body past ``max_size`` bytes (see the module's docstring)."""

    def __init__(self, app: ASGIApp, max_size: int, exempt: Callable[[Scope], bool] | None = None) -> None:
        self.app = app
        self.max_size = max_size
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt is not None and self.exempt(scope)):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_size:
            # oslo's wording (which leaves its %s unfilled; the limit is given here)
            LOG.info("Request is too large. Larger than max_request_body_size (%s).", self.max_size)
            await _too_large(scope, send, f"Request is too large. Larger than max_request_body_size "
                                          f"({self.max_size}).")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                LOG.info("%s %s: the client went away before sending the whole body (%d bytes came)",
                         scope.get("method"), scope.get("path"), size)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_size:
                await _too_large(scope, send, f"Request is too large. Larger than {self.max_size}.")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def wrap(app: ASGIApp, conf: cfg.ConfigOpts, exempt: Callable[[Scope], bool] | None = None) -> ASGIApp:
    """``app`` behind the limit of ``conf``'s ``[oslo_middleware] max_request_body_size``."""
    return RequestBodySizeLimiter(app, conf[GROUP].max_request_body_size, exempt)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the whole body once, then what the client sends next (its disconnect)."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _header(scope: Scope, wanted: bytes) -> str:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return bytes(value).decode("latin-1")
    return ""


async def _too_large(scope: Scope, send: Send, explanation: str) -> None:
    content_type, body = too_large_body(_header(scope, b"accept"), explanation)
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def too_large_body(accept: str, explanation: str) -> tuple[str, bytes]:
    """webob's ``HTTPRequestEntityTooLarge`` body for ``accept`` (what oslo's middleware answers): JSON, HTML or
    plain text, as webob chooses between ``text/html`` and ``application/json``."""
    kind = _negotiate(accept)
    if kind == "application/json":
        document: dict[str, Any] = {"message": f"{explanation}<br /><br />\n\n\n", "code": _STATUS, "title": _TITLE}
        return "application/json", json.dumps(document).encode()
    if kind == "text/html":
        page = (f"<html>\n <head>\n  <title>{_STATUS}</title>\n </head>\n <body>\n  <h1>{_STATUS}</h1>\n"
                f"  {explanation}<br /><br />\n\n\n\n </body>\n</html>")
        return "text/html; charset=UTF-8", page.encode()
    return "text/plain; charset=UTF-8", f"{_STATUS}\n\n{explanation}\n\n   ".encode()


def _negotiate(accept: str) -> str:
    """webob's ``acceptable_offers(['text/html', 'application/json'])``, first match; plain text when none."""
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((media.lower(), quality))
    best, best_quality = "text/plain", 0.0
    for offer in ("text/html", "application/json"):
        for pattern in (offer, offer.split("/")[0] + "/*", "*/*"):  # the most specific range that names it
            qualities = [q for media, q in ranges if media == pattern]
            if qualities:
                if max(qualities) > best_quality:
                    best, best_quality = offer, max(qualities)
                break
    return best
