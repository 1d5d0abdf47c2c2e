"""Responses written once: the writes of one loop turn joined, a close writing what is pending, and a real server
on the protocol answering keep-alive and streamed requests whole."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import uvicorn

from stratus.http_protocol import CoalescingHttpToolsProtocol, _CoalescingTransport


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return f"extra-{name}"


async def test_writes_of_one_loop_turn_reach_the_socket_as_one() -> None:
    raw = _Recorder()
    transport = _CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"body")
    assert raw.writes == []
    assert transport.get_write_buffer_size() == 23
    await asyncio.sleep(0)
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    transport.write(b"more")
    transport.close()  # what is pending goes first
    assert raw.writes[-1] == b"more" and raw.closed
    assert transport.get_extra_info("peername") == "extra-peername"


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": f"part{i};".encode(), "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"end"})
        return
    body = scope["path"].encode() * 1000
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def test_a_server_on_the_protocol_answers_whole() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_app, log_config=None, access_log=False, loop="none", lifespan="off",
                                           http=CoalescingHttpToolsProtocol))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for path in ("/a", "/bb", "/a"):  # one kept-alive connection
                resp = await client.get(path)
                assert resp.status_code == 200 and resp.content == path.encode() * 1000
            streamed = await client.get("/stream")
            assert streamed.text == "part0;part1;part2;end"
    finally:
        server.should_exit = True
        await task
        sock.close()
