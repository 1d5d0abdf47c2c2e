"""The server's side of the agent RPC seam (``stratus.network.agent_rpc``): agents report their state, ask for
their ports' details and say when a port is wired up (``update_device_up``: the port becomes ACTIVE and Nova is
told) or no longer (``update_device_down``)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from stratus.db import network as db
from stratus.network.server import details, ports, subnets
from stratus.network.server.notify import Notifier
from stratus.utils import utcnow

LOG = logging.getLogger(__name__)
RETRIES = 10
DHCP_OWNER = "network:dhcp"
_AGENT_TOPICS = {"Linux bridge agent": "N/A", "DHCP agent": "dhcp_agent", "L3 agent": "l3_agent"}


def dhcp_device_id(host: str, network_id: str) -> str:
    """Neutron's device_id of a DHCP port: ``dhcp`` + a uuid of the agent's host + the network."""
    return f"dhcp{uuid.uuid5(uuid.NAMESPACE_DNS, host)}-{network_id}"


class NetworkServerEndpoint:
    def __init__(self, db_: Any, notifier: Notifier, zone: str, options: Any) -> None:
        self.db = db_
        self.notifier = notifier
        self.zone = zone
        self.options = options  # [network_server]

    def _values(self, host: str, agent_type: str, binary: str, configurations: dict[str, Any],
                availability_zone: str | None = None, topic: str | None = None, start_flag: bool = False,
                **_: Any) -> dict[str, Any]:
        now = utcnow()
        values = {"id": str(uuid.uuid4()), "host": str(host)[:255], "agent_type": str(agent_type)[:255],
                  "binary": str(binary)[:255], "topic": str(topic or _AGENT_TOPICS.get(agent_type, "N/A"))[:255],
                  "configurations": configurations if isinstance(configurations, dict) else {},
                  "availability_zone": availability_zone or self.zone, "heartbeat_timestamp": now}
        if start_flag:
            values["started_at"] = now
        return values

    async def report_state(self, context: dict[str, Any], host: str, agent_type: str, binary: str,
                           configurations: dict[str, Any], **extra: Any) -> dict[str, Any]:
        values = self._values(host, agent_type, binary, configurations, **extra)
        async with self.db.write() as conn:
            new = await db.report_state(conn, values)
        if new:
            LOG.info("agent %s on %s reported for the first time", agent_type, host)
        return {"host": values["host"], "agent_type": values["agent_type"], "new": new}

    async def report_states(self, context: dict[str, Any], states: list[dict[str, Any]]) -> int:
        """Many agents' reports in one transaction (a fleet of simulated hosts)."""
        async with self.db.write() as conn:
            for state in states:
                await db.report_state(conn, self._values(**state))
        return len(states)

    async def get_device_details(self, context: dict[str, Any], host: str, port_id: str) -> dict[str, Any] | None:
        async with self.db.read() as conn:
            return await details.port_payload(conn, port_id, [self.zone])

    async def create_dhcp_port(self, context: dict[str, Any], host: str, network_id: str) -> dict[str, Any] | None:
        """The DHCP port of ``host``'s agent on the network (``network:dhcp``, an address on each DHCP subnet),
        made at the first ask (Neutron's DHCP agent asks the same); None when the network has no DHCP subnet."""
        device_id = dhcp_device_id(host, network_id)
        for attempt in range(RETRIES):
            try:
                async with self.db.write() as conn:
                    network = await db.get(conn, "network", network_id, for_update=True)
                    if network is None:
                        return None
                    found = await db.find(conn, "port", network_id=network_id, device_id=device_id)
                    if found:
                        port_id = found[0]["id"]
                        break
                    dhcp = [{"subnet_id": s["id"]} for s in await db.find(conn, "subnet", network_id=network_id)
                            if s["enable_dhcp"] and not subnets.is_auto_address(s)]
                    if not dhcp:
                        return None
                    port = await ports.make_port(self.options, conn, network, network["project_id"], device_id,
                                                 DHCP_OWNER, dhcp, host)
                    port_id = port["id"]
                break
            except IntegrityError:
                if attempt == RETRIES - 1:
                    raise
        await self.notifier.network_changed(network_id)
        async with self.db.read() as conn:
            return await details.port_payload(conn, port_id, [self.zone])

    async def get_metadata_requester(self, context: dict[str, Any], host: str, network_id: str,
                                     ip_address: str) -> dict[str, Any] | None:
        """Who asks the metadata proxy of ``network_id`` from ``ip_address`` (Neutron's metadata agent's
        ``_get_ports_for_remote_address``): the ``device_id`` and ``tenant_id`` of the one port with that fixed
        IP, or None (no port, or one without a device)."""
        async with self.db.read() as conn:
            found = [a for a in await db.allocations(conn, network_id=str(network_id))
                     if a["ip_address"] == str(ip_address)]
            if len(found) != 1:
                return None
            port = await db.get(conn, "port", found[0]["port_id"])
        if port is None or not port.get("device_id"):
            return None
        return {"device_id": port["device_id"], "tenant_id": port["project_id"]}

    async def release_dhcp_port(self, context: dict[str, Any], host: str, network_id: str) -> bool:
        """``host``'s DHCP port on the network goes (its agent no longer serves it)."""
        async with self.db.write() as conn:
            found = await db.find(conn, "port", network_id=network_id, device_id=dhcp_device_id(host, network_id))
            for port in found:
                await db.delete_record(conn, "port", port["id"])
        if found:
            await self.notifier.network_changed(network_id)
        return bool(found)

    async def update_device_up(self, context: dict[str, Any], host: str, port_id: str) -> bool:
        return await self._set_status(host, port_id, "ACTIVE")

    async def update_device_down(self, context: dict[str, Any], host: str, port_id: str) -> bool:
        return await self._set_status(host, port_id, "DOWN")

    async def _set_status(self, host: str, port_id: str, status: str) -> bool:
        """The port's status, if it is bound to ``host`` (a report from a host the port left is stale). ACTIVE,
        every plugged port's, is one statement when it changes; the port is read only when it did not."""
        if status == "ACTIVE":
            async with self.db.write() as conn:
                changed = await db.activate_port(conn, port_id, host)
                port = await db.get(conn, "port", port_id) if changed is None else None
            if changed is not None:
                await self.notifier.port_status_changed(changed, "DOWN", status)  # it was not ACTIVE before
                return True
            if port is None or port["binding_host_id"] != host:
                LOG.info("%s of port %s from %s ignored: not bound there", status, port_id, host)
                return False
            return True
        async with self.db.write() as conn:
            port = await db.get(conn, "port", port_id, for_update=True)
            if port is None or port["binding_host_id"] != host:
                LOG.info("%s of port %s from %s ignored: not bound there", status, port_id, host)
                return False
            old = port["status"]
            if old != status:
                port["status"] = status
                await db.update_record(conn, "port", port)
        if old != status:
            await self.notifier.port_status_changed(port, old, status)
        return True
