"""The agents' bookkeeping without the kernel: which ports a Linux bridge agent keeps, which DHCP port a DHCP
agent serves from (or asks for), and where the L3 agent finds a router port's segment. The kernel side is in
tests/integration/test_dataplane_agents.py."""

from __future__ import annotations

from typing import Any

from stratus.network.agent.dhcp import DhcpAgent
from stratus.network.agent.l3 import L3Agent
from stratus.network.agent.linuxbridge import LinuxBridgeAgent
from stratus.rpc.local import LocalTransport

NET = {"id": "n1", "provider:segmentation_id": 77}


class Server:
    def __init__(self, with_create: bool) -> None:
        self.with_create = with_create
        self.asked: list[dict[str, Any]] = []

    async def get_device_details(self, context: dict[str, Any], host: str, port_id: str) -> dict[str, Any] | None:
        return {"id": port_id, "network": NET} if port_id == "known" else None

    def __getattr__(self, name: str) -> Any:
        if name == "create_dhcp_port" and self.with_create:
            async def create(context: dict[str, Any], host: str, network_id: str) -> dict[str, Any]:
                self.asked.append({"host": host, "network_id": network_id})
                return {"id": "d9", "network_id": network_id, "device_owner": "network:dhcp",
                        "binding:host_id": host}
            return create
        raise AttributeError(name)


async def _transport(with_create: bool = True) -> tuple[LocalTransport, Server]:
    transport, server = LocalTransport(), Server(with_create)
    await transport.listen("network_server", server)
    return transport, server


async def test_linuxbridge_keeps_only_its_hosts_ports() -> None:
    transport, _ = await _transport()
    agent = LinuxBridgeAgent(transport, "h1")
    await agent.port_update({}, {"id": "p1", "network_id": "n1", "binding:host_id": "h1"})
    await agent.port_update({}, {"id": "p2", "network_id": "n1", "binding:host_id": "h1"})
    await agent.port_update({}, {"id": "p2", "network_id": "n1", "binding:host_id": "h2"})   # moved away
    assert set(agent.ports) == {"p1"}
    agent.up.add("p1")
    await agent.port_delete({}, "p1", "n1")
    assert agent.ports == {} and agent.up == set()


async def test_dhcp_agent_serves_from_its_own_port() -> None:
    transport, server = await _transport()
    agent = DhcpAgent(transport, "h1", "/nonexistent")
    theirs = {"id": "d1", "device_owner": "network:dhcp", "binding:host_id": "h2", "device_id": "dhcp-x-n1"}
    mine = {"id": "d2", "device_owner": "network:dhcp", "binding:host_id": "h1", "device_id": "dhcp-y-n1"}
    unbound = {"id": "d3", "device_owner": "network:dhcp"}
    vm = {"id": "v1", "device_owner": "compute:nova"}
    assert agent.own_port("n1", [theirs, mine, unbound, vm]) == mine
    assert agent.own_port("n1", [theirs, unbound, vm]) == unbound
    assert agent.own_port("n1", [theirs, vm]) is None
    by_device = {**theirs, "device_id": agent.device_id("n1")}
    assert agent.own_port("n1", [by_device]) == by_device
    assert agent.device_id("n1") == DhcpAgent(transport, "h1", "/x").device_id("n1") != \
        DhcpAgent(transport, "h2", "/x").device_id("n1")
    # No port of its own: it asks the server for one (Neutron's create_dhcp_port), bound to its host.
    subnets = [{"id": "s4", "ip_version": 4, "enable_dhcp": True}, {"id": "s6", "ip_version": 6}]
    port = await agent._create_port(NET, subnets)
    assert port is not None and port["binding:host_id"] == "h1" and port["device_owner"] == "network:dhcp"
    assert server.asked == [{"host": "h1", "network_id": NET["id"]}]


async def test_dhcp_agent_without_create_dhcp_port_serves_nothing() -> None:
    transport, _ = await _transport(with_create=False)
    agent = DhcpAgent(transport, "h1", "/nonexistent")
    assert await agent._create_port(NET, [{"id": "s4", "ip_version": 4}]) is None


async def test_l3_agent_takes_a_router_ports_network_from_the_server() -> None:
    transport, _ = await _transport()
    agent = L3Agent(transport, "h1")
    assert (await agent._with_network({"id": "known", "network_id": "n1"}))["network"] == NET
    sent = {"id": "other", "network_id": "n1", "network": NET}
    assert await agent._with_network(sent) is sent
    unknown = await agent._with_network({"id": "unknown", "network_id": "n2"})
    assert unknown["network"] == {"id": "n2"}
