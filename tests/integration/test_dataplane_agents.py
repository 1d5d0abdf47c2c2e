"""The agents over a real transport (in-process), against a recording stand-in for the server's side of the
RPC seam: ports bound, reported up when their tap appears and down when it goes, DHCP served from the
network_update cast, security groups refreshed on security_groups_updated, a router from router_update, and
a restarted agent picking its ports up again from the kernel (the taps' aliases) and get_device_details."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from stratus.network.agent.dhcp import DhcpAgent
from stratus.network.agent.l3 import L3Agent
from stratus.network.agent.linuxbridge import LinuxBridgeAgent
from stratus.network.dataplane import bridges, names
from stratus.network.dataplane import netns as nsutil
from stratus.rpc.local import LocalTransport
from tests.integration.dataplane_env import Env, Server, require_root_tools

pytestmark = pytest.mark.integration

EGRESS = {"direction": "egress", "ethertype": "IPv4"}
ICMP_IN = {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"}


async def until(predicate: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.fixture
async def world() -> AsyncIterator[tuple[Env, LocalTransport, Server, list[Any]]]:
    require_root_tools()
    env, transport, server = Env(), LocalTransport(), Server()
    await transport.listen("network_server", server)
    agents: list[Any] = []
    try:
        yield env, transport, server, agents
    finally:
        for agent in agents:
            await agent.stop()
        await transport.stop()
        await asyncio.to_thread(env.cleanup)
        assert env.leftovers() == []


async def test_agents_converge_the_kernel(world: tuple[Env, LocalTransport, Server, list[Any]]) -> None:
    env, transport, server, agents = world
    host_a, host_b = env.host("a"), env.host("b")
    net = env.network("net", "10.40.0.0/24", "10.40.0.1", 1021)
    dhcp_port = env.port(net, "10.40.0.2", "network:dhcp")
    p1 = {**env.port(net, "10.40.0.11"), "binding:host_id": host_a, "network": net, "subnets": net["subnets"],
          "security_group_rules": [EGRESS, ICMP_IN]}
    p2 = {**env.port(net, "10.40.0.12"), "binding:host_id": host_b, "network": net, "subnets": net["subnets"],
          "security_group_rules": [EGRESS, ICMP_IN]}
    server.ports = {p1["id"]: p1, p2["id"]: p2}
    server.dhcp_ports = {net["id"]: dhcp_port}   # the network has no DHCP port: the agent asks for one
    lb_a = LinuxBridgeAgent(transport, host_a, resync_interval=1)
    lb_b = LinuxBridgeAgent(transport, host_b, resync_interval=1)
    dhcp_agent = DhcpAgent(transport, host_b, env.state_dir, resync_interval=1)
    l3 = L3Agent(transport, host_b, resync_interval=1)
    for agent in (lb_a, lb_b, dhcp_agent, l3):
        await agent.start()
        agents.append(agent)
    assert set(server.states) == {f"Linux bridge agent@{host_a}", f"Linux bridge agent@{host_b}",
                                  f"DHCP agent@{host_b}", f"L3 agent@{host_b}"}

    started = time.monotonic()
    await transport.cast("dhcp_agent", "network_update", {}, server=host_b, network=net, subnets=net["subnets"],
                         ports=[p1, p2])
    await transport.cast("network_agent", "port_update", {}, server=host_a, port=p1)
    await transport.cast("network_agent", "port_update", {}, server=host_b, port=p2)
    await lb_a.settle()
    assert ("up", host_a, p1["id"]) not in server.calls      # bound, but no tap yet: not up
    # The "guests" appear (libvirt would create the taps): each agent reports its port up.
    g1 = await asyncio.to_thread(env.guest, host_a, net, p1)
    g2 = await asyncio.to_thread(env.guest, host_b, net, p2)
    await until(lambda: {("up", host_a, p1["id"]), ("up", host_b, p2["id"])} <= set(server.calls))
    await until(lambda: env.server_running(net["id"]))
    up = time.monotonic() - started
    assert [p["device_owner"] for p in server.created] == ["network:dhcp"]
    assert server.created[0]["binding:host_id"] == host_b
    assert "LEASE eth0 10.40.0.11/24" in await asyncio.to_thread(env.udhcpc, g1)
    assert "LEASE eth0 10.40.0.12/24" in await asyncio.to_thread(env.udhcpc, g2)
    assert await asyncio.to_thread(env.ping_until, g2, "10.40.0.11", True)

    # The server changes p1's groups: the agent fetches the port again and ICMP to g1 is closed.
    server.ports[p1["id"]] = {**p1, "security_group_rules": [EGRESS]}
    await transport.cast("network_agent", "security_groups_updated", {}, server=host_a, port_ids=[p1["id"]])
    assert not await asyncio.to_thread(env.ping_until, g2, "10.40.0.11", False)

    # kill -9 and restart of host a's agent: it finds p1's tap (its alias), asks the server, and keeps the filter.
    await lb_a.stop()
    agents.remove(lb_a)
    lb_a2 = LinuxBridgeAgent(transport, host_a, resync_interval=1)
    await lb_a2.start()
    agents.append(lb_a2)
    await lb_a2.settle()
    assert set(lb_a2.ports) == {p1["id"]}
    rules = nsutil.run(names.host_namespace(host_a), ["nft", "list", "table", "inet", "stratus-sg"]).stdout
    assert "l4proto icmp" not in rules and "ingress-1" in rules

    # A router from router_update: its qr- port answers on the network. The server sends router ports without
    # their network: the agent gets it (the segment to plug into) from get_device_details.
    qr = {**env.port(net, "10.40.0.1", "network:router_interface"), "subnets": net["subnets"]}
    server.ports[qr["id"]] = {**qr, "network": net}
    router_id = env.tag + "-router"
    env.routers.append(l3.router_for(router_id))
    await transport.cast("l3_agent", "router_update", {}, server=host_b, router={"id": router_id}, interfaces=[qr],
                         gateway=None, floating_ips=[])
    await until(lambda: nsutil.exists(names.router_namespace(router_id)))
    assert await asyncio.to_thread(env.ping_until, g2, "10.40.0.1", True)
    await transport.cast("l3_agent", "router_delete", {}, server=host_b, router_id=router_id)
    await until(lambda: not nsutil.exists(names.router_namespace(router_id)))

    # The guest on host b goes (its tap with it): reported down; the port deleted; the network's DHCP deleted.
    await asyncio.to_thread(bridges.unplug, host_b, p2["id"])
    await until(lambda: ("down", host_b, p2["id"]) in server.calls)
    await transport.cast("network_agent", "port_delete", {}, server=host_b, port_id=p2["id"], network_id=net["id"])
    await transport.cast("dhcp_agent", "network_delete", {}, server=host_b, network_id=net["id"])
    await until(lambda: not nsutil.exists(names.dhcp_namespace(net["id"])))
    await lb_b.settle()
    while names.bridge_name(net["id"]) in await asyncio.to_thread(bridges.bridges, host_b):
        assert time.monotonic() - started < 60
        await asyncio.sleep(0.2)
    print(f"ports up {up:.2f}s after the casts, DHCP served")


async def test_restarted_agent_removes_the_bridges_of_networks_gone_meanwhile(
        world: tuple[Env, LocalTransport, Server, list[Any]]) -> None:
    """kill -9, then the network went while the agent was down: its bridge, with nothing on it but its VXLAN
    uplink, goes on the restarted agent's first pass; a bridge with a port on it stays."""
    env, transport, _, agents = world
    host = env.host("a")
    gone = env.network("gone", "10.70.0.0/24", None, 1041)
    kept = env.network("kept", "10.71.0.0/24", None, 1042)
    await asyncio.to_thread(bridges.ensure_network, host, gone)
    await asyncio.to_thread(env.guest, host, kept, env.port(kept, "10.71.0.5"))   # a tap it knows nothing of
    agent = LinuxBridgeAgent(transport, host, resync_interval=1)
    await agent.start()
    agents.append(agent)
    await agent.settle()
    assert await asyncio.to_thread(bridges.bridges, host) == [names.bridge_name(kept["id"])]
