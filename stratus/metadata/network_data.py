"""network_data.json and the EC2 addresses from Nova's network info model (``nova/virt/netutils.py``).

Network info is a list of VIFs as Nova caches them per instance: ``{id, address (MAC), type, devname, network:
{id, meta: {mtu}, subnets: [{cidr, version, gateway: {address}, dns: [{address}], routes: [{cidr, gateway}],
ips: [{address, version, floating_ips: [{address}]}], meta: {dhcp_server, enable_dhcp, ipv6_address_mode}}]}}``.
Stratus instances have none until guest networking plugs NICs; the documents are then ``{}`` and no addresses.
"""

from __future__ import annotations

import ipaddress
from typing import Any

#: VIF types shown as themselves; any other is a physical link, 'phy' (Nova's LEGACY_EXPOSED_VIF_TYPES)
EXPOSED_VIF_TYPES = {"bridge", "dvs", "hw_veb", "hyperv", "ovs", "tap", "vhostuser", "vif"}


def _version(item: dict[str, Any]) -> int:
    if item.get("version"):
        return int(item["version"])
    return ipaddress.ip_network(item["cidr"], strict=False).version if item.get("cidr") else 4


def ec2_ip_info(network_info: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Nova's ``get_ec2_ip_info``: the fixed IPv4 addresses and the floating addresses of every VIF."""
    fixed, floating = [], []
    for vif in network_info:
        for subnet in (vif.get("network") or {}).get("subnets") or []:
            for ip in subnet.get("ips") or []:
                if _version(ip) == 4:
                    fixed.append(str(ip["address"]))
                floating += [str(f["address"]) for f in ip.get("floating_ips") or []]
    return fixed, floating


def _link(vif: dict[str, Any], number: int) -> dict[str, Any]:
    network = vif["network"]
    dhcp = any((s.get("meta") or {}).get("dhcp_server") for s in network.get("subnets") or [])
    return {"id": vif.get("devname") or f"interface{number}", "vif_id": vif["id"],
            "type": vif.get("type") if vif.get("type") in EXPOSED_VIF_TYPES else "phy",
            "mtu": None if dhcp else (network.get("meta") or {}).get("mtu"),
            "ethernet_mac_address": vif.get("address")}


def _dns(subnet: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "dns", "address": ip.get("address")} for ip in subnet.get("dns") or []]


def _net(vif: dict[str, Any], subnet: dict[str, Any], version: int, number: int, link_id: str) -> dict[str, Any]:
    meta = subnet.get("meta") or {}
    net_type = ""
    if meta.get("ipv6_address_mode") is not None:
        net_type = f"_{meta['ipv6_address_mode']}"
    elif meta.get("dhcp_server") is not None or meta.get("enable_dhcp"):
        return {"id": f"network{number}", "type": f"ipv{version}_dhcp", "link": link_id,
                "network_id": vif["network"]["id"]}
    ip = subnet["ips"][0]
    cidr = ipaddress.ip_network(subnet["cidr"], strict=False)
    routes = []
    gateway = (subnet.get("gateway") or {}).get("address")
    if gateway:
        default = "0.0.0.0" if version == 4 else "::"
        routes.append({"network": default, "netmask": default, "gateway": gateway})
    for route in subnet.get("routes") or []:
        dest = ipaddress.ip_network(route["cidr"], strict=False)
        routes.append({"network": str(dest.network_address), "netmask": str(dest.netmask),
                       "gateway": route["gateway"]["address"]})
    return {"id": f"network{number}", "type": f"ipv{version}{net_type}", "link": link_id,
            "ip_address": ip["address"], "netmask": str(cidr.netmask), "routes": routes,
            "network_id": vif["network"]["id"], "services": _dns(subnet)}


def network_metadata(network_info: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Nova's ``get_network_metadata``: links (VIFs), networks (the first IPv4 and IPv6 subnet of each) and DNS
    services; None without network info (the API then serves ``{}``)."""
    if not network_info:
        return None
    links: list[dict[str, Any]] = []
    nets: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    ifc_num = net_num = -1
    for vif in network_info:
        network = vif.get("network") or {}
        subnets = network.get("subnets") or []
        if not subnets:
            continue
        v4 = next((s for s in subnets if _version(s) == 4), None)
        v6 = next((s for s in subnets if _version(s) == 6), None)
        ifc_num += 1
        link: dict[str, Any] | None = None
        if v4 or v6:
            link = _link(vif, ifc_num)
            links.append(link)
        for version, subnet in ((4, v4), (6, v6)):
            if subnet and subnet.get("ips") and link is not None:
                net_num += 1
                nets.append(_net(vif, subnet, version, net_num, link["id"]))
                services += [dns for dns in _dns(subnet) if dns not in services]
    return {"links": links, "networks": nets, "services": services}
