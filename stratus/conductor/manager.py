"""The conductor: the RPC endpoint its messages arrive at, and nothing more.

Each message is handed to the module of its task: builds and their retries (build.py), the recovery of builds
whose conductor or host died (recovery.py). They work on the conductor's shared state (state.py), which this
class is; none of them imports this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from oslo_config import cfg

from stratus.conductor import build, recovery
from stratus.conductor.state import ConductorState, InFlight
from stratus.db.engine import Database
from stratus.rpc.transport import Transport

LOG = logging.getLogger(__name__)

__all__ = ["ConductorManager", "InFlight"]


class ConductorManager(ConductorState):
    def __init__(self, conf: cfg.ConfigOpts, db: Database, transport: Transport, service_id: int = 0) -> None:
        super().__init__(conf, db, transport, service_id)
        self._recovery_lock = asyncio.Lock()
        self._next_recovery = 0.0

    # --- recovery (conductor/recovery.py), on start and periodically ------------------------------------------
    async def recover(self) -> list[tuple[str, str]]:
        """One recovery pass (never two at once); returns what it did."""
        async with self._recovery_lock:
            done = await recovery.reconcile(self)
        if done:
            LOG.info("conductor recovery: %s", ", ".join(f"{u} {w}" for u, w in done))
        return done

    async def periodic_tasks(self, now: float | None = None) -> None:
        """The recovery pass when ``[conductor] build_recovery_interval`` has passed; called every heartbeat."""
        now = time.monotonic() if now is None else now
        if now >= self._next_recovery:
            self._next_recovery = now + self.conf.conductor.build_recovery_interval
            await self.recover()

    # --- RPC endpoints: builds (conductor/build.py) -----------------------------------------------------------
    async def schedule_and_build_instances(self, context: dict[str, Any], request_spec: dict[str, Any],
                                           instance_uuids: list[str]) -> None:
        await build.schedule_and_build_instances(self, context, request_spec, instance_uuids)

    async def schedule_taken(self, context: dict[str, Any], request_spec: dict[str, Any],
                             instance_uuids: list[str]) -> None:
        await build.schedule_taken(self, context, request_spec, instance_uuids)

    async def build_instances(self, context: dict[str, Any], instance_uuid: str, request_spec: dict[str, Any],
                              alternates: list[dict[str, Any]], failed_host: str, reason: str,
                              tried_hosts: list[str] | None = None) -> None:
        await build.build_instances(self, context, instance_uuid, request_spec, alternates, failed_host, reason,
                                    tried_hosts)
