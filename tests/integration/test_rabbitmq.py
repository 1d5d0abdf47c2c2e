"""The AMQP transport on a real RabbitMQ (scripts/rabbitmq.sh): call, cast and fanout between connections,
timeouts that never hang, failover over the transport_url's hosts, and a broker restart: everyone reconnects by
itself, a cast the broker confirmed is delivered after it, and a call in flight ends in MessagingTimeout."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from stratus import conf as conf_mod
from stratus import exception
from stratus.local_cloud import free_port
from stratus.rpc.amqp import AmqpTransport
from stratus.rpc.transport import get_transport
from tests.integration.conftest import RabbitMQ

pytestmark = pytest.mark.integration


class Endpoint:
    def __init__(self, name: str) -> None:
        self.name = name
        self.notes: list[Any] = []
        self.noted = asyncio.Event()

    async def whoami(self, context: dict[str, Any], value: Any) -> dict[str, Any]:
        return {"name": self.name, "value": value, "context": context}

    async def sleep(self, context: dict[str, Any], seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def refuse(self, context: dict[str, Any]) -> None:
        raise exception.InstanceNotFound(instance_id="i-1")

    async def crash(self, context: dict[str, Any]) -> None:
        raise KeyError("lost")

    async def note(self, context: dict[str, Any], value: Any) -> None:
        self.notes.append(value)
        self.noted.set()


def _transport(url: str, timeout: int = 5, exchange: str = "stratus-test") -> AmqpTransport:
    conf = conf_mod.load(overrides={"DEFAULT": {"transport_url": url, "rpc_response_timeout": timeout,
                                                "control_exchange": exchange},
                                    "oslo_messaging_rabbit": {"rabbit_retry_interval": 0.5}})
    transport = get_transport(conf)
    assert isinstance(transport, AmqpTransport)
    return transport


async def _until(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_call_cast_fanout_between_connections(rabbitmq: RabbitMQ) -> None:
    a, b, caller = _transport(rabbitmq.url), _transport(rabbitmq.url), _transport(rabbitmq.url)
    for t in (a, b, caller):
        await t.start()
    ea, eb = Endpoint("a"), Endpoint("b")
    await a.listen("compute", ea, server="host-a")
    await b.listen("compute", eb, server="host-b")
    try:
        assert await caller.call("compute", "whoami", {"request_id": "req-1"}, server="host-b", value=[1, "x"]) == {
            "name": "b", "value": [1, "x"], "context": {"request_id": "req-1"}}
        names = {(await caller.call("compute", "whoami", {}, value=i))["name"] for i in range(6)}
        assert names == {"a", "b"}  # the shared topic queue: listeners take turns
        with pytest.raises(exception.InstanceNotFound, match="Instance i-1 could not be found"):
            await caller.call("compute", "refuse", {}, server="host-a")
        with pytest.raises(exception.RemoteError, match="KeyError 'lost'"):
            await caller.call("compute", "crash", {}, server="host-a")
        with pytest.raises(exception.RemoteError, match="NoSuchMethod"):
            await caller.call("compute", "_private", {}, server="host-a")
        await caller.cast("compute", "note", {}, server="host-a", value="cast")
        await _until(lambda: ea.notes == ["cast"])
        await caller.fanout("compute", "note", {}, value="all")
        await _until(lambda: ea.notes == ["cast", "all"] and eb.notes == ["all"])
        await caller.fanout("nobody", "note", {}, value="x")  # a fanout nobody listens to is fine
        with pytest.raises(exception.MessagingTimeout, match=r"compute.host-z \(no listener\)"):
            await caller.cast("compute", "note", {}, server="host-z", value=1)
        started = time.monotonic()
        with pytest.raises(exception.MessagingTimeout, match=r"sleep on compute\.host-a"):
            await caller.call("compute", "sleep", {}, server="host-a", seconds=3, timeout=0.5)
        assert time.monotonic() - started < 1.5
    finally:
        for t in (a, b, caller):
            await t.stop()


async def test_failover_to_the_next_host(rabbitmq: RabbitMQ) -> None:
    dead = free_port()
    live = rabbitmq.url.removeprefix("rabbit://").rstrip("/")
    transport = _transport(f"rabbit://guest:guest@127.0.0.1:{dead},{live}/")
    await transport.start()
    try:
        endpoint = Endpoint("x")
        await transport.listen("scheduler", endpoint)
        assert (await transport.call("scheduler", "whoami", {}, value=1))["name"] == "x"
    finally:
        await transport.stop()


async def test_broker_restart(rabbitmq: RabbitMQ) -> None:
    """Every connection comes back by itself; what the broker confirmed is not lost; calls in flight time out."""
    server, caller = _transport(rabbitmq.url, timeout=20), _transport(rabbitmq.url, timeout=20)
    gone = _transport(rabbitmq.url)
    for t in (server, caller, gone):
        await t.start()
    endpoint, late = Endpoint("server"), Endpoint("late")
    await server.listen("conductor", endpoint, server="c1")
    await gone.listen("compute", late, server="host-late")
    await gone.stop()  # its durable queue compute.host-late stays, with nobody consuming it
    try:
        assert (await caller.call("conductor", "whoami", {}, value=0))["name"] == "server"
        await caller.cast("compute", "note", {}, server="host-late", value="kept")  # confirmed, queued
        in_flight = asyncio.create_task(caller.call("conductor", "sleep", {}, seconds=6, timeout=4))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        restart = asyncio.create_task(asyncio.to_thread(lambda: (rabbitmq.stop(), rabbitmq.start())))
        with pytest.raises(exception.MessagingTimeout):
            await in_flight  # its reply is lost with the broker: the timeout, not a hang
        assert time.monotonic() - started < 5
        await restart
        deadline = time.monotonic() + 20
        while True:  # back without anyone doing anything
            try:
                assert (await caller.call("conductor", "whoami", {}, value=1, timeout=2))["name"] == "server"
                break
            except exception.MessagingTimeout:
                assert time.monotonic() < deadline, "no reconnection within 20 s of the broker's return"
        back = _transport(rabbitmq.url)
        await back.start()
        await back.listen("compute", late, server="host-late")
        try:
            await _until(lambda: late.notes == ["kept"])
        finally:
            await back.stop()
    finally:
        for t in (server, caller):
            await t.stop()
