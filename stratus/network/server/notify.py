"""After a change is committed, who must hear of it: the L2 agent of the port's host (``port_update``,
``port_delete``, ``security_groups_updated``), the DHCP agents (``network_update``, ``network_delete``), the L3
agents (``router_update``, ``router_delete``) and Nova (``nova.NovaNotifier``: a server's port plugged, unplugged,
changed or deleted, or a floating IP put on it or taken off). A message that reaches no agent (a host without one)
is logged, not raised: the change stands, and an agent that starts later asks for its ports
(``get_device_details``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from stratus import exception
from stratus.context import RequestContext
from stratus.db import network as db
from stratus.db.engine import Database
from stratus.network.agent_rpc import AgentNotifyAPI
from stratus.network.server import binding, details
from stratus.network.server.nova import NovaNotifier, event, is_server_port

LOG = logging.getLogger(__name__)


class Notifier:
    def __init__(self, db_: Database, agents: AgentNotifyAPI, nova: NovaNotifier, zones: list[str]) -> None:
        self.db = db_
        self.agents = agents
        self.nova = nova
        self.zones = zones
        self.context = RequestContext.admin().to_dict()
        self._network_waiters: dict[str, asyncio.Future[None]] = {}  # the next update of a network, awaited
        self._network_senders: dict[str, asyncio.Task[None]] = {}  # the task sending a network's updates

    async def _safely(self, what: str, call: Any) -> None:
        try:
            await call
        except exception.StratusException as exc:  # no listener: no agent on that host
            LOG.info("%s reached no agent: %s", what, exc)
        except Exception:
            LOG.exception("%s failed", what)

    async def port_changed(self, port_id: str, addresses_changed: bool = False,
                           known: details.Known | None = None, dhcp_agents: bool = True) -> None:
        """``known``: the port's rows as the transaction that committed them wrote them (nothing is read again);
        ``dhcp_agents`` False: that transaction found no DHCP agent, so none is told (and none asked for): an
        agent that reports later fetches the networks at its start (``get_active_networks_info``)."""
        if known is not None:
            payload = details.payload(known, self.zones)
        else:
            async with self.db.read() as conn:
                found = await details.port_payload(conn, port_id, self.zones)
            if found is None:
                return
            payload = found
        if payload["binding:vif_type"] == binding.VIF_TYPE_BRIDGE:
            await self._safely(f"port_update {port_id}",
                               self.agents.port_update(self.context, payload["binding:host_id"], payload))
        if dhcp_agents:
            await self.network_changed(payload["network_id"])
        if addresses_changed and is_server_port(payload) and self.nova.conf.nova.notify_nova_on_port_data_changes:
            self.nova.send([event("network-changed", payload)])

    async def port_deleted(self, port: dict[str, Any]) -> None:
        if port.get("binding_host_id") and port.get("binding_vif_type") == binding.VIF_TYPE_BRIDGE:
            await self._safely(f"port_delete {port['id']}", self.agents.port_delete(
                self.context, port["binding_host_id"], port["id"], port["network_id"]))
        await self.network_changed(port["network_id"])
        if is_server_port(port) and self.nova.conf.nova.notify_nova_on_port_data_changes:
            self.nova.send([event("network-vif-deleted", port)])

    async def floatingip_changed(self, port_ids: list[str | None]) -> None:
        """``network-changed`` for each server port a floating IP reached or left (Neutron's nova notifier on
        ``create_floatingip``, ``update_floatingip`` and ``delete_floatingip``): the compute refreshes the server's
        info cache, so its ``addresses`` show the floating IP (or no longer do)."""
        wanted = [p for p in dict.fromkeys(port_ids) if p]
        if not wanted or not self.nova.conf.nova.notify_nova_on_port_data_changes:
            return
        async with self.db.read() as conn:
            found = await db.find(conn, "port", id=wanted)
        self.nova.send([event("network-changed", p) for p in found if is_server_port(p)])

    async def port_status_changed(self, port: dict[str, Any], old: str, new: str) -> None:
        if not is_server_port(port) or not self.nova.conf.nova.notify_nova_on_port_status_changes:
            return
        if new == "ACTIVE" and old != "ACTIVE":
            self.nova.send([event("network-vif-plugged", port)])
        elif new == "ERROR" and old != "ERROR":
            self.nova.send([event("network-vif-plugged", port, "failed")])
        elif new == "DOWN" and old == "ACTIVE":
            self.nova.send([event("network-vif-unplugged", port)])

    async def network_changed(self, network_id: str) -> None:
        """The DHCP agents get the network with its subnets and ports (their host entries).

        Coalesced per network: a change that comes while the network's last update is being read or sent goes in
        the next one, which starts once that one is out, so every change is followed by an update read after it
        (this returns once that one is out) and a burst of ports on one network costs a few network-wide payloads,
        not one each."""
        waiter = self._network_waiters.get(network_id)
        if waiter is None:
            waiter = self._network_waiters[network_id] = asyncio.get_running_loop().create_future()
        if network_id not in self._network_senders:
            self._network_senders[network_id] = asyncio.get_running_loop().create_task(
                self._send_network_updates(network_id))
        await asyncio.shield(waiter)

    async def _send_network_updates(self, network_id: str) -> None:
        try:
            while (waiter := self._network_waiters.pop(network_id, None)) is not None:
                try:
                    await self._network_update(network_id)
                except Exception:
                    LOG.exception("network_update %s failed", network_id)
                finally:
                    waiter.set_result(None)
        finally:
            del self._network_senders[network_id]

    async def _network_update(self, network_id: str) -> None:
        """With no DHCP agent at all (the fake driver's deployments), nothing is built: the payload grows with
        the network's ports."""
        async with self.db.read() as conn:
            if not await db.agents(conn, agent_type=binding.DHCP_AGENT_TYPE):
                return
            found = await details.network_payload(conn, network_id, self.zones)
        if found is not None:
            network, subnets, ports = found
            await self._safely(f"network_update {network_id}",
                               self.agents.network_update(self.context, network, subnets, ports))

    async def network_deleted(self, network_id: str, port_ids: list[str]) -> None:
        await self._safely(f"network_delete {network_id}", self.agents.network_delete(self.context, network_id))

    async def router_changed(self, router_id: str) -> None:
        """The L3 agents get the router, its interfaces, gateway and floating IPs."""
        async with self.db.read() as conn:
            found = await details.router_payload(conn, router_id)
        if found is not None:
            await self._safely(f"router_update {router_id}", self.agents.router_update(self.context, *found))

    async def router_deleted(self, router_id: str) -> None:
        await self._safely(f"router_delete {router_id}", self.agents.router_delete(self.context, router_id))

    async def security_groups_changed(self, group_ids: list[str]) -> None:
        """The bound ports using these groups, or whose groups' rules name them as remote, hear of it by host."""
        async with self.db.read() as conn:
            rules = await db.find(conn, "security_group_rule", remote_group_id=list(group_ids))
            affected = set(group_ids) | {r["security_group_id"] for r in rules}
            by_host: dict[str, list[str]] = {}
            users = await db.ports_in_groups(conn, sorted(affected))
            for port in await db.find(conn, "port", id=list(users)) if users else []:
                if port["binding_vif_type"] == binding.VIF_TYPE_BRIDGE:
                    by_host.setdefault(port["binding_host_id"], []).append(port["id"])
        for host, port_ids in by_host.items():
            await self._safely(f"security_groups_updated on {host}",
                               self.agents.security_groups_updated(self.context, host, port_ids))
