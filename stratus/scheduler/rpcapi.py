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

    async def refresh_hosts(self, context: dict[str, Any]) -> None:
        """Tell every scheduler that what it knows of hosts changed (a service enabled, disabled, forced down
        or deleted; an aggregate, its hosts or its metadata changed): it re-reads them before its next decision.

        Each scheduler also re-reads on its own every ``[scheduler] host_state_sync_interval``; this fanout only
        makes the change visible at once.
        """
        await self.transport.fanout("scheduler", "refresh_hosts", context)

    async def update_host_stats(self, context: dict[str, Any], nodename: str, stats: dict[str, Any]) -> None:
        """A compute node's stats changed in a way schedulers should weigh at once (a build failed on it, or
        its run of failures ended): every scheduler applies them without waiting for its next re-read."""
        await self.transport.fanout("scheduler", "update_host_stats", context, nodename=nodename, stats=stats)
