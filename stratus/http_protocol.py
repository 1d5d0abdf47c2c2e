"""uvicorn's HTTP protocol with each response written to the socket once, not twice.

uvicorn writes a response's status line and headers when the application starts the response, and its body when
the application sends it: two ``write`` calls, each a system call on the socket (the event loop writes at once
when nothing is queued), and each waking the client, which finds half a response the first time. On a busy
machine those wake-ups were the largest single cost of the API process (py-spy: the headers' ``write`` 11-13 % of
its samples during the boot benchmark). Here the connection's writes within one turn of the event loop are
joined and handed to the socket once, at the end of that turn: the headers and body of a response the
application sends at once leave together. Nothing is held longer than that turn, and closing the connection
writes what is pending first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _CoalescingTransport:
    """A transport whose writes within one turn of the loop go to the real one as one write."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data if type(data) is bytes else bytes(data))  # a bytearray or view may change

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(p) for p in self._pending)

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, set_protocol, ...
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` on a ``_CoalescingTransport`` (flow control stays on the real transport)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _CoalescingTransport(transport, asyncio.get_running_loop())  # type: ignore[assignment]
