"""Nova's network info model (``nova.network.model``) as plain JSON: what the instance info cache stores, what the
compute passes to its driver, what the server views and the metadata service read.

A VIF is made from a Neutron port, its network, the subnets of its fixed IPs and the floating IPs on it, as Nova's
``_build_network_info_model`` does.
"""

from __future__ import annotations

import ipaddress
from typing import Any

#: Neutron's binding:vif_type values a compute cannot plug
UNBOUND_VIF_TYPES = ("unbound", "binding_failed")
#: the attributes of a network and of a subnet a VIF is made of (what Nova's side asks for, ``fields=``)
NETWORK_FIELDS = ("id", "name", "project_id", "tenant_id", "mtu", "provider:physical_network")
SUBNET_FIELDS = ("id", "cidr", "gateway_ip", "host_routes", "dns_nameservers", "enable_dhcp",
                 "ipv6_address_mode", "ip_version")


def _ip(address: str, type_: str) -> dict[str, Any]:
    return {"address": address, "type": type_, "version": ipaddress.ip_address(address).version, "meta": {}}


def _subnet(subnet: dict[str, Any], fixed: list[str], floating: dict[str, list[str]]) -> dict[str, Any]:
    ips = []
    for address in fixed:
        ip = _ip(address, "fixed")
        ip["floating_ips"] = [_ip(f, "floating") for f in floating.get(address, [])]
        ips.append(ip)
    gateway = _ip(subnet["gateway_ip"], "gateway") if subnet.get("gateway_ip") else {}
    routes = [{"cidr": r["destination"], "gateway": _ip(r["nexthop"], "gateway"), "interface": None, "meta": {}}
              for r in subnet.get("host_routes") or []]
    meta: dict[str, Any] = {}
    if subnet.get("enable_dhcp"):
        meta["dhcp_server"] = subnet.get("dhcp_server") or subnet.get("gateway_ip")
    if subnet.get("ipv6_address_mode"):
        meta["ipv6_address_mode"] = subnet["ipv6_address_mode"]
    return {"cidr": subnet["cidr"], "gateway": gateway, "dns": [_ip(d, "dns") for d in subnet.get("dns_nameservers")
                                                                   or []],
            "ips": ips, "routes": routes, "version": subnet.get("ip_version", 4), "meta": meta}


def bridge_name(port: dict[str, Any], network_id: str, default_bridge: str) -> str:
    """The port binding's ``bridge_name``; Neutron's linuxbridge convention ``brq`` + network id[:11] for a
    ``bridge`` VIF without one; ``[neutron] ovs_bridge`` otherwise."""
    details = port.get("binding:vif_details") or {}
    if details.get("bridge_name"):
        return str(details["bridge_name"])
    if port.get("binding:vif_type") == "bridge":
        return "brq" + network_id[:11]
    return default_bridge


def vif(port: dict[str, Any], network: dict[str, Any], subnets: dict[str, dict[str, Any]],
        floating_ips: list[dict[str, Any]], *, preserve_on_delete: bool, default_bridge: str = "br-int"
        ) -> dict[str, Any]:
    """One VIF of the network info: the port, on its network, with each fixed IP in its subnet."""
    floating: dict[str, list[str]] = {}
    for fip in floating_ips:
        if fip.get("port_id") == port["id"] and fip.get("fixed_ip_address"):
            floating.setdefault(fip["fixed_ip_address"], []).append(fip["floating_ip_address"])
    by_subnet: dict[str, list[str]] = {}
    for fixed in port.get("fixed_ips") or []:
        by_subnet.setdefault(fixed["subnet_id"], []).append(fixed["ip_address"])
    net_subnets = [_subnet(subnets[sid], addrs, floating) for sid, addrs in by_subnet.items() if sid in subnets]
    return {
        "id": port["id"], "address": port.get("mac_address"), "type": port.get("binding:vif_type") or "unbound",
        "details": dict(port.get("binding:vif_details") or {}), "devname": ("tap" + port["id"])[:14],
        "ovs_interfaceid": None, "qbh_params": None, "qbg_params": None,
        "vnic_type": port.get("binding:vnic_type") or "normal", "active": port.get("status") == "ACTIVE",
        "preserve_on_delete": preserve_on_delete, "profile": dict(port.get("binding:profile") or {}),
        "network": {
            "id": network["id"], "bridge": bridge_name(port, network["id"], default_bridge),
            "label": network.get("name") or network["id"],
            "meta": {"tenant_id": network.get("project_id") or network.get("tenant_id"),
                     "mtu": network.get("mtu"), "injected": False,
                     "physical_network": network.get("provider:physical_network")},
            "subnets": net_subnets,
        },
    }


def fixed_ips(network_info: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every fixed IP of the network info, with the VIF's network label and MAC: ``{address, version, label,
    mac, floating: [addresses]}``, in VIF order."""
    out = []
    for entry in network_info:
        net = entry.get("network") or {}
        for subnet in net.get("subnets") or []:
            for ip in subnet.get("ips") or []:
                out.append({"address": ip["address"], "version": ip.get("version", subnet.get("version", 4)),
                            "label": net.get("label"), "mac": entry.get("address"),
                            "floating": [f["address"] for f in ip.get("floating_ips") or []]})
    return out
