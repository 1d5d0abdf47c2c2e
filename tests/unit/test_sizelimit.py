"""The request body size limit (oslo.middleware's sizelimit as ASGI), driven message by message."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import webob
import webob.exc

from stratus.sizelimit import RequestBodySizeLimiter, too_large_body

LIMIT = 100


class App:
    """The application behind the limit: records the body it read, answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def run(chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None, disconnect: bool = False,
              limiter_of: Any = None, path: str = "/v2.1/servers") -> tuple[App, list[dict[str, Any]], int]:
    """Send ``chunks`` as the body (then a disconnect, if asked) through a limiter; (app, sent, messages read)."""
    app = App()
    limiter = (limiter_of or (lambda a: RequestBodySizeLimiter(a, LIMIT)))(app)
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                                      for i, c in enumerate(chunks)]
    if disconnect:
        messages[-1]["more_body"] = True
        messages.append({"type": "http.disconnect"})
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return messages[read - 1] if read <= len(messages) else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers or []}
    await limiter(scope, receive, send)
    return app, sent, read


async def test_a_body_within_the_limit_reaches_the_application_whole() -> None:
    app, sent, _ = await run([b"a" * 60, b"b" * 40], [(b"content-length", b"100")])
    assert app.bodies == [b"a" * 60 + b"b" * 40] and sent[0]["status"] == 200


async def test_a_declared_length_past_the_limit_is_refused_before_reading() -> None:
    app, sent, read = await run([b"x" * 10], [(b"content-length", b"101"), (b"accept", b"application/json")])
    assert not app.bodies and read == 0
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    assert sent[1]["body"] == too_large_body("application/json", "Request is too large. Larger than "
                                             "max_request_body_size (100).")[1]


async def test_a_chunked_body_is_refused_once_it_passes_the_limit() -> None:
    app, sent, read = await run([b"x" * 60, b"x" * 60, b"x" * 60])
    assert not app.bodies and read == 2 and sent[0]["status"] == 413
    assert b"Request is too large. Larger than 100." in sent[1]["body"]


async def test_a_client_gone_mid_body_is_logged_at_info_and_runs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app, sent, _ = await run([b"x" * 10], disconnect=True)
    assert not app.bodies and not sent
    (record,) = [r for r in caplog.records if r.name == "stratus.sizelimit"]
    assert record.levelno == logging.INFO and record.exc_info is None
    assert "went away before sending the whole body" in record.getMessage()


async def test_exempt_requests_stream_past_the_limit() -> None:
    def limiter(app: Any) -> Any:
        return RequestBodySizeLimiter(app, LIMIT, exempt=lambda scope: scope["path"].endswith("/file"))

    app, sent, _ = await run([b"x" * 80] * 3, limiter_of=limiter, path="/v2/images/i/file")
    assert app.bodies == [b"x" * 240] and sent[0]["status"] == 200


@pytest.mark.parametrize("accept", ["application/json", "", "*/*", "text/html", "text/html;q=0.5, application/json",
                                    "application/*", "text/plain", "application/json;q=0"])
def test_the_body_is_webobs_for_the_accept_header(accept: str) -> None:
    """What oslo's middleware answers is webob's HTTPRequestEntityTooLarge, negotiated by webob."""
    explanation = "Request is too large. Larger than 114688."
    request = webob.Request.blank("/", method="POST")
    if accept:
        request.headers["Accept"] = accept
    expected = request.get_response(webob.exc.HTTPRequestEntityTooLarge(explanation=explanation))
    content_type, body = too_large_body(accept, explanation)
    assert (content_type, body) == (expected.headers["Content-Type"], expected.body)
