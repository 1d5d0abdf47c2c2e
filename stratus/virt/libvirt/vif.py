"""VIFs of libvirt guests, Neutron's linuxbridge way (Nova's ``LibvirtGenericVIFDriver`` for ``bridge``).

A VIF is one entry of Nova's network_info (docs/networking-dataplane.md). The guest's NIC is
``<interface type='bridge'>`` on ``network.bridge`` with the tap ``devname``: QEMU (libvirtd) creates the tap in
libvirtd's network namespace, the compute host's ``stratus-host-<host>`` (scripts/libvirt.sh start DIR NETNS),
and enslaves it to the bridge, which ``plug`` makes sure exists there first. The linuxbridge agent then adds
the network's VXLAN uplink and the tap's security group filter and reports the port up.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from stratus.network.dataplane import bridges, names
from stratus.network.dataplane import netns as nsutil

VIF_TYPE_BRIDGE = "bridge"


class UnsupportedVIFType(ValueError):
    """A VIF this driver cannot plug (``binding_failed``, ``unbound``, another mechanism's type)."""


def bridge_of(vif: dict[str, Any]) -> str:
    network = vif.get("network") or {}
    return network.get("bridge") or (vif.get("details") or {}).get("bridge_name") or names.bridge_name(network["id"])


def devname(vif: dict[str, Any]) -> str:
    return vif.get("devname") or names.tap_name(vif["id"])


def check(vif: dict[str, Any]) -> None:
    if vif.get("type") != VIF_TYPE_BRIDGE:
        raise UnsupportedVIFType(f"Unsupported VIF type {vif.get('type')} for port {vif.get('id')}")


def interface_element(vif: dict[str, Any], model: str = "virtio") -> ET.Element:
    """``<interface type='bridge'>`` for the VIF, as Nova's libvirt driver writes it."""
    check(vif)
    el = ET.Element("interface", type="bridge")
    ET.SubElement(el, "mac", address=vif["address"])
    ET.SubElement(el, "source", bridge=bridge_of(vif))
    ET.SubElement(el, "target", dev=devname(vif))
    ET.SubElement(el, "model", type=model)
    mtu = ((vif.get("network") or {}).get("meta") or {}).get("mtu")
    if mtu:
        ET.SubElement(el, "mtu", size=str(mtu))
    return el


def interface_xml(vif: dict[str, Any], model: str = "virtio") -> str:
    return ET.tostring(interface_element(vif, model), encoding="unicode")


def plug(host: str, vif: dict[str, Any]) -> None:
    """Make sure the VIF's bridge exists (up) in the host's namespace, so libvirt can put the tap on it."""
    check(vif)
    namespace = names.host_namespace(host)
    nsutil.ensure(namespace)
    with nsutil.ipr(namespace) as ns:
        bridges.ensure_bridge(ns, bridge_of(vif))


def unplug(host: str, vif: dict[str, Any]) -> None:
    """Remove the VIF's tap if it outlived its guest (libvirt deletes it with the guest; the bridge stays, it is
    the network's)."""
    namespace = names.host_namespace(host)
    if not nsutil.exists(namespace):
        return
    with nsutil.ipr(namespace) as ns:
        nsutil.delete_link(ns, devname(vif))
