"""The DHCP agent (Neutron's ``neutron-dhcp-agent``): one dnsmasq per network it is sent, each in its
``qdhcp-<network>`` namespace plugged into the network's bridge in this host's namespace.

``network_update(network, subnets, ports)`` records a network's desired state and ``network_delete`` forgets
it; the worker converges every recorded network (files rewritten and SIGHUP, or a restart if the subnets
changed). After a restart the agent asks the server for its networks (``get_active_networks_info``, as
Neutron's ``sync_state``) when the server offers that call, and only then removes the ``qdhcp-`` namespaces
of networks it no longer serves; without it, those stay until their ``network_delete``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from stratus.network.agent.base import Agent
from stratus.network.dataplane import dhcp, names
from stratus.network.dataplane import netns as nsutil

LOG = logging.getLogger(__name__)


class DhcpAgent(Agent):
    topic = "dhcp_agent"
    agent_type = "DHCP agent"
    binary = "neutron-dhcp-agent"

    def __init__(self, transport: Any, host: str, state_dir: str, **kwargs: Any) -> None:
        super().__init__(transport, host, **kwargs)
        self.state_dir = state_dir
        self.networks: dict[str, tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]] = {}
        self.deleted: set[str] = set()
        self.authoritative = False   # True once the server told us every network we serve

    def configurations(self) -> dict[str, Any]:
        return {"dhcp_driver": "dnsmasq", "networks": len(self.networks), "dhcp_lease_duration": dhcp.LEASE_SECONDS}

    def server(self, network_id: str) -> dhcp.DhcpServer:
        return dhcp.DhcpServer(self.state_dir, self.host, network_id)

    async def network_update(self, context: dict[str, Any], network: dict[str, Any], subnets: list[dict[str, Any]],
                             ports: list[dict[str, Any]]) -> None:
        self.networks[network["id"]] = (network, subnets, ports)
        self.deleted.discard(network["id"])
        self.kick()

    async def network_delete(self, context: dict[str, Any], network_id: str) -> None:
        self.networks.pop(network_id, None)
        self.deleted.add(network_id)
        self.kick()

    async def resync(self) -> None:
        infos = await self.plugin.optional("get_active_networks_info", host=self.host)
        if infos is None:
            return
        for info in infos:
            self.networks[info["network"]["id"]] = (info["network"], info.get("subnets") or [],
                                                    info.get("ports") or [])
        self.authoritative = True
        self.kick()

    async def sync(self) -> None:
        await asyncio.to_thread(self._converge, dict(self.networks), set(self.deleted))

    def _converge(self, networks: dict[str, tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]],
                  deleted: set[str]) -> None:
        for network_id, (network, subnets, ports) in networks.items():
            try:
                self.server(network_id).sync(network, subnets, ports)
            except Exception:
                LOG.exception("DHCP for network %s failed; retried on the next pass", network_id)
        stale = set(deleted)
        if self.authoritative:
            stale |= {n[len(names.DHCP_NAMESPACE_PREFIX):] for n in nsutil.list_namespaces(names.DHCP_NAMESPACE_PREFIX)}
            if os.path.isdir(self.state_dir):
                stale |= set(os.listdir(self.state_dir))
        for network_id in stale - set(networks):
            self.server(network_id).remove()
        self.deleted -= deleted
