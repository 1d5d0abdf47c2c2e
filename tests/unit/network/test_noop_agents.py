"""The noop agents of fake-driver hosts: a first report that finds no networking server (it starts later, as in a
multi-process deployment brought up at once) is tried again within seconds, not a whole report interval later, so
ports can bind to those hosts soon after the server is up."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from stratus.network.agent.noop import NoopAgents
from stratus.network.agent_rpc import SERVER_TOPIC
from stratus.rpc.local import LocalTransport


class _Server:
    def __init__(self) -> None:
        self.reports: list[tuple[float, list[dict[str, Any]]]] = []

    async def report_states(self, context: dict[str, Any], states: list[dict[str, Any]]) -> int:
        self.reports.append((time.monotonic(), states))
        return len(states)


async def test_a_report_that_reached_no_server_is_tried_again_soon() -> None:
    transport = LocalTransport()
    agents = NoopAgents(transport, ["h1", "h2"], report_interval=30, zone="nova")
    await agents.start()   # no network_server listener yet: the first report fails
    try:
        await asyncio.sleep(0.2)
        server = _Server()
        await transport.listen(SERVER_TOPIC, server)
        started = time.monotonic()
        while not server.reports:
            assert time.monotonic() - started < 5, "no report within 5 s of the server starting"
            await asyncio.sleep(0.05)
        (_, states), = server.reports
        assert [s["host"] for s in states] == ["h1", "h2"] and all(s["start_flag"] for s in states)
        await asyncio.sleep(1.5)
        assert len(server.reports) == 1   # once through, every report_interval
    finally:
        await agents.stop()
        await transport.stop()
