"""The agent of hosts with the fake driver: it reports as a Linux bridge agent (so ports bind to its host) and
says every port it is told of is up at once, keeping no kernel state. One object serves all the simulated hosts
of a compute process: one listener per host, their reports in one call per interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from stratus.context import RequestContext
from stratus.network.agent_rpc import AGENT_TOPIC, PluginAPI
from stratus.network.server.binding import L2_AGENT_TYPE
from stratus.rpc.transport import Transport

LOG = logging.getLogger(__name__)
BINARY = "stratus-noop-agent"
#: the longest wait before reporting again after a report that did not get through
RETRY_MAX = 5.0


class _HostEndpoint:
    """The ``network_agent.<host>`` listener of one host."""

    def __init__(self, agents: NoopAgents, host: str) -> None:
        self.agents = agents
        self.host = host

    async def port_update(self, context: dict[str, Any], port: dict[str, Any]) -> None:
        if port.get("binding:host_id") != self.host:
            return
        try:
            await self.agents.plugin.update_device_up(self.agents.context, self.host, port["id"])
        except Exception as exc:
            LOG.warning("noop agent %s: update_device_up %s failed: %s", self.host, port["id"], exc)

    async def port_delete(self, context: dict[str, Any], port_id: str, network_id: str) -> None:
        LOG.debug("noop agent %s: port %s deleted", self.host, port_id)

    async def network_delete(self, context: dict[str, Any], network_id: str) -> None:
        LOG.debug("noop agent %s: network %s deleted", self.host, network_id)

    async def security_groups_updated(self, context: dict[str, Any], port_ids: list[str]) -> None:
        LOG.debug("noop agent %s: groups of %s changed", self.host, port_ids)


class NoopAgents:
    def __init__(self, transport: Transport, hosts: list[str], report_interval: float, zone: str) -> None:
        self.transport = transport
        self.hosts = hosts
        self.report_interval = report_interval
        self.zone = zone
        self.plugin = PluginAPI(transport, timeout=30)
        self.context = RequestContext.admin().to_dict()
        self._task: asyncio.Task[None] | None = None

    def _states(self, start: bool) -> list[dict[str, Any]]:
        return [{"host": h, "agent_type": L2_AGENT_TYPE, "binary": BINARY, "topic": AGENT_TOPIC,
                 "availability_zone": self.zone, "start_flag": start,
                 "configurations": {"devices": 0, "interface_mappings": {}, "noop": True}} for h in self.hosts]

    async def start(self) -> None:
        """Listen, then report in the background (a deployment without a networking server must not hold up
        the compute's start by a call's timeout)."""
        for host in self.hosts:
            await self.transport.listen(AGENT_TOPIC, _HostEndpoint(self, host), server=host)
        self._task = asyncio.create_task(self._loop())

    async def report(self, start: bool = False) -> bool:
        try:
            await self.plugin.report_states(self.context, self._states(start))
        except Exception as exc:  # no server yet: the next interval tries again
            LOG.warning("noop agents: report_state failed: %s", exc)
            return False
        return True

    async def _loop(self) -> None:
        """Report every ``report_interval``; after a report that did not get through (a networking server that
        starts after this compute, as in a multi-process deployment brought up at once), again sooner: 1 s, then
        twice as long each time, up to 5 s (or the interval, if shorter). Until then no port binds to these
        hosts."""
        started, retry = False, 1.0
        while True:
            ok = await self.report(start=not started)
            started = ok or started
            if ok:
                retry = 1.0
                await asyncio.sleep(self.report_interval)
            else:
                await asyncio.sleep(min(retry, RETRY_MAX, self.report_interval))
                retry *= 2

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
