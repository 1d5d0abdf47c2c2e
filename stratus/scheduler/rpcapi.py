"""Client side of the scheduler's RPC API."""

from __future__ import annotations

from typing import Any

from stratus.rpc.transport import Transport


class SchedulerAPI:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def select_destinations(self, context: dict[str, Any], request_spec: dict[str, Any],
                                  instance_uuids: list[str], return_alternates: bool = True
                                  ) -> list[list[dict[str, Any]]]:
        result: list[list[dict[str, Any]]] = await self.transport.call(
            "scheduler", "select_destinations", context, request_spec=request_spec, instance_uuids=instance_uuids,
            return_alternates=return_alternates)
        return result
