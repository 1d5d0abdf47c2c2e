"""A router: ``qrouter-<id>`` with a ``qr-`` port on each internal network, a ``qg-`` port on the external one,
forwarding between them, SNAT of the internal subnets to the gateway address (unless the router's
``enable_snat`` is false), and per floating IP a DNAT to the fixed address and an SNAT back (nftables
``ip stratus-nat``), as Neutron's L3 agent (legacy routers).

Each port is a veth whose ``tap<port[:11]>`` end is on its network's bridge in the L3 agent host's namespace.
The floating IPs are /32 addresses on the ``qg-`` device, so the router answers ARP for them on the external
network.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from stratus.network.dataplane import bridges, names, nft
from stratus.network.dataplane import netns as nsutil

NAT_TABLE = "ip stratus-nat"


def _cidrs(port: dict[str, Any], subnets: list[dict[str, Any]]) -> list[str]:
    prefix = {s["id"]: ipaddress.ip_network(s["cidr"]).prefixlen for s in subnets}
    return [f"{ip['ip_address']}/{prefix[ip['subnet_id']]}" for ip in port.get("fixed_ips") or ()
            if ip.get("subnet_id") in prefix]


def _v4(address: str) -> bool:
    return ipaddress.ip_interface(address).version == 4


def render_nat(router: dict[str, Any], interfaces: list[dict[str, Any]], gateway: dict[str, Any] | None,
               floating_ips: list[dict[str, Any]]) -> str:
    """The NAT table's body ("" when the router has no gateway: nothing to translate to)."""
    if gateway is None:
        return ""
    qg = names.router_port_name(gateway["id"], external=True)
    gw_ips = [c.split("/")[0] for c in _cidrs(gateway, gateway.get("subnets") or []) if _v4(c)]
    internal = sorted({str(ipaddress.ip_interface(c).network) for i in interfaces
                       for c in _cidrs(i, i.get("subnets") or []) if _v4(c)})
    fips = sorted((f for f in floating_ips if f.get("fixed_ip_address") and f.get("floating_ip_address")),
                  key=lambda f: f["floating_ip_address"])
    pre = ["  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;"]
    out = ["  chain output {", "    type nat hook output priority -100; policy accept;"]
    post = ["  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;"]
    for fip in fips:
        pre.append(f"    ip daddr {fip['floating_ip_address']} dnat to {fip['fixed_ip_address']}")
        out.append(f"    ip daddr {fip['floating_ip_address']} dnat to {fip['fixed_ip_address']}")
        post.append(f'    oifname "{qg}" ip saddr {fip["fixed_ip_address"]} snat to {fip["floating_ip_address"]}')
    snat = router.get("enable_snat", (router.get("external_gateway_info") or {}).get("enable_snat", True))
    if snat and gw_ips and internal:
        post.append(f'    oifname "{qg}" ip saddr {{ {", ".join(internal)} }} snat to {gw_ips[0]}')
    return "\n".join([*pre, "  }", *out, "  }", *post, "  }"])


class Router:
    def __init__(self, host: str, router_id: str) -> None:
        self.host = host
        self.router_id = router_id
        self.namespace = names.router_namespace(router_id)

    def sync(self, router: dict[str, Any], interfaces: list[dict[str, Any]], gateway: dict[str, Any] | None,
             floating_ips: list[dict[str, Any]]) -> None:
        """Make the namespace match: each interface and the gateway plugged with their addresses, stale ports
        gone, the default route via the external subnet's gateway, and the NAT table."""
        nsutil.ensure(self.namespace)
        nsutil.sysctl(self.namespace, "net.ipv4.ip_forward", "1")
        wanted: dict[str, list[str]] = {}
        for port in interfaces:
            dev = names.router_port_name(port["id"], external=False)
            bridges.plug_veth(self.host, port["network"], port["id"], self.namespace, dev, port["mac_address"])
            wanted[dev] = _cidrs(port, port.get("subnets") or [])
        qg = None
        if gateway is not None:
            qg = names.router_port_name(gateway["id"], external=True)
            bridges.plug_veth(self.host, gateway["network"], gateway["id"], self.namespace, qg,
                              gateway["mac_address"])
            fips = [f"{f['floating_ip_address']}/32" for f in floating_ips
                    if f.get("floating_ip_address") and f.get("fixed_ip_address")]
            wanted[qg] = _cidrs(gateway, gateway.get("subnets") or []) + fips
        with nsutil.ipr(self.namespace) as ns:
            for link in nsutil.links(ns):
                if link["ifname"][:3] in ("qr-", "qg-") and link["ifname"] not in wanted:
                    nsutil.delete_link(ns, link["ifname"])   # its tap on the bridge goes with it
            for dev, cidrs in wanted.items():
                nsutil.set_addresses(ns, dev, cidrs)
            gateway_ip = next((s.get("gateway_ip") for s in (gateway or {}).get("subnets") or ()
                               if s.get("gateway_ip") and _v4(s["gateway_ip"])), None)
            if qg is not None and gateway_ip:
                ns.route("replace", dst="0.0.0.0/0", gateway=gateway_ip, oif=nsutil.link_index(ns, qg))
            else:
                try:
                    ns.route("del", dst="0.0.0.0/0")
                except NetlinkError:
                    pass
        nft.replace_tables(self.namespace, {NAT_TABLE: render_nat(router, interfaces, gateway, floating_ips)})

    def remove(self) -> None:
        """Delete the namespace: its qr-/qg- ends and so their taps on the bridges go with it."""
        nsutil.remove(self.namespace)
