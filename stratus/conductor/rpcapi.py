"""Client side of the conductor's RPC API."""

from __future__ import annotations

from typing import Any

from stratus.rpc.transport import Transport


class ConductorAPI:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def schedule_and_build_instances(self, context: dict[str, Any], request_spec: dict[str, Any],
                                           instance_uuids: list[str]) -> None:
        await self.transport.cast("conductor", "schedule_and_build_instances", context,
                                  request_spec=request_spec, instance_uuids=instance_uuids)

    async def build_instances(self, context: dict[str, Any], instance_uuid: str, request_spec: dict[str, Any],
                              alternates: list[dict[str, Any]], failed_host: str, reason: str,
                              tried_hosts: list[str] | None = None) -> None:
        await self.transport.cast("conductor", "build_instances", context, instance_uuid=instance_uuid,
                                  request_spec=request_spec, alternates=alternates, failed_host=failed_host,
                                  reason=reason, tried_hosts=tried_hosts or [failed_host])
