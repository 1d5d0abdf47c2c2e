from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stratus import exception
from stratus.rpc.local import LocalTransport


class Endpoint:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def echo(self, context: dict[str, Any], value: Any) -> Any:
        return {"context": context, "value": value}

    async def record(self, context: dict[str, Any], value: Any) -> None:
        self.seen.append(value)

    async def boom(self, context: dict[str, Any]) -> None:
        raise exception.NoValidHost(reason="none left")

    async def crash(self, context: dict[str, Any]) -> None:
        raise ValueError("bad")


async def test_call_cast_fanout_round_trip_json() -> None:
    t = LocalTransport(timeout=2)
    a, b = Endpoint(), Endpoint()
    await t.listen("compute", a, server="h1")
    await t.listen("compute", b, server="h2")
    reply = await t.call("compute", "echo", {"user": "u"}, server="h2", value=(1, 2))
    assert reply == {"context": {"user": "u"}, "value": [1, 2]}  # the tuple went through JSON
    await t.cast("compute", "record", {}, server="h1", value="x")
    await t.fanout("compute", "record", {}, value="all")
    await t.stop()
    assert a.seen == ["x", "all"] and b.seen == ["all"]


async def test_remote_exceptions() -> None:
    t = LocalTransport(timeout=2)
    await t.listen("scheduler", Endpoint())
    with pytest.raises(exception.NoValidHost, match="none left"):
        await t.call("scheduler", "boom", {})
    with pytest.raises(exception.RemoteError, match="ValueError"):
        await t.call("scheduler", "crash", {})
    with pytest.raises(exception.RemoteError):
        await t.call("scheduler", "_private", {})


async def test_no_listener_and_timeout() -> None:
    t = LocalTransport(timeout=0.05)

    class Slow:
        async def wait(self, context: dict[str, Any]) -> None:
            await asyncio.sleep(1)

    await t.listen("slow", Slow())
    with pytest.raises(exception.MessagingTimeout):
        await t.call("nobody", "x", {})
    with pytest.raises(exception.MessagingTimeout):
        await t.call("slow", "wait", {})
