"""Client side of the compute agent's RPC API: every message goes to one named host."""

from __future__ import annotations

from typing import Any

from stratus.rpc.transport import Transport


class ComputeAPI:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def build_and_run_instance(self, context: dict[str, Any], host: str, instance_uuid: str,
                                     request_spec: dict[str, Any], selection: dict[str, Any],
                                     alternates: list[dict[str, Any]], tried_hosts: list[str] | None = None
                                     ) -> None:
        await self.transport.cast("compute", "build_and_run_instance", context, server=host,
                                  instance_uuid=instance_uuid, request_spec=request_spec, selection=selection,
                                  alternates=alternates, tried_hosts=tried_hosts or [])

    async def terminate_instance(self, context: dict[str, Any], host: str, instance_uuid: str) -> None:
        await self.transport.cast("compute", "terminate_instance", context, server=host,
                                  instance_uuid=instance_uuid)
