"""The agents' side of the agent → server calls of the RPC seam (topic ``network_server``), as Neutron's
``PluginApi`` and ``PluginReportStateAPI``: every method is a call that the embedded Networking service (or
whatever listens on ``network_server``) answers."""

from __future__ import annotations

from typing import Any

from stratus.rpc.transport import Transport

TOPIC = "network_server"


class PluginApi:
    def __init__(self, transport: Transport, timeout: float | None = None) -> None:
        self.transport = transport
        self.timeout = timeout

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await self.transport.call(TOPIC, method, {}, timeout=self.timeout, **kwargs)

    async def report_state(self, host: str, agent_type: str, binary: str, configurations: dict[str, Any]) -> Any:
        return await self._call("report_state", host=host, agent_type=agent_type, binary=binary,
                                configurations=configurations)

    async def get_device_details(self, host: str, port_id: str) -> dict[str, Any] | None:
        """The port as ``port_update`` sends it (with ``network``, ``subnets``, ``security_group_rules``), or
        None/{} for a port the server does not know (``port_id`` may be the 11-character prefix of a tap)."""
        details: dict[str, Any] | None = await self._call("get_device_details", host=host, port_id=port_id)
        return details or None

    async def update_device_up(self, host: str, port_id: str) -> Any:
        return await self._call("update_device_up", host=host, port_id=port_id)

    async def update_device_down(self, host: str, port_id: str) -> Any:
        return await self._call("update_device_down", host=host, port_id=port_id)

    async def optional(self, method: str, **kwargs: Any) -> Any:
        """A call beyond the contract's four (a full resync after a restart); None if the server has no such
        method, so an agent works with a server that only casts."""
        from stratus import exception

        try:
            return await self._call(method, **kwargs)
        except exception.RemoteError as exc:
            if "NoSuchMethod" in str(exc):
                return None
            raise
