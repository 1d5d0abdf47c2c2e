"""A throwaway data plane for the integration tests: host names, networks and ports unique to the run, veth
"guests" in namespaces of their own (udhcpc and ping from busybox), and a teardown that removes every
namespace, process and file the test made, even when it failed."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from stratus.network.dataplane import bridges, dhcp, fabric, names, router
from stratus.network.dataplane import netns as nsutil

UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc's hook: apply the lease (address, classless static routes or else the router) and print it.
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    if [ -n "$staticroutes" ]; then
        set -- $staticroutes
        while [ $# -ge 2 ]; do ip route replace "$1" via "$2" dev "$interface"; shift 2; done
    elif [ -n "$router" ]; then
        ip route replace default via "${router%% *}" dev "$interface"
    fi
    echo "LEASE $interface $ip/$mask router=$router routes=$staticroutes dns=$dns"
    ;;
esac
"""


def require_root_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("the data plane needs root (network namespaces, nftables)")
    proc = subprocess.run([str(Path(__file__).resolve().parents[2] / "scripts" / "network.sh"), "install"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"scripts/network.sh install failed: {proc.stderr}")


class Env:
    """What one test made, so that ``cleanup`` removes exactly that."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.state_dir = tempfile.mkdtemp(prefix="stratus-dp-")
        self.hosts: set[str] = set()
        self.guests: set[str] = set()
        self.dhcp: list[dhcp.DhcpServer] = []
        self.routers: list[router.Router] = []
        self.network_ids: list[str] = []
        self.script = os.path.join(self.state_dir, "udhcpc.sh")
        with open(self.script, "w") as f:
            f.write(UDHCPC_SCRIPT)
        os.chmod(self.script, 0o755)

    def host(self, name: str) -> str:
        host = f"dp{self.tag}{name}"
        self.hosts.add(host)
        return host

    def network(self, name: str, cidr: str, gateway: str | None, vni: int) -> dict[str, Any]:
        net_id = str(uuid.uuid4())
        self.network_ids.append(net_id)
        subnet = {"id": str(uuid.uuid4()), "network_id": net_id, "cidr": cidr, "ip_version": 4,
                  "gateway_ip": gateway, "enable_dhcp": True, "dns_nameservers": [], "host_routes": []}
        return {"id": net_id, "name": name, "provider:segmentation_id": vni, "mtu": 1500, "subnets": [subnet]}

    @staticmethod
    def port(network: dict[str, Any], ip: str, owner: str = "compute:nova", **extra: Any) -> dict[str, Any]:
        port_id = str(uuid.uuid4())
        mac = "fa:16:3e:" + ":".join(port_id.replace("-", "")[i:i + 2] for i in (0, 2, 4))
        return {"id": port_id, "network_id": network["id"], "mac_address": mac, "device_owner": owner,
                "fixed_ips": [{"subnet_id": network["subnets"][0]["id"], "ip_address": ip}], **extra}

    def serve_dhcp(self, host: str, network: dict[str, Any], ports: list[dict[str, Any]]) -> dhcp.DhcpServer:
        server = dhcp.DhcpServer(self.state_dir, host, network["id"])
        self.dhcp.append(server)
        assert server.sync(network, network["subnets"], ports)
        return server

    def router(self, host: str, router_id: str) -> router.Router:
        r = router.Router(host, router_id)
        self.routers.append(r)
        return r

    def guest(self, host: str, network: dict[str, Any], port: dict[str, Any]) -> str:
        """A veth "guest": namespace ``<tag>-g-<port>`` whose eth0 is the port's tap on the host's bridge."""
        ns = f"dp{self.tag}-g-{port['id'][:8]}"
        self.guests.add(ns)
        bridges.plug_veth(host, network, port["id"], ns, "eth0", port["mac_address"])
        return ns

    def udhcpc(self, guest: str) -> str:
        """Ask for a lease on eth0 (a few tries); returns udhcpc's output with the LEASE line."""
        proc = nsutil.run(guest, ["busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "8", "-T", "1",
                                  "-O", "staticroutes", "-s", self.script], check=False, timeout=60)
        return proc.stdout + proc.stderr

    @staticmethod
    def ping(namespace: str, address: str, count: int = 1, wait: int = 1) -> bool:
        proc = nsutil.run(namespace, ["busybox", "ping", "-c", str(count), "-W", str(wait), address],
                          check=False, timeout=30)
        return proc.returncode == 0

    def ping_until(self, namespace: str, address: str, expect: bool, seconds: float = 10) -> bool:
        """Ping until the result is ``expect`` (a filter change or an ARP entry can take a moment)."""
        deadline = time.monotonic() + seconds
        while True:
            ok = self.ping(namespace, address)
            if ok == expect or time.monotonic() > deadline:
                return ok
            time.sleep(0.2)

    def server_running(self, network_id: str, state_dir: str | None = None) -> bool:
        return dhcp.DhcpServer(state_dir or self.state_dir, "", network_id).pid() is not None

    def leftovers(self) -> list[str]:
        ids = [self.tag, *self.network_ids] + [r.router_id for r in self.routers]
        return [n for n in nsutil.list_namespaces() if any(i in n for i in ids)]

    def cleanup(self) -> None:
        for server in self.dhcp:
            server.remove()
        for network_id in self.network_ids:   # those an agent served (with the state dir given, or DataplaneAgents')
            dhcp.DhcpServer(self.state_dir, "", network_id).remove()
            dhcp.DhcpServer(os.path.join(self.state_dir, "dhcp"), "", network_id).remove()
        for r in self.routers:
            r.remove()
        for ns in self.guests:
            nsutil.remove(ns)
        for host in self.hosts:
            fabric.leave(host)
        fabric.remove_fabric_if_unused()
        subprocess.run(["rm", "-rf", self.state_dir], check=False)


class Server:
    """The ``network_server`` topic: records what the agents said, answers get_device_details from ``ports``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.ports: dict[str, dict[str, Any]] = {}
        self.states: dict[str, str] = {}
        #: network id → the DHCP port create_dhcp_port answers with (Neutron's call; None: no such method)
        self.dhcp_ports: dict[str, dict[str, Any]] | None = None
        self.created: list[dict[str, Any]] = []

    async def report_state(self, context: dict[str, Any], host: str, agent_type: str, binary: str,
                           configurations: dict[str, Any], **extra: Any) -> None:
        self.states[f"{agent_type}@{host}"] = binary

    async def get_device_details(self, context: dict[str, Any], host: str, port_id: str) -> dict[str, Any] | None:
        return next((p for pid, p in self.ports.items() if pid.startswith(port_id)), None)

    async def create_dhcp_port(self, context: dict[str, Any], host: str, network_id: str) -> dict[str, Any]:
        if self.dhcp_ports is None:
            raise AttributeError("create_dhcp_port")
        self.created.append({"network_id": network_id, "binding:host_id": host, "device_owner": "network:dhcp"})
        return {**self.dhcp_ports[network_id], "binding:host_id": host,
                "device_id": f"dhcp{uuid.uuid5(uuid.NAMESPACE_DNS, host)}-{network_id}"}

    async def update_device_up(self, context: dict[str, Any], host: str, port_id: str) -> None:
        self.calls.append(("up", host, port_id))

    async def update_device_down(self, context: dict[str, Any], host: str, port_id: str) -> None:
        self.calls.append(("down", host, port_id))


def vif(port: dict[str, Any], network: dict[str, Any], dhcp_address: str | None = None) -> dict[str, Any]:
    """Nova's network_info entry for a port bound by the linuxbridge mechanism (docs/networking-dataplane.md)."""
    bridge = names.bridge_name(network["id"])
    subnets = []
    for subnet in network["subnets"]:
        ips = [{"address": ip["ip_address"], "type": "fixed", "version": 4, "floating_ips": []}
               for ip in port["fixed_ips"] if ip["subnet_id"] == subnet["id"]]
        gateway = subnet.get("gateway_ip")
        subnets.append({"cidr": subnet["cidr"], "version": 4, "ips": ips, "routes": [], "dns": [],
                        "gateway": {"address": gateway, "type": "gateway", "version": 4} if gateway else {},
                        "meta": {"dhcp_server": dhcp_address} if dhcp_address else {}})
    return {"id": port["id"], "address": port["mac_address"], "type": "bridge",
            "details": {"port_filter": True, "connectivity": "l2", "bridge_name": bridge},
            "devname": names.tap_name(port["id"]), "vnic_type": "normal", "active": False,
            "preserve_on_delete": False, "profile": {},
            "network": {"id": network["id"], "bridge": bridge, "label": network["name"], "subnets": subnets,
                        "meta": {"tenant_id": "p", "mtu": network.get("mtu"), "injected": False}}}
