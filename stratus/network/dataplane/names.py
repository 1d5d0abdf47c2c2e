"""Names of the kernel objects of a network, as Neutron's linuxbridge agent names them (15 characters at most)."""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

FABRIC_NAMESPACE = "stratus-fabric"
HOST_NAMESPACE_PREFIX = "stratus-host-"
DHCP_NAMESPACE_PREFIX = "qdhcp-"
ROUTER_NAMESPACE_PREFIX = "qrouter-"


def bridge_name(network_id: str) -> str:
    """The Linux bridge of a network: ``brq`` + its id's first 11 characters."""
    return "brq" + network_id[:11]


def tap_name(port_id: str) -> str:
    """The tap (or veth end) of a port on its network's bridge: ``tap`` + the port id's first 11 characters."""
    return "tap" + port_id[:11]


def router_port_name(port_id: str, external: bool) -> str:
    """A router's end of its port inside ``qrouter-<id>``: ``qg-`` on the external network, ``qr-`` inside."""
    return ("qg-" if external else "qr-") + port_id[:11]


def vxlan_name(vni: int) -> str:
    return f"vxlan-{vni}"


def host_namespace(host: str) -> str:
    return HOST_NAMESPACE_PREFIX + host


def dhcp_namespace(network_id: str) -> str:
    return DHCP_NAMESPACE_PREFIX + network_id


def router_namespace(router_id: str) -> str:
    return ROUTER_NAMESPACE_PREFIX + router_id


def fabric_port_name(host: str) -> str:
    """The fabric bridge's end of a host's underlay veth: unique per host name, short enough for any name."""
    return "f" + hashlib.sha1(host.encode()).hexdigest()[:12]


def segmentation_id(network: dict[str, Any]) -> int:
    """The VXLAN network identifier of a network: its ``provider:segmentation_id``, or (a network without one,
    e.g. flat) a stable 24-bit number derived from its id."""
    seg = network.get("provider:segmentation_id")
    if isinstance(seg, int) and 0 < seg < 1 << 24:
        return seg
    return zlib.crc32(network["id"].encode()) % ((1 << 24) - 1) + 1
