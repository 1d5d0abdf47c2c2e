"""The agents of a process whose compute hosts run real guests (the libvirt driver): a Linux bridge agent per
compute host, and on the host that also serves the Networking API (the all-in-one) the DHCP and L3 agents, all
on the deployment's transport. They need root (network namespaces, nftables, dnsmasq)."""

from __future__ import annotations

import logging
import os
from typing import Any

from stratus.network.agent.base import Agent
from stratus.network.agent.dhcp import DhcpAgent
from stratus.network.agent.l3 import L3Agent
from stratus.network.agent.linuxbridge import LinuxBridgeAgent
from stratus.rpc.transport import Transport

LOG = logging.getLogger(__name__)


class DataplaneAgents:
    def __init__(self, transport: Transport, hosts: list[str], network_host: str | None, state_dir: str,
                 report_interval: float = 30.0, resync_interval: float = 10.0, conf: Any = None) -> None:
        """``conf``: the deployment's options, for the DHCP agent's metadata proxies (None: no proxies)."""
        timing: dict[str, Any] = {"report_interval": report_interval, "resync_interval": resync_interval}
        self.agents: list[Agent] = [LinuxBridgeAgent(transport, host, **timing) for host in hosts]
        if network_host is not None:
            self.agents.append(DhcpAgent(transport, network_host, os.path.join(state_dir, "dhcp"), conf=conf,
                                         **timing))
            self.agents.append(L3Agent(transport, network_host, **timing))

    async def start(self) -> None:
        for agent in self.agents:
            await agent.start()
        LOG.info("network agents started: %s", ", ".join(f"{a.agent_type} on {a.host}" for a in self.agents))

    async def stop(self) -> None:
        for agent in self.agents:
            await agent.stop()
