"""Address management of subnets, as Neutron's reference IPAM: pools, gateways, the next free address, and
IPv6 SLAAC addresses (EUI-64 from the port's MAC). Pure functions over ``ipaddress``; the database makes an
allocation unique (``stratus.db.network.allocate``)."""

from __future__ import annotations

import ipaddress
import itertools
import random
from collections.abc import Iterable
from typing import Any

from stratus.network.server import errors

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AUTO_ADDRESS_MODES = ("slaac", "dhcpv6-stateless")


def network(cidr: str) -> IPNetwork:
    return ipaddress.ip_network(cidr)


def host_range(net: IPNetwork) -> tuple[int, int]:
    """First and last address a port may have: not the network address (nor IPv4's broadcast) unless the
    prefix is too small to have others (/31, /32, /127, /128)."""
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.num_addresses <= 2:
        return first, last
    return first + 1, last - 1 if net.version == 4 else last


def default_gateway(net: IPNetwork) -> str | None:
    first, last = host_range(net)
    return str(ipaddress.ip_address(first)) if first <= last and net.num_addresses > 2 else None


def default_pools(net: IPNetwork, gateway: str | None) -> list[dict[str, str]]:
    """The whole host range, less the gateway (Neutron's generate_pools)."""
    first, last = host_range(net)
    ranges = [(first, last)]
    if gateway is not None and ipaddress.ip_address(gateway) in net:
        gw = int(ipaddress.ip_address(gateway))
        ranges = [(a, b) for a, b in ((first, gw - 1), (gw + 1, last)) if a <= b] if first <= gw <= last else ranges
    return [{"start": str(ipaddress.ip_address(a)), "end": str(ipaddress.ip_address(b))} for a, b in ranges]


def check_pools(net: IPNetwork, pools: list[Any], gateway: str | None) -> list[dict[str, str]]:
    """Pools as given: inside the subnet, start <= end, not overlapping, not holding the gateway."""
    checked: list[tuple[int, int, dict[str, str]]] = []
    for pool in pools:
        if not isinstance(pool, dict) or set(pool) != {"start", "end"}:
            raise errors.invalid_attribute("allocation_pools", f"Invalid data format for IP pool: '{pool}'")
        try:
            start, end = ipaddress.ip_address(pool["start"]), ipaddress.ip_address(pool["end"])
        except (ValueError, TypeError):
            raise errors.invalid_attribute("allocation_pools",
                                           f"Invalid data format for IP pool: '{pool}'") from None
        shown = {"start": str(start), "end": str(end)}
        if start.version != net.version or end.version != net.version:
            raise errors.NeutronError(400, "InvalidAllocationPool", f"The allocation pool {_show(shown)} is not "
                                      "valid.")
        if start not in net or end not in net:
            raise errors.NeutronError(400, "OutOfBoundsAllocationPool", f"The allocation pool {_show(shown)} "
                                      f"spans beyond the subnet cidr {net}.")
        if int(start) > int(end):
            raise errors.NeutronError(400, "InvalidAllocationPool", f"The allocation pool {_show(shown)} is not "
                                      "valid.")
        checked.append((int(start), int(end), shown))
    checked.sort(key=lambda p: p[0])
    for (_, end1, p1), (start2, _, p2) in itertools.pairwise(checked):
        if start2 <= end1:
            raise errors.NeutronError(400, "OverlappingAllocationPools", f"Found overlapping allocation pools: "
                                      f"{_show(p1)} {_show(p2)} for subnet {net}.")
    if gateway is not None:
        gw = int(ipaddress.ip_address(gateway))
        for start_, end_, shown in checked:
            if start_ <= gw <= end_:
                raise errors.NeutronError(409, "GatewayConflictWithAllocationPools", f"Gateway ip {gateway} "
                                          f"conflicts with allocation pool {_show(shown)}.")
    return [p for _, _, p in checked]


def _show(pool: dict[str, str]) -> str:
    return f"{pool['start']}-{pool['end']}"


def pool_size(pools: Iterable[dict[str, str]]) -> int:
    return sum(int(ipaddress.ip_address(p["end"])) - int(ipaddress.ip_address(p["start"])) + 1 for p in pools)


def candidates(pools: list[dict[str, str]], taken: set[str], count: int = 1) -> list[str]:
    """Up to ``count`` free addresses of the pools, the lowest first (a retry after a lost race takes the
    next ones)."""
    found: list[str] = []
    for pool in pools:  # ``taken`` holds addresses as stored (``str(ip_address(...))``): compared as such, unparsed
        start, end = int(ipaddress.ip_address(pool["start"])), int(ipaddress.ip_address(pool["end"]))
        value = start
        while value <= end and len(found) < count:
            address = str(ipaddress.ip_address(value))
            if address not in taken:
                found.append(address)
            value += 1
        if len(found) >= count:
            break
    return found


def valid_for_subnet(net: IPNetwork, address: str) -> bool:
    """Neutron's check_subnet_ip: inside the subnet, not its network address, not IPv4's broadcast."""
    ip = ipaddress.ip_address(address)
    if ip.version != net.version or ip not in net:
        return False
    first, last = host_range(net)
    return first <= int(ip) <= last


def eui64(prefix: str, mac: str) -> str:
    """The SLAAC address of ``mac`` in the /64 ``prefix``: the MAC's U/L bit flipped, ff:fe in the middle."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    interface = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    net = ipaddress.IPv6Network(prefix)
    return str(ipaddress.IPv6Address(int(net.network_address) | int.from_bytes(bytes(interface), "big")))


def random_mac(base_mac: str) -> str:
    """``base_mac``'s first three octets and three random ones (Neutron's get_random_mac)."""
    head = base_mac.lower().split(":")[:3]
    return ":".join([*head, *(f"{random.randint(0, 255):02x}" for _ in range(3))])
