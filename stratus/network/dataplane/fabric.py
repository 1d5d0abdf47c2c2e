"""The L2 fabric: the ``stratus-fabric`` namespace joins every host namespace, and VXLAN carries the networks.

This kernel has neither 802.1Q VLAN devices nor VLAN-aware bridges, so each network is a VXLAN segment (VNI =
its ``provider:segmentation_id``), as in Neutron's linuxbridge agent with ``[vxlan]``: the fabric namespace
holds one plain bridge (the underlay, ``fabric``), each host namespace joins it with a veth (``fabric0`` inside
the host, ``f<hash of host>`` on the bridge) carrying an underlay address from ``UNDERLAY``, and each network's
``vxlan-<vni>`` device in a host namespace floods to the multicast group ``VXLAN_GROUP`` on ``fabric0``
(Neutron's ``vxlan_group``). The fabric veth's alias records which host and address it belongs to, so the
allocation survives restarts and is read back from the kernel, not from a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
from collections.abc import Iterator

from stratus.network.dataplane import names
from stratus.network.dataplane import netns as nsutil

UNDERLAY = ipaddress.ip_network("100.127.0.0/16")
VXLAN_GROUP = "239.1.1.1"
VXLAN_PORT = 4789
FABRIC_BRIDGE = "fabric"
HOST_UPLINK = "fabric0"
# The underlay carries the 50 bytes of VXLAN headers, so the overlays keep Ethernet's 1500.
UNDERLAY_MTU = 1550
LOCK_PATH = "/run/stratus-fabric.lock"
#: br_netfilter's switches (per namespace); absent when the module is not loaded
BRIDGE_NF = "/proc/sys/net/bridge"


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One allocation at a time across processes (several agents on one machine share the fabric)."""
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_fabric() -> None:
    nsutil.ensure(names.FABRIC_NAMESPACE)
    with nsutil.ipr(names.FABRIC_NAMESPACE) as ns:
        index = nsutil.link_index(ns, FABRIC_BRIDGE)
        if index is None:
            # No IGMP snooping: the underlay bridge floods the VXLAN group to every host, as a dumb switch.
            ns.link("add", ifname=FABRIC_BRIDGE, kind="bridge", br_mcast_snooping=0)
            index = nsutil.link_index(ns, FABRIC_BRIDGE)
        ns.link("set", index=index, state="up")


def _allocations() -> dict[str, str]:
    """host → underlay address, from the aliases of the fabric bridge's ports."""
    out = {}
    with nsutil.ipr(names.FABRIC_NAMESPACE) as ns:
        for link in nsutil.links(ns):
            alias = link["alias"] or ""
            if link["ifname"].startswith("f") and alias.startswith("stratus-host "):
                _, host, address = alias.split(" ", 2)
                out[host] = address
    return out


def _joined(host: str) -> str | None:
    """The host's underlay address if its namespace is already on the fabric (uplink up, address set)."""
    host_ns = names.host_namespace(host)
    if not (nsutil.exists(host_ns) and nsutil.exists(names.FABRIC_NAMESPACE)):
        return None
    with nsutil.ipr(host_ns) as hns:
        uplink = nsutil.link_index(hns, HOST_UPLINK)
        if uplink is None or hns.get_links(uplink)[0].get("operstate") not in ("UP", "LOWERLAYERDOWN", "UNKNOWN"):
            return None
        addresses = [a.get("IFA_ADDRESS") for a in hns.get_addr(index=uplink)]
    return next((a for a in addresses if a and ipaddress.ip_address(a) in UNDERLAY), None)


def join(host: str) -> str:
    """Make sure the host namespace of ``host`` is on the fabric; returns its underlay address."""
    known = _joined(host)
    if known is not None:
        return known
    ensure_fabric()
    host_ns = names.host_namespace(host)
    nsutil.ensure(host_ns)
    port = names.fabric_port_name(host)
    with _locked():
        taken = _allocations()
        address = taken.get(host)
        with nsutil.ipr(host_ns) as hns:
            uplink = nsutil.link_index(hns, HOST_UPLINK)
        if address is None or uplink is None:
            with nsutil.ipr(names.FABRIC_NAMESPACE) as ns:
                nsutil.delete_link(ns, port)   # a half-made join (the host end is gone): start again
            used = set(taken.values()) - {address}
            address = address or next(str(a) for a in UNDERLAY.hosts() if str(a) not in used)
            with nsutil.ipr(names.FABRIC_NAMESPACE) as ns:
                ns.link("add", ifname=port, kind="veth", peer={"ifname": HOST_UPLINK, "net_ns_fd": host_ns})
                index = nsutil.link_index(ns, port)
                bridge = nsutil.link_index(ns, FABRIC_BRIDGE)
                ns.link("set", index=index, master=bridge, mtu=UNDERLAY_MTU, ifalias=f"stratus-host {host} {address}",
                        state="up")
    with nsutil.ipr(host_ns) as hns:
        uplink = nsutil.link_index(hns, HOST_UPLINK)
        hns.link("set", index=uplink, mtu=UNDERLAY_MTU, state="up")
        nsutil.set_addresses(hns, HOST_UPLINK, [f"{address}/{UNDERLAY.prefixlen}"])
    if os.path.isdir(BRIDGE_NF):
        # Bridged traffic through the inet hooks, where the security groups' conntrack is: this namespace only.
        for key in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
            nsutil.sysctl(host_ns, f"net.bridge.{key}", "1")
    return address


def leave(host: str) -> None:
    """Take the host off the fabric and delete its namespace (everything in it goes too)."""
    if nsutil.exists(names.FABRIC_NAMESPACE):
        with nsutil.ipr(names.FABRIC_NAMESPACE) as ns:
            nsutil.delete_link(ns, names.fabric_port_name(host))
    nsutil.remove(names.host_namespace(host))


def remove_fabric_if_unused() -> bool:
    """Delete the fabric namespace once no host is on it; True if it is gone."""
    if not nsutil.exists(names.FABRIC_NAMESPACE):
        return True
    with _locked():
        if _allocations():
            return False
        nsutil.remove(names.FABRIC_NAMESPACE)
    return True
