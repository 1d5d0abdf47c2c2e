"""The data plane without libvirt: veth "guests" in namespaces on two hosts' bridges, joined by the fabric.

They get their leases from each network's dnsmasq, reach each other on one network and not across two
networks (even with the same CIDR), an ICMP security group rule opens and closes ping, anti-spoofing drops a
forged source address, and a floating IP reaches a guest from a namespace on the external network through
the router's namespace. Every namespace, dnsmasq and file is removed at the end, even on failure.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from stratus.network.dataplane import firewall
from stratus.network.dataplane import netns as nsutil
from tests.integration.dataplane_env import Env, require_root_tools

pytestmark = pytest.mark.integration

EGRESS_ALL = [{"direction": "egress", "ethertype": "IPv4"}, {"direction": "egress", "ethertype": "IPv6"}]
ICMP_IN = {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp", "remote_ip_prefix": "0.0.0.0/0"}


@pytest.fixture
def env() -> Iterator[Env]:
    require_root_tools()
    env = Env()
    try:
        yield env
    finally:
        started = time.monotonic()
        env.cleanup()
        print(f"teardown {time.monotonic() - started:.2f}s")
        assert env.leftovers() == []


def _with_rules(ports: list[dict[str, Any]], rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**p, "security_group_rules": rules} if p.get("port_security_enabled", True) else p for p in ports]


def test_dhcp_l2_security_groups_and_floating_ip(env: Env) -> None:
    started = time.monotonic()
    host_a, host_b, node = env.host("a"), env.host("b"), env.host("n")
    net1 = env.network("net1", "10.10.0.0/24", "10.10.0.1", 1001)
    net2 = env.network("net2", "10.10.0.0/24", "10.10.0.1", 1002)   # the same CIDR on another segment
    ext = env.network("ext", "172.24.4.0/24", "172.24.4.1", 1003)
    dhcp1 = env.port(net1, "10.10.0.2", "network:dhcp")
    dhcp2 = env.port(net2, "10.10.0.2", "network:dhcp")
    p1 = env.port(net1, "10.10.0.11")
    p2 = env.port(net1, "10.10.0.12")
    p3 = env.port(net2, "10.10.0.13")
    env.serve_dhcp(node, net1, [dhcp1, p1, p2])
    env.serve_dhcp(node, net2, [dhcp2, p3])
    g1, g2, g3 = env.guest(host_a, net1, p1), env.guest(host_b, net1, p2), env.guest(host_b, net2, p3)
    firewall.sync(host_a, _with_rules([p1], [*EGRESS_ALL, ICMP_IN]))
    firewall.sync(host_b, _with_rules([p2, p3], [*EGRESS_ALL, ICMP_IN]))
    setup = time.monotonic() - started

    leases = {g: env.udhcpc(g) for g in (g1, g2, g3)}
    assert "LEASE eth0 10.10.0.11/24 router=10.10.0.1" in leases[g1], leases[g1]
    assert "LEASE eth0 10.10.0.12/24" in leases[g2], leases[g2]
    assert "LEASE eth0 10.10.0.13/24" in leases[g3], leases[g3]
    # The classless static route to the metadata address goes via the DHCP port (Neutron's isolated metadata).
    assert "169.254.169.254/32 10.10.0.2" in leases[g1], leases[g1]
    dhcp_done = time.monotonic() - started

    # One network across two hosts: g1 (host a) and g2 (host b) reach each other over the fabric's VXLAN.
    assert env.ping_until(g1, "10.10.0.12", True)
    assert env.ping_until(g2, "10.10.0.11", True)
    # Another network with the same CIDR: g3 is on its own segment, unreachable from net1 (and vice versa).
    assert not env.ping(g1, "10.10.0.13", count=2)
    assert not env.ping(g3, "10.10.0.11", count=2)
    assert env.ping_until(g3, "10.10.0.2", True)   # ... though its own DHCP port answers

    # Security groups: without the ICMP ingress rule g2 is not pingable; g2's own pings out still work
    # (stateful: the replies come back as established), and the rule opens it again.
    firewall.sync(host_b, _with_rules([p2, p3], EGRESS_ALL))
    assert not env.ping_until(g1, "10.10.0.12", False)
    assert env.ping_until(g2, "10.10.0.11", True)
    firewall.sync(host_b, _with_rules([p2, p3], [*EGRESS_ALL, ICMP_IN]))
    assert env.ping_until(g1, "10.10.0.12", True)
    # port_security_enabled = false: no filter at all, even without rules.
    firewall.sync(host_b, _with_rules([{**p2, "port_security_enabled": False}, p3], EGRESS_ALL))
    assert env.ping_until(g1, "10.10.0.12", True)
    firewall.sync(host_b, _with_rules([p2, p3], [*EGRESS_ALL, ICMP_IN]))

    # Anti-spoofing: g2 taking another address is dropped; an allowed address pair lets it through.
    nsutil.run(g2, ["ip", "addr", "del", "10.10.0.12/24", "dev", "eth0"])
    nsutil.run(g2, ["ip", "addr", "add", "10.10.0.99/24", "dev", "eth0"])
    assert not env.ping(g2, "10.10.0.11", count=2)
    firewall.sync(host_b, _with_rules([{**p2, "allowed_address_pairs": [{"ip_address": "10.10.0.99"}]}, p3],
                                      [*EGRESS_ALL, ICMP_IN]))
    assert env.ping_until(g2, "10.10.0.11", True)

    # A router: net1 inside, ext outside; a floating IP for g1, reached from a namespace on the external network.
    gw_port = {**env.port(ext, "172.24.4.10", "network:router_gateway"), "network": ext, "subnets": ext["subnets"]}
    qr_port = {**env.port(net1, "10.10.0.1", "network:router_interface"), "network": net1,
               "subnets": net1["subnets"]}
    outside = env.port(ext, "172.24.4.1")
    x = env.guest(node, ext, outside)
    nsutil.run(x, ["ip", "addr", "add", "172.24.4.1/24", "dev", "eth0"])
    router_id = env.tag + "-r1"
    r1 = env.router(node, router_id)
    fip = {"floating_ip_address": "172.24.4.20", "fixed_ip_address": "10.10.0.11", "port_id": p1["id"]}
    r1.sync({"id": router_id}, [qr_port], gw_port, [fip])
    assert env.ping_until(x, "172.24.4.20", True)            # DNAT to g1 through qrouter
    assert env.ping_until(g1, "172.24.4.1", True)             # g1's default route via the router, SNAT'd
    # g2 has no floating IP: it goes out by the gateway's SNAT; the outside sees the router's address.
    nsutil.run(g2, ["ip", "route", "replace", "default", "via", "10.10.0.1"])
    nsutil.run(g2, ["ip", "addr", "add", "10.10.0.12/24", "dev", "eth0"])
    assert env.ping_until(g2, "172.24.4.1", True)
    # Disassociating the floating IP takes it away from the outside.
    r1.sync({"id": router_id}, [qr_port], gw_port, [])
    assert not env.ping_until(x, "172.24.4.20", False)
    nat = nsutil.run(r1.namespace, ["nft", "list", "table", "ip", "stratus-nat"]).stdout
    assert "snat to 172.24.4.10" in nat and "172.24.4.20" not in nat
    print(f"setup {setup:.2f}s, leases after {dhcp_done:.2f}s, total {time.monotonic() - started:.2f}s")


def test_dhcp_reload_on_port_change_and_sync_after_loss(env: Env) -> None:
    """A port added later gets its lease after a SIGHUP (same dnsmasq); a sync after the namespace was lost, or
    after dnsmasq was killed, converges again."""
    node = env.host("n")
    net = env.network("net", "10.30.0.0/24", "10.30.0.1", 1011)
    server_port = env.port(net, "10.30.0.2", "network:dhcp")
    p1 = env.port(net, "10.30.0.21")
    server = env.serve_dhcp(node, net, [server_port])
    pid = server.pid()
    g1 = env.guest(node, net, p1)
    assert "LEASE" not in env.udhcpc(g1)          # no host entry yet: static ranges answer nobody else
    assert server.sync(net, net["subnets"], [server_port, p1])
    assert server.pid() == pid                    # reloaded, not restarted
    assert "LEASE eth0 10.30.0.21/24" in env.udhcpc(g1)
    nsutil.remove(server.namespace)               # the namespace is gone (dnsmasq keeps running in it)
    assert server.sync(net, net["subnets"], [server_port, p1])
    assert server.pid() not in (None, pid)
    assert "LEASE eth0 10.30.0.21/24" in env.udhcpc(g1)
    os.kill(server.pid() or 0, signal.SIGKILL)    # kill -9 of dnsmasq: the next sync starts another
    deadline = time.monotonic() + 10
    while server.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.sync(net, net["subnets"], [server_port, p1])
    assert server.pid() is not None
    assert "LEASE eth0 10.30.0.21/24" in env.udhcpc(g1)


def test_netns_cleanup_removes_namespaces_and_their_dnsmasq(env: Env) -> None:
    """``stratus netns-cleanup``'s work, limited here to this test's namespaces (others may be running)."""
    from stratus.network.dataplane import cleanup

    node = env.host("n")
    net = env.network("net", "10.80.0.0/24", "10.80.0.1", 1051)
    server = env.serve_dhcp(node, net, [env.port(net, "10.80.0.2", "network:dhcp")])
    pid = server.pid()
    router_id = env.tag + "-r"
    env.router(node, router_id).sync({"id": router_id}, [], None, [])
    mine = (env.tag, net["id"], router_id)
    removed = cleanup.remove_all(only=lambda name: any(m in name for m in mine))
    assert set(removed) >= {server.namespace, f"qrouter-{router_id}", f"stratus-host-{node}"}
    assert env.leftovers() == []
    deadline = time.monotonic() + 10
    while pid is not None and os.path.exists(f"/proc/{pid}/cmdline") and open(f"/proc/{pid}/cmdline").read():
        assert time.monotonic() < deadline, "dnsmasq still running"
        time.sleep(0.1)


async def test_namespace_sockets_send_the_service_no_sigterm(env: Env) -> None:
    """pyroute2 opens a namespace's socket from a forked child and stops it with SIGTERM: the service's event
    loop (which shuts down on SIGTERM) must not take that for its own."""
    import asyncio

    from stratus.network.dataplane import bridges, fabric

    seen: list[str] = []
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: seen.append("SIGTERM"))
    try:
        host = env.host("s")
        await asyncio.to_thread(fabric.join, host)
        await asyncio.to_thread(bridges.ensure_network, host, env.network("n", "10.90.0.0/24", None, 1061))
        await asyncio.sleep(0.3)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    assert seen == []
