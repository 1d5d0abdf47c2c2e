"""A network's DHCP server: dnsmasq in ``qdhcp-<network>``, as Neutron's DHCP agent runs it.

The namespace holds the DHCP port's ``tap<port[:11]>`` (a veth to the network's bridge in the agent host's
namespace) with the port's addresses, plus 169.254.169.254/32 for the metadata proxy. dnsmasq serves only
static leases (``static`` ranges): one host entry MAC → IP per port of the network, and per subnet the
gateway, DNS servers, host routes and the classless static route to the metadata address via the DHCP port
(Neutron's ``enable_isolated_metadata``). A change of ports or options rewrites the files and sends SIGHUP, as
Neutron's ``reload_allocations``; a change of subnets (the ranges are on the command line) restarts dnsmasq.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import time
from typing import Any

from stratus.network.dataplane import bridges, names
from stratus.network.dataplane import netns as nsutil

LOG = logging.getLogger(__name__)
METADATA_ADDRESS = "169.254.169.254"
LEASE_SECONDS = 86400
DHCP_OWNER = "network:dhcp"


def dhcp_port(ports: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((p for p in ports if p.get("device_owner") == DHCP_OWNER), None)


def _ip_on(port: dict[str, Any], subnet: dict[str, Any]) -> str | None:
    return next((ip["ip_address"] for ip in port.get("fixed_ips") or () if ip.get("subnet_id") == subnet["id"]),
                None)


class DhcpServer:
    """One network's dnsmasq, its files under ``state_dir/<network id>/`` and its namespace."""

    def __init__(self, state_dir: str, host: str, network_id: str) -> None:
        self.host = host
        self.network_id = network_id
        self.namespace = names.dhcp_namespace(network_id)
        self.dir = os.path.join(state_dir, network_id)

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def pid(self) -> int | None:
        """dnsmasq's pid if it is running for this network (its pid file, checked against /proc)."""
        try:
            pid = int(open(self._path("pid")).read().strip())
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        except (OSError, ValueError):
            return None
        return pid if b"dnsmasq" in cmdline and self.dir.encode() in cmdline else None

    def render(self, network: dict[str, Any], subnets: list[dict[str, Any]], ports: list[dict[str, Any]],
               server: dict[str, Any] | None = None) -> dict[str, str]:
        """The files dnsmasq reads: ``host`` (MAC,name,IP), ``opts`` (per-subnet options) and ``args`` (the
        command-line ranges, kept to tell a reload from a restart). ``server``: this server's DHCP port (by
        default the network's first)."""
        v4 = [s for s in subnets if s.get("ip_version", 4) == 4 and s.get("enable_dhcp", True)]
        server = server or dhcp_port(ports)
        hosts, opts, args = [], [], []
        for subnet in v4:
            net = ipaddress.ip_network(subnet["cidr"])
            tag = f"subnet-{subnet['id']}"
            args.append(f"--dhcp-range=set:{tag},{net.network_address},static,{net.netmask},{LEASE_SECONDS}s")
            gateway = subnet.get("gateway_ip")
            dns = subnet.get("dns_nameservers") or []
            if dns:
                opts.append(f"tag:{tag},option:dns-server,{','.join(dns)}")
            routes = [(r["destination"], r["nexthop"]) for r in subnet.get("host_routes") or ()]
            server_ip = _ip_on(server, subnet) if server else None
            if server_ip:
                routes.insert(0, (f"{METADATA_ADDRESS}/32", server_ip))
            if gateway:
                routes.append(("0.0.0.0/0", gateway))
                opts.append(f"tag:{tag},option:router,{gateway}")
            else:
                opts.append(f"tag:{tag},option:router")
            if routes:
                flat = ",".join(f"{d},{n}" for d, n in routes)
                opts.append(f"tag:{tag},option:classless-static-route,{flat}")
                opts.append(f"tag:{tag},249,{flat}")
            mtu = network.get("mtu")
            if mtu:
                opts.append(f"tag:{tag},option:mtu,{mtu}")
        for port in sorted(ports, key=lambda p: p["id"]):
            for subnet in v4:
                ip = _ip_on(port, subnet)
                if ip:
                    name = "host-" + ip.replace(".", "-")
                    hosts.append(f"{port['mac_address']},{name},{ip}")
        return {"host": "\n".join(hosts) + "\n", "opts": "\n".join(opts) + "\n", "args": "\n".join(args) + "\n"}

    def sync(self, network: dict[str, Any], subnets: list[dict[str, Any]], ports: list[dict[str, Any]],
             server: dict[str, Any] | None = None) -> bool:
        """Make the namespace, the DHCP port (``server``, by default the network's first) and dnsmasq match the
        network; True if dnsmasq serves it. A network with no DHCP port or no IPv4 subnet with DHCP enabled has
        no server (and any old one is removed)."""
        server = server or dhcp_port(ports)
        files = self.render(network, subnets, ports, server)
        if server is None or not files["args"].strip():
            self.remove()
            return False
        nsutil.ensure(self.namespace)
        tap = names.tap_name(server["id"])
        bridges.plug_veth(self.host, network, server["id"], self.namespace, tap, server["mac_address"])
        prefix = {s["id"]: ipaddress.ip_network(s["cidr"]).prefixlen for s in subnets}
        cidrs = [f"{ip['ip_address']}/{prefix[ip['subnet_id']]}" for ip in server.get("fixed_ips") or ()
                 if ip.get("subnet_id") in prefix]
        with nsutil.ipr(self.namespace) as ns:
            nsutil.set_addresses(ns, tap, [*cidrs, f"{METADATA_ADDRESS}/32"])
        os.makedirs(self.dir, exist_ok=True)
        old_args = self._read("args")
        changed = False
        for name, text in files.items():
            if self._read(name) != text:
                with open(self._path(name) + ".tmp", "w") as f:
                    f.write(text)
                os.replace(self._path(name) + ".tmp", self._path(name))
                changed = True
        pid = self.pid()
        if pid is not None and not self._in_namespace(pid):
            self._stop(pid)   # its namespace was deleted and remade: it serves a device that is gone
            pid = None
        if pid is not None and old_args == files["args"]:
            if changed:
                os.kill(pid, signal.SIGHUP)   # re-reads the host and opts files
            return True
        if pid is not None:
            self._stop(pid)
        self._start(tap, files["args"].split())
        return True

    def _in_namespace(self, pid: int) -> bool:
        try:
            mine = os.stat(f"/proc/{pid}/ns/net")
            ns = os.stat(os.path.join(nsutil.NETNS_DIR, self.namespace))
        except OSError:
            return False
        return (mine.st_dev, mine.st_ino) == (ns.st_dev, ns.st_ino)

    def _read(self, name: str) -> str | None:
        try:
            with open(self._path(name)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _start(self, tap: str, ranges: list[str]) -> None:
        argv = ["dnsmasq", "--no-hosts", "--no-resolv", "--port=0", "--user=root", "--group=root",
                f"--pid-file={self._path('pid')}", f"--dhcp-hostsfile={self._path('host')}",
                f"--dhcp-optsfile={self._path('opts')}", f"--dhcp-leasefile={self._path('leases')}",
                f"--interface={tap}", "--except-interface=lo", "--bind-interfaces", "--dhcp-authoritative",
                "--conf-file=/dev/null", "--domain=openstacklocal",
                f"--log-facility={self._path('log')}", "--log-dhcp", "--dhcp-lease-max=16777216", *ranges]
        nsutil.run(self.namespace, argv)
        LOG.info("dnsmasq for network %s started in %s", self.network_id, self.namespace)

    def _stop(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not os.path.exists(f"/proc/{pid}"):
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.02)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Stop dnsmasq and delete its files and namespace (the DHCP port's veth goes with the namespace)."""
        pid = self.pid()
        if pid is not None:
            self._stop(pid)
        nsutil.remove(self.namespace)
        shutil.rmtree(self.dir, ignore_errors=True)
