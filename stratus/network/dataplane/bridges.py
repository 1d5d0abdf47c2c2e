"""A network's Linux bridge in a host namespace, its VXLAN uplink, and the ports plugged into it.

As Neutron's linuxbridge agent: bridge ``brq<net[:11]>``, uplink ``vxlan-<vni>`` (on the fabric's multicast
group), each port a ``tap<port[:11]>``. A port of a namespace Stratus made (DHCP, router, a test "guest") is a
veth whose other end, in that namespace, carries the port's MAC; a QEMU tap is created by libvirt and only
checked here.
"""

from __future__ import annotations

from typing import Any

from pyroute2 import NetNS

from stratus.network.dataplane import fabric, names
from stratus.network.dataplane import netns as nsutil


def ensure_network(host: str, network: dict[str, Any], *, join: bool = True) -> str:
    """Make sure ``brq<net>`` with its ``vxlan-<vni>`` uplink exists and is up in the host's namespace
    (joining the fabric first, unless the caller just did); returns the bridge's name."""
    if join:
        fabric.join(host)
    with nsutil.ipr(names.host_namespace(host)) as ns:
        return ensure_network_in(ns, network)


def ensure_network_in(ns: NetNS, network: dict[str, Any]) -> str:
    """``ensure_network`` on an open netlink socket of a host namespace already on the fabric."""
    bridge = names.bridge_name(network["id"])
    vni = names.segmentation_id(network)
    vxlan = names.vxlan_name(vni)
    br = ensure_bridge(ns, bridge)
    index = nsutil.link_index(ns, vxlan)
    if index is None:
        uplink = nsutil.link_index(ns, fabric.HOST_UPLINK)
        ns.link("add", ifname=vxlan, kind="vxlan", vxlan_id=vni, vxlan_group=fabric.VXLAN_GROUP,
                vxlan_link=uplink, vxlan_port=fabric.VXLAN_PORT, vxlan_learning=1)
        index = nsutil.link_index(ns, vxlan)
    ns.link("set", index=index, master=br, state="up")
    return bridge


def ensure_bridge(ns: NetNS, bridge: str) -> int:
    """The bridge (no STP, so a new port forwards at once), up; returns its index."""
    index = nsutil.link_index(ns, bridge)
    if index is None:
        ns.link("add", ifname=bridge, kind="bridge", br_stp_state=0, br_forward_delay=0)
        index = nsutil.link_index(ns, bridge)
    ns.link("set", index=index, state="up")
    return index


def remove_network(host: str, network_id: str, vni: int | None = None) -> None:
    """Delete the network's bridge and VXLAN device from the host's namespace (its taps stay unplugged)."""
    ns_name = names.host_namespace(host)
    if not nsutil.exists(ns_name):
        return
    bridge = names.bridge_name(network_id)
    with nsutil.ipr(ns_name) as ns:
        br = nsutil.link_index(ns, bridge)
        if br is not None:
            for link in nsutil.links(ns):
                if link["master"] == br and link["kind"] == "vxlan":
                    nsutil.delete_link(ns, link["ifname"])
            nsutil.delete_link(ns, bridge)
        if vni is not None:
            nsutil.delete_link(ns, names.vxlan_name(vni))


def bridges(host: str) -> list[str]:
    """The ``brq`` bridges in the host's namespace (what is there, for a sync to compare with what should be)."""
    ns_name = names.host_namespace(host)
    if not nsutil.exists(ns_name):
        return []
    with nsutil.ipr(ns_name) as ns:
        return [lk["ifname"] for lk in nsutil.links(ns) if lk["kind"] == "bridge" and lk["ifname"].startswith("brq")]


def plug_veth(host: str, network: dict[str, Any], port_id: str, peer_namespace: str, peer_name: str,
              mac: str) -> str:
    """Plug a port whose device lives in ``peer_namespace`` (a qdhcp/qrouter namespace or a test guest): the
    veth ``tap<port>`` on the network's bridge, ``peer_name`` with the port's MAC in the peer namespace.
    Idempotent; returns the tap's name."""
    bridge = ensure_network(host, network)
    tap = names.tap_name(port_id)
    nsutil.ensure(peer_namespace)
    with nsutil.ipr(names.host_namespace(host)) as ns:
        index = nsutil.link_index(ns, tap)
        with nsutil.ipr(peer_namespace) as peer:
            peer_index = nsutil.link_index(peer, peer_name)
        if index is not None and peer_index is None:
            nsutil.delete_link(ns, tap)   # the peer namespace was remade: its end is gone
            index = None
        if index is None:
            with nsutil.ipr(peer_namespace) as peer:
                nsutil.delete_link(peer, peer_name)
            ns.link("add", ifname=tap, kind="veth", peer={"ifname": peer_name, "net_ns_fd": peer_namespace,
                                                          "address": mac})
            index = nsutil.link_index(ns, tap)
        ns.link("set", index=index, master=nsutil.link_index(ns, bridge), state="up")
    with nsutil.ipr(peer_namespace) as peer:
        peer_index = nsutil.link_index(peer, peer_name)
        peer.link("set", index=peer_index, address=mac, state="up")
    return tap


def unplug(host: str, port_id: str) -> bool:
    """Delete the port's tap (a veth takes its peer with it); True if there was one."""
    ns_name = names.host_namespace(host)
    if not nsutil.exists(ns_name):
        return False
    with nsutil.ipr(ns_name) as ns:
        return nsutil.delete_link(ns, names.tap_name(port_id))


def tap_state(host: str, port_id: str) -> dict[str, Any] | None:
    """The port's tap in the host namespace ({ifname, master bridge name, ...}), or None if there is none."""
    ns_name = names.host_namespace(host)
    if not nsutil.exists(ns_name):
        return None
    with nsutil.ipr(ns_name) as ns:
        tap = names.tap_name(port_id)
        for link in nsutil.links(ns):
            if link["ifname"] == tap:
                master = link["master"]
                link["bridge"] = ns.get_links(master)[0].get("ifname") if master else None
                return link
    return None
