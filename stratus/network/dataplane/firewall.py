"""Security groups as nftables rules on the guests' taps in a host namespace (Neutron's semantics).

Per port with port security: ingress is denied except what its groups' ingress rules allow, egress likewise
(the ``default`` group's egress rules allow everything), both stateful (conntrack: a reply to an allowed flow
is allowed), DHCP to and from the port and IPv6 neighbour discovery always allowed (as Neutron's firewall
drivers do), and anti-spoofing: frames from the tap must carry its MAC and one of its fixed IPs, or an
``allowed_address_pairs`` entry, and a guest may not answer as a DHCP server. ``port_security_enabled = false``
ports are not filtered at all.

The bridge has no conntrack of its own in this kernel (no nf_conntrack_bridge), so bridged IP traffic is
filtered in the ``inet`` family through br_netfilter, where the bridge ports are not visible: the ``bridge``
table first marks each packet with the index of the port it comes from (high 16 bits) and goes to (low 16
bits), and the ``inet`` table jumps on those marks to the ports' chains. Each network's bridge is its own
conntrack zone, so overlapping addresses on two networks never share connection state.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from typing import Any

from stratus.network.dataplane import fabric, names, nft

INET_TABLE = "inet stratus-sg"
BRIDGE_TABLE = "bridge stratus-sg"
# Neutron's ICMPV6_ALLOWED_EGRESS_TYPES and ICMPV6_ALLOWED_INGRESS_TYPES: neighbour discovery and multicast
# listener messages pass whatever the rules say, or IPv6 could not work at all.
ICMPV6_EGRESS = ("mld-listener-report", "mld-listener-done", "mld2-listener-report", "nd-neighbor-solicit",
                 "nd-neighbor-advert", "nd-router-solicit")
ICMPV6_INGRESS = ("mld-listener-query", "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert")
PROTOCOL_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132}


def _port_security(port: dict[str, Any]) -> bool:
    return port.get("port_security_enabled", True) is not False


def _ip_match(version: int) -> str:
    return "ip" if version == 4 else "ip6"


def _rule(rule: dict[str, Any]) -> list[str]:
    """One security group rule as nft match expressions (several lines for a remote group's addresses); [] if
    it can match nothing (a remote group with no members)."""
    version = 6 if rule.get("ethertype") == "IPv6" else 4
    ip = _ip_match(version)
    remote_field = "saddr" if rule["direction"] == "ingress" else "daddr"
    matches = [f"meta nfproto ipv{version}"]
    proto = rule.get("protocol")
    lo, hi = rule.get("port_range_min"), rule.get("port_range_max")
    if proto is not None and str(proto) not in ("any", "0"):
        number = PROTOCOL_NUMBERS.get(str(proto).lower())
        if number is None:
            number = int(proto)
        if number == 1 and version == 6:
            number = 58   # Neutron reads "icmp" in an IPv6 rule as ICMPv6
        if number in (1, 58):
            icmp = "icmp" if number == 1 else "icmpv6"
            matches.append(f"meta l4proto {number}")
            if lo is not None:
                matches.append(f"{icmp} type {int(lo)}")
                if hi is not None:
                    matches.append(f"{icmp} code {int(hi)}")
        elif number in (6, 17, 132) and lo is not None:
            l4 = {6: "tcp", 17: "udp", 132: "sctp"}[number]
            hi = lo if hi is None else hi
            matches.append(f"{l4} dport {int(lo)}" if int(lo) == int(hi) else f"{l4} dport {int(lo)}-{int(hi)}")
        else:
            matches.append(f"meta l4proto {number}")
    if rule.get("remote_ip_prefix"):
        net = ipaddress.ip_network(rule["remote_ip_prefix"], strict=False)
        if net.version != version:
            return []
        if net.prefixlen:
            matches.append(f"{ip} {remote_field} {net}")
    elif rule.get("remote_group_id"):
        addresses = sorted({str(ipaddress.ip_interface(a).ip) for a in rule.get("remote_ips") or ()
                            if ipaddress.ip_interface(a).version == version})
        if not addresses:
            return []
        matches.append(f"{ip} {remote_field} {{ {', '.join(addresses)} }}")
    return [" ".join(matches)]


def _port_chains(index: int, port: dict[str, Any]) -> str:
    rules = port.get("security_group_rules") or []
    egress = [m for r in rules if r.get("direction") == "egress" for m in _rule(r)]
    ingress = [m for r in rules if r.get("direction") == "ingress" for m in _rule(r)]
    # Egress returns on a match (the destination port's ingress chain still has its say); ingress accepts.
    lines = [f"  chain egress-{index} {{", "    ct state established,related return", "    ct state invalid drop",
             "    udp sport 68 udp dport 67 return",
             f"    icmpv6 type {{ {', '.join(ICMPV6_EGRESS)} }} return"]
    lines += [f"    {m} return" for m in egress]
    lines += ["    counter drop", "  }", f"  chain ingress-{index} {{", "    ct state established,related accept",
              "    ct state invalid drop", "    udp sport 67 udp dport 68 accept",
              f"    icmpv6 type {{ {', '.join(ICMPV6_INGRESS)} }} accept"]
    lines += [f"    {m} accept" for m in ingress]
    lines += ["    counter drop", "  }"]
    return "\n".join(lines)


def _pairs(port: dict[str, Any]) -> list[tuple[str, str]]:
    """(MAC, address or CIDR) the port may send from: its fixed IPs and its allowed address pairs."""
    mac = port["mac_address"].lower()
    pairs = [(mac, ip["ip_address"]) for ip in port.get("fixed_ips") or ()]
    for pair in port.get("allowed_address_pairs") or ():
        pairs.append(((pair.get("mac_address") or mac).lower(), pair["ip_address"]))
    return pairs


def _spoof_chain(index: int, port: dict[str, Any]) -> str:
    mac = port["mac_address"].lower()
    lines = [f"  chain spoof-{index} {{",
             f"    ether saddr {mac} ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept",
             "    ether type ip udp sport 67 udp dport 68 drop",
             f"    ether saddr {mac} ip6 saddr {{ ::, fe80::/10 }} accept",
             f"    ether saddr {mac} arp saddr ip 0.0.0.0 accept"]
    for pair_mac, address in _pairs(port):
        net = ipaddress.ip_network(address, strict=False)
        if net.version == 4:
            lines.append(f"    ether saddr {pair_mac} ip saddr {net} accept")
            lines.append(f"    ether saddr {pair_mac} arp saddr ether {pair_mac} arp saddr ip {net} accept")
        else:
            lines.append(f"    ether saddr {pair_mac} ip6 saddr {net} accept")
    lines += ["    counter drop", "  }"]
    return "\n".join(lines)


def render(ports: Iterable[dict[str, Any]]) -> dict[str, str]:
    """The two tables for a host's bound ports (each a Neutron port dict with ``security_group_rules``)."""
    filtered = sorted((p for p in ports if _port_security(p)), key=lambda p: p["id"])
    networks = sorted({p["network_id"] for p in ports})
    if not filtered and not networks:
        return {INET_TABLE: "", BRIDGE_TABLE: ""}
    inet = ["  chain zones {", "    type filter hook prerouting priority raw; policy accept;"]
    inet += [f'    iifname "{names.bridge_name(net)}" counter ct zone set {zone}'
             for zone, net in enumerate(networks, 1)]
    inet += ["  }", "  chain forward {", "    type filter hook forward priority filter; policy accept;"]
    for i, _ in enumerate(filtered, 1):
        inet.append(f"    meta mark and 0xffff0000 == {i << 16:#010x} jump egress-{i}")
    for i, _ in enumerate(filtered, 1):
        inet.append(f"    meta mark and 0x0000ffff == {i:#06x} jump ingress-{i}")
    inet.append("  }")
    inet += [_port_chains(i, p) for i, p in enumerate(filtered, 1)]
    bridge = ["  chain prerouting {", "    type filter hook prerouting priority -300; policy accept;"]
    for i, port in enumerate(filtered, 1):
        bridge.append(f'    iifname "{names.tap_name(port["id"])}" meta mark set {i << 16:#010x} jump spoof-{i}')
    bridge += ["  }", "  chain forward {", "    type filter hook forward priority -200; policy accept;"]
    for i, port in enumerate(filtered, 1):
        bridge.append(f'    oifname "{names.tap_name(port["id"])}" meta mark set meta mark or {i:#06x}')
    bridge.append("  }")
    bridge += [_spoof_chain(i, p) for i, p in enumerate(filtered, 1)]
    if not filtered:
        bridge = []
    return {INET_TABLE: "\n".join(inet), BRIDGE_TABLE: "\n".join(bridge)}


class BridgeNetfilterMissing(RuntimeError):
    """Security groups need br_netfilter, which is not loaded; loading it is the operator's choice (it also sends
    the host's own bridged traffic through its firewall), so Stratus does not."""


def sync(host: str, ports: Iterable[dict[str, Any]]) -> None:
    """Make the host namespace's filter exactly what its bound ports' security groups say."""
    tables = render(list(ports))
    if tables[BRIDGE_TABLE] and not os.path.isdir(fabric.BRIDGE_NF):
        raise BridgeNetfilterMissing("security groups need the br_netfilter module (modprobe br_netfilter)")
    nft.replace_tables(names.host_namespace(host), tables)
