"""The Linux bridge agent of a compute host (Neutron's ``neutron-linuxbridge-agent``).

It holds the ports bound to its host (``port_update`` casts from the server, ``get_device_details`` after a
restart) and converges the host namespace ``stratus-host-<host>`` toward them: each port's network has its
``brq`` bridge with the ``vxlan-<vni>`` uplink on the fabric, each tap that exists (QEMU's, made by libvirt, or a
veth) is on its bridge and up, and the namespace's nftables filter is exactly the security groups of those
ports. A port whose tap appears is reported with ``update_device_up`` (the server then marks it ACTIVE and
tells Nova ``network-vif-plugged``); one whose tap disappears with ``update_device_down``.

Ports of the Networking service itself (``device_owner`` ``network:*``: DHCP, router) are plugged by their own
agents and never filtered, as in Neutron.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from stratus.network.agent.base import Agent
from stratus.network.agent_rpc import AGENT_TOPIC
from stratus.network.dataplane import bridges, fabric, firewall, names
from stratus.network.dataplane import netns as nsutil

LOG = logging.getLogger(__name__)


def _filtered(port: dict[str, Any]) -> dict[str, Any] | None:
    if str(port.get("device_owner") or "").startswith("network:"):
        return None
    return port


class LinuxBridgeAgent(Agent):
    topic = AGENT_TOPIC
    agent_type = "Linux bridge agent"
    binary = "neutron-linuxbridge-agent"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ports: dict[str, dict[str, Any]] = {}
        self.up: set[str] = set()
        #: networks this agent made bridges for: the only ones whose empty bridges it removes (another agent
        #: in the namespace, DHCP or L3, may be plugging into a bridge it made a moment ago)
        self.networks_seen: set[str] = set()

    @property
    def namespace(self) -> str:
        return names.host_namespace(self.host)

    def configurations(self) -> dict[str, Any]:
        return {"tunnel_types": ["vxlan"], "vxlan_group": fabric.VXLAN_GROUP, "bridge_mappings": {},
                "interface_mappings": {}, "devices": len(self.ports), "namespace": self.namespace}

    # --- server → agent casts -----------------------------------------------------------------------------
    async def port_update(self, context: dict[str, Any], port: dict[str, Any]) -> None:
        bound = port.get("binding:host_id")
        if bound not in (None, "", self.host):
            self.ports.pop(port["id"], None)   # moved to another host: that host's agent has it now
        else:
            self.ports[port["id"]] = port
        self.kick()

    async def port_delete(self, context: dict[str, Any], port_id: str, network_id: str | None = None) -> None:
        self.ports.pop(port_id, None)
        self.up.discard(port_id)
        self.kick()

    async def network_delete(self, context: dict[str, Any], network_id: str) -> None:
        for port_id in [p for p, port in self.ports.items() if port.get("network_id") == network_id]:
            self.ports.pop(port_id)
            self.up.discard(port_id)
        await asyncio.to_thread(bridges.remove_network, self.host, network_id)
        self.kick()

    async def security_groups_updated(self, context: dict[str, Any], port_ids: list[str]) -> None:
        """The rules of these ports' groups changed: fetch each port again (its rules come expanded)."""
        for port_id in port_ids:
            if port_id in self.ports:
                details = await self.get_device_details(port_id)
                if details:
                    self.ports[port_id] = details
        self.kick()

    # --- convergence ---------------------------------------------------------------------------------------
    async def resync(self) -> None:
        """After a restart: ask the server about every tap already in the namespace (its alias is the port id
        this agent set; a tap it never saw is asked for by its 11-character prefix, which a server may resolve)."""
        taps = await asyncio.to_thread(self._taps)
        # bridges left from before (their networks may be gone meanwhile): looked at like any unwanted one; the
        # 11 characters of the name stand for the network id
        self.networks_seen |= {b[3:] for b in await asyncio.to_thread(bridges.bridges, self.host)}
        for tap, alias in taps.items():
            port_id = alias or tap[3:]
            try:
                details = await self.get_device_details(port_id)
            except Exception:
                LOG.exception("get_device_details(%s) failed", port_id)
                continue
            if details and details.get("id"):
                self.ports.setdefault(details["id"], details)
        self.kick()

    def _taps(self) -> dict[str, str | None]:
        if not nsutil.exists(self.namespace):
            return {}
        with nsutil.ipr(self.namespace) as ns:
            return {lk["ifname"]: lk["alias"] for lk in nsutil.links(ns) if lk["ifname"].startswith("tap")}

    async def sync(self) -> None:
        ports = dict(self.ports)
        present = await asyncio.to_thread(self._converge, ports)
        for port_id in sorted(present - self.up):
            await self.plugin.update_device_up(self.context, self.host, port_id)
            self.up.add(port_id)
        for port_id in sorted(self.up - present):
            if port_id in ports:
                await self.plugin.update_device_down(self.context, self.host, port_id)
            self.up.discard(port_id)

    def _converge(self, ports: dict[str, dict[str, Any]]) -> set[str]:
        """One pass over the kernel; returns the ports whose tap is on its bridge and up. A host that never had
        a port is left alone (no namespace made for nothing)."""
        if not ports and not nsutil.exists(self.namespace):
            return set()
        fabric.join(self.host)
        present: set[str] = set()
        with nsutil.ipr(self.namespace) as ns:   # one netlink socket for the whole pass
            done: set[str] = set()
            for port_id, port in ports.items():
                network = port.get("network") or {"id": port["network_id"]}
                if network["id"] not in done:
                    bridges.ensure_network_in(ns, network)
                    done.add(network["id"])
                index = nsutil.link_index(ns, names.tap_name(port_id))
                if index is None:
                    continue
                if port.get("admin_state_up", True) is False:
                    ns.link("set", index=index, state="down")
                    continue
                # QEMU's tap is on the bridge libvirt was told of; put it back if anything took it off
                ns.link("set", index=index, master=nsutil.link_index(ns, names.bridge_name(network["id"])),
                        state="up", ifalias=port_id)
                present.add(port_id)
        firewall.sync(self.host, [p for p in (_filtered(p) for p in ports.values()) if p is not None])
        wanted = {(p.get("network") or {"id": p["network_id"]})["id"] for p in ports.values()}
        wanted_bridges = {names.bridge_name(n) for n in wanted}
        unwanted = {n for n in self.networks_seen if names.bridge_name(n) not in wanted_bridges}
        self.networks_seen = wanted | self._remove_unused_bridges(unwanted)
        return present

    def _remove_unused_bridges(self, unwanted_networks: set[str]) -> set[str]:
        """The bridge of a network this agent no longer has ports on goes once nothing but its VXLAN uplink is on
        it (Neutron deletes a bridge when its last tap leaves); one with a DHCP or router port stays for now.
        Returns the networks whose bridge is still there, to look at again on the next pass."""
        if not unwanted_networks:
            return set()
        pending = set()
        with nsutil.ipr(self.namespace) as ns:
            links = nsutil.links(ns)
            for network_id in unwanted_networks:
                br = next((lk for lk in links if lk["ifname"] == names.bridge_name(network_id)), None)
                if br is None:
                    continue
                members = [lk for lk in links if lk["master"] == br["index"]]
                if any(m["kind"] != "vxlan" for m in members):
                    pending.add(network_id)
                    continue
                for m in members:
                    nsutil.delete_link(ns, m["ifname"])
                nsutil.delete_link(ns, br["ifname"])
        return pending
