"""Port binding, as ML2 with the Linux bridge mechanism driver: a port whose ``binding:host_id`` names a host
with a live L2 agent is bound there (``vif_type`` bridge, the network's bridge in ``vif_details``); a host
without one gets ``binding_failed``; no host, ``unbound``."""

from __future__ import annotations

import datetime
from typing import Any

from stratus.db import network as db
from stratus.db.engine import Connection
from stratus.utils import utcnow

L2_AGENT_TYPE = "Linux bridge agent"
#: the agents told of networks (``network_update``), whom a port's create asks about in its statement of facts
DHCP_AGENT_TYPE = "DHCP agent"
VIF_TYPE_BRIDGE = "bridge"
VIF_TYPE_UNBOUND = "unbound"
VIF_TYPE_BINDING_FAILED = "binding_failed"


def bridge_name(network_id: str) -> str:
    return "brq" + network_id[:11]


def tap_name(port_id: str) -> str:
    return "tap" + port_id[:11]


def is_alive(agent: dict[str, Any], down_time: int, now: datetime.datetime | None = None) -> bool:
    return bool(agent["heartbeat_timestamp"] >= (now or utcnow()) - datetime.timedelta(seconds=down_time))


async def live_l2_agent(conn: Connection, host: str, down_time: int) -> dict[str, Any] | None:
    for agent in await db.agents(conn, host=host, agent_type=L2_AGENT_TYPE):
        if agent["admin_state_up"] and is_alive(agent, down_time):
            return agent
    return None


async def bind(conn: Connection, port: dict[str, Any], down_time: int) -> None:
    """Set the port's vif_type and vif_details from its host (in place)."""
    host = port["binding_host_id"]
    apply(port, bool(host) and await live_l2_agent(conn, host, down_time) is not None)


def heartbeat_alive(heartbeat: datetime.datetime | None, down_time: int) -> bool:
    """Whether an L2 agent that is up and last beat at ``heartbeat`` (None: no such agent) is alive."""
    return heartbeat is not None and is_alive({"heartbeat_timestamp": heartbeat}, down_time)


def apply(port: dict[str, Any], alive: bool) -> None:
    """The port's vif_type and vif_details (in place), its host's L2 agent being ``alive`` or not: what
    :func:`bind` sets, for a caller that read the agent already (a create, in its one statement of facts)."""
    if not port["binding_host_id"]:
        port["binding_vif_type"], port["binding_vif_details"] = VIF_TYPE_UNBOUND, {}
    elif not alive:
        port["binding_vif_type"], port["binding_vif_details"] = VIF_TYPE_BINDING_FAILED, {}
    else:
        port["binding_vif_type"] = VIF_TYPE_BRIDGE
        port["binding_vif_details"] = {"port_filter": True, "connectivity": "l2",
                                       "bridge_name": bridge_name(port["network_id"])}
