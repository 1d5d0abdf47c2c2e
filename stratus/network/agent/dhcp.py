"""The DHCP agent (Neutron's ``neutron-dhcp-agent``): one dnsmasq per network it is sent, each in its
``qdhcp-<network>`` namespace plugged into the network's bridge in this host's namespace.

``network_update(network, subnets, ports)`` (a fanout to every DHCP agent) records a network's desired state
and ``network_delete`` forgets it; the worker converges every recorded network with an IPv4 subnet with DHCP
enabled (files rewritten and SIGHUP, or a restart if the subnets changed). Each agent serves from a DHCP port of
its own, as Neutron's agents do (one per agent and network, device ``dhcp<host uuid>-<network>``): a port of the
network with ``device_owner`` ``network:dhcp`` bound to this host or with that device id (an unbound one will do
when there is no such), or else one it asks the server for (``create_dhcp_port``, Neutron's call); a server
without that call leaves a network without a DHCP port unserved.

After a restart the agent asks the server for its networks (``get_active_networks_info``, as Neutron's
``sync_state``) when the server offers that call, and only then removes the ``qdhcp-`` namespaces of networks
it no longer serves; without it, those stay until their ``network_delete``.

Given the deployment's options (``conf``), the agent also runs each served network's metadata proxy on
169.254.169.254:80 in its namespace (:mod:`stratus.network.agent.metadata`), the address dnsmasq routes guests
to through the DHCP port.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from typing import Any

from stratus.network.agent.base import Agent
from stratus.network.agent.metadata import MetadataProxies
from stratus.network.agent_rpc import DHCP_TOPIC
from stratus.network.dataplane import dhcp, names
from stratus.network.dataplane import netns as nsutil

LOG = logging.getLogger(__name__)


class DhcpAgent(Agent):
    topic = DHCP_TOPIC
    agent_type = "DHCP agent"
    binary = "neutron-dhcp-agent"

    def __init__(self, transport: Any, host: str, state_dir: str, *, conf: Any = None, **kwargs: Any) -> None:
        super().__init__(transport, host, **kwargs)
        self.metadata = MetadataProxies(conf, self._metadata_requester) if conf is not None else None
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
        infos = await self.optional_call("get_active_networks_info")
        if infos is None:
            return
        for info in infos:
            self.networks[info["network"]["id"]] = (info["network"], info.get("subnets") or [],
                                                    info.get("ports") or [])
        self.authoritative = True
        self.kick()

    def device_id(self, network_id: str) -> str:
        return f"dhcp{uuid.uuid5(uuid.NAMESPACE_DNS, self.host)}-{network_id}"

    def own_port(self, network_id: str, ports: list[dict[str, Any]]) -> dict[str, Any] | None:
        candidates = [p for p in ports if p.get("device_owner") == dhcp.DHCP_OWNER]
        mine = [p for p in candidates
                if p.get("binding:host_id") == self.host or p.get("device_id") == self.device_id(network_id)]
        unbound = [p for p in candidates if not p.get("binding:host_id") and not p.get("device_id")]
        return (mine or unbound or [None])[0]

    async def sync(self) -> None:
        servers: dict[str, dict[str, Any] | None] = {}
        for network_id, (network, subnets, ports) in list(self.networks.items()):
            port = self.own_port(network_id, ports)
            wants_dhcp = any(s.get("ip_version", 4) == 4 and s.get("enable_dhcp", True) for s in subnets)
            if port is None and wants_dhcp:
                port = await self._create_port(network, subnets)
                if port is not None and network_id in self.networks:
                    self.networks[network_id] = (network, subnets, [*ports, port])
            servers[network_id] = port
        await asyncio.to_thread(self._converge, dict(self.networks), servers, set(self.deleted))
        if self.metadata is not None:
            await self.metadata.sync({n for n, port in servers.items() if port is not None and n in self.networks})

    async def _metadata_requester(self, network_id: str, address: str) -> dict[str, Any] | None:
        """The port of ``network_id`` with fixed IP ``address``: its ``device_id`` and ``tenant_id``."""
        found: dict[str, Any] | None = await self.optional_call("get_metadata_requester", network_id=network_id,
                                                                ip_address=address)
        return found

    async def stop(self) -> None:
        await super().stop()
        if self.metadata is not None:
            await self.metadata.close()

    async def _create_port(self, network: dict[str, Any], subnets: list[dict[str, Any]]) -> dict[str, Any] | None:
        """This agent's DHCP port on the network, made by the server (Neutron's ``create_dhcp_port``: device
        ``dhcp<host uuid>-<network>``, an address on each DHCP subnet, bound to this host)."""
        try:
            port = await self.optional_call("create_dhcp_port", network_id=network["id"])
        except Exception as exc:
            LOG.warning("DHCP agent %s: no DHCP port for network %s: %s", self.host, network["id"], exc)
            return None
        if port is None:
            LOG.warning("DHCP agent %s: the server made no DHCP port for network %s: not served", self.host,
                        network["id"])
        return port or None

    def _converge(self, networks: dict[str, tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]],
                  servers: dict[str, dict[str, Any] | None], deleted: set[str]) -> None:
        for network_id, (network, subnets, ports) in networks.items():
            try:
                if servers.get(network_id) is None:
                    self.server(network_id).remove()
                else:
                    self.server(network_id).sync(network, subnets, ports, servers[network_id])
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
