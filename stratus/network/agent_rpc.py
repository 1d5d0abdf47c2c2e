"""The RPC seam between the networking server and its agents, on the deployment's transport (as
``compute/rpcapi.py``). Payloads are plain JSON, named by method and keyword arguments.

server → L2 agent of one host: cast to topic ``network_agent``, server ``<host>``: ``port_update(port)`` (the full
port dict with ``network`` (its ``provider:segmentation_id`` too), ``subnets`` and ``security_group_rules``: the
fields of each rule an agent filters by, as Neutron's security group RPC sends them, remote groups expanded to
addresses in ``remote_ips``), ``port_delete(port_id, network_id)``, ``security_groups_updated(port_ids)``;
``network_delete(network_id)`` is a fanout to every L2 agent.

server → DHCP and L3 agents: fanouts to topics ``dhcp_agent`` and ``l3_agent`` (each agent decides whether the
network or router is its own): ``network_update(network, subnets, ports)``, ``network_delete(network_id)``,
``router_update(router, interfaces, gateway, floating_ips)``, ``router_delete(router_id)``.

agent → server: calls to topic ``network_server``: ``report_state(host, agent_type, binary, configurations)``
(and ``report_states(states)``, many hosts in one call, for simulated fleets), ``get_device_details(host,
port_id)``, ``update_device_up(host, port_id)``, ``update_device_down(host, port_id)``; for DHCP agents (an
addition to the contract) ``create_dhcp_port(host, network_id)`` (the agent's ``network:dhcp`` port, made once,
with an address on each DHCP subnet: the DHCP server's address) and ``release_dhcp_port(host, network_id)``.
"""

from __future__ import annotations

from typing import Any

from stratus.rpc.transport import Transport

AGENT_TOPIC = "network_agent"
DHCP_TOPIC = "dhcp_agent"
L3_TOPIC = "l3_agent"
SERVER_TOPIC = "network_server"


class AgentNotifyAPI:
    """What the server sends to agents; every message is a cast or a fanout (no answer is awaited)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def port_update(self, context: dict[str, Any], host: str, port: dict[str, Any]) -> None:
        await self.transport.cast(AGENT_TOPIC, "port_update", context, server=host, port=port)

    async def port_delete(self, context: dict[str, Any], host: str, port_id: str, network_id: str) -> None:
        await self.transport.cast(AGENT_TOPIC, "port_delete", context, server=host, port_id=port_id,
                                  network_id=network_id)

    async def security_groups_updated(self, context: dict[str, Any], host: str, port_ids: list[str]) -> None:
        await self.transport.cast(AGENT_TOPIC, "security_groups_updated", context, server=host, port_ids=port_ids)

    async def network_delete(self, context: dict[str, Any], network_id: str) -> None:
        await self.transport.fanout(AGENT_TOPIC, "network_delete", context, network_id=network_id)
        await self.transport.fanout(DHCP_TOPIC, "network_delete", context, network_id=network_id)

    async def network_update(self, context: dict[str, Any], network: dict[str, Any], subnets: list[dict[str, Any]],
                             ports: list[dict[str, Any]]) -> None:
        await self.transport.fanout(DHCP_TOPIC, "network_update", context, network=network, subnets=subnets,
                                    ports=ports)

    async def router_update(self, context: dict[str, Any], router: dict[str, Any], interfaces: list[dict[str, Any]],
                            gateway: dict[str, Any] | None, floating_ips: list[dict[str, Any]]) -> None:
        await self.transport.fanout(L3_TOPIC, "router_update", context, router=router, interfaces=interfaces,
                                    gateway=gateway, floating_ips=floating_ips)

    async def router_delete(self, context: dict[str, Any], router_id: str) -> None:
        await self.transport.fanout(L3_TOPIC, "router_delete", context, router_id=router_id)


class PluginAPI:
    """What an agent asks of the server: calls, answered by ``stratus.network.server.rpc.NetworkServerEndpoint``."""

    def __init__(self, transport: Transport, timeout: float | None = None) -> None:
        self.transport = transport
        self.timeout = timeout

    async def report_state(self, context: dict[str, Any], host: str, agent_type: str, binary: str,
                           configurations: dict[str, Any], **extra: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.transport.call(
            SERVER_TOPIC, "report_state", context, timeout=self.timeout, host=host, agent_type=agent_type,
            binary=binary, configurations=configurations, **extra)
        return result

    async def report_states(self, context: dict[str, Any], states: list[dict[str, Any]]) -> int:
        count: int = await self.transport.call(SERVER_TOPIC, "report_states", context, timeout=self.timeout,
                                               states=states)
        return count

    async def get_device_details(self, context: dict[str, Any], host: str, port_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.transport.call(SERVER_TOPIC, "get_device_details", context,
                                                                 timeout=self.timeout, host=host, port_id=port_id)
        return found

    async def create_dhcp_port(self, context: dict[str, Any], host: str, network_id: str) -> dict[str, Any] | None:
        port: dict[str, Any] | None = await self.transport.call(SERVER_TOPIC, "create_dhcp_port", context,
                                                                timeout=self.timeout, host=host,
                                                                network_id=network_id)
        return port

    async def release_dhcp_port(self, context: dict[str, Any], host: str, network_id: str) -> bool:
        done: bool = await self.transport.call(SERVER_TOPIC, "release_dhcp_port", context, timeout=self.timeout,
                                               host=host, network_id=network_id)
        return done

    async def update_device_up(self, context: dict[str, Any], host: str, port_id: str) -> bool:
        done: bool = await self.transport.call(SERVER_TOPIC, "update_device_up", context, timeout=self.timeout,
                                               host=host, port_id=port_id)
        return done

    async def update_device_down(self, context: dict[str, Any], host: str, port_id: str) -> bool:
        done: bool = await self.transport.call(SERVER_TOPIC, "update_device_down", context, timeout=self.timeout,
                                               host=host, port_id=port_id)
        return done
