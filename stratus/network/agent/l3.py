"""The L3 agent (Neutron's ``neutron-l3-agent``, legacy routers): one ``qrouter-<id>`` namespace per router it
is sent, converged on every ``router_update`` and every resync pass.

``router_update(router, interfaces, gateway, floating_ips)``: ``interfaces`` are the router's internal ports and
``gateway`` its gateway port (or None), each a port dict with its ``subnets`` (and its ``network`` with
``provider:segmentation_id``, which the agent otherwise takes from get_device_details); ``floating_ips``
Neutron's floating IP dicts (``floating_ip_address``, ``fixed_ip_address``). Every L3 agent hears of every
router (a fanout) and serves it: run one L3 agent per deployment (legacy routers have no scheduler here).
As the DHCP agent, it removes routers it no longer serves only once the server told it all of them
(``sync_routers``), or on ``router_delete``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from stratus.network.agent.base import Agent
from stratus.network.agent_rpc import L3_TOPIC
from stratus.network.dataplane import names, router
from stratus.network.dataplane import netns as nsutil

LOG = logging.getLogger(__name__)

Desired = tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None, list[dict[str, Any]]]


class L3Agent(Agent):
    topic = L3_TOPIC
    agent_type = "L3 agent"
    binary = "neutron-l3-agent"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.routers: dict[str, Desired] = {}
        self.deleted: set[str] = set()
        self.authoritative = False

    def configurations(self) -> dict[str, Any]:
        return {"agent_mode": "legacy", "routers": len(self.routers),
                "floating_ips": sum(len(r[3]) for r in self.routers.values())}

    def router_for(self, router_id: str) -> router.Router:
        return router.Router(self.host, router_id)

    async def router_update(self, context: dict[str, Any], router: dict[str, Any], interfaces: list[dict[str, Any]],
                            gateway: dict[str, Any] | None, floating_ips: list[dict[str, Any]]) -> None:
        self.routers[router["id"]] = (router, interfaces, gateway, floating_ips)
        self.deleted.discard(router["id"])
        self.kick()

    async def router_delete(self, context: dict[str, Any], router_id: str) -> None:
        self.routers.pop(router_id, None)
        self.deleted.add(router_id)
        self.kick()

    async def resync(self) -> None:
        infos = await self.optional_call("sync_routers")
        if infos is None:
            return
        for info in infos:
            self.routers[info["router"]["id"]] = (info["router"], info.get("interfaces") or [], info.get("gateway"),
                                                  info.get("floating_ips") or [])
        self.authoritative = True
        self.kick()

    async def sync(self) -> None:
        for router_id, (rtr, interfaces, gateway, fips) in list(self.routers.items()):
            filled = [await self._with_network(p) for p in interfaces]
            gw = await self._with_network(gateway) if gateway is not None else None
            if router_id in self.routers:
                self.routers[router_id] = (rtr, filled, gw, fips)
        await asyncio.to_thread(self._converge, dict(self.routers), set(self.deleted))

    async def _with_network(self, port: dict[str, Any]) -> dict[str, Any]:
        """A router port with its ``network`` (the segment to plug into): as sent, or from get_device_details."""
        if (port.get("network") or {}).get("provider:segmentation_id") is not None:
            return port
        details = await self.get_device_details(port["id"])
        if details and details.get("network"):
            return {**port, "network": details["network"], "subnets": port.get("subnets") or details.get("subnets")}
        return {**port, "network": port.get("network") or {"id": port["network_id"]}}

    def _converge(self, routers: dict[str, Desired], deleted: set[str]) -> None:
        for router_id, desired in routers.items():
            try:
                self.router_for(router_id).sync(*desired)
            except Exception:
                LOG.exception("router %s failed; retried on the next pass", router_id)
        stale = set(deleted)
        if self.authoritative:
            prefix = names.ROUTER_NAMESPACE_PREFIX
            stale |= {n[len(prefix):] for n in nsutil.list_namespaces(prefix)}
        for router_id in stale - set(routers):
            self.router_for(router_id).remove()
        self.deleted -= deleted
