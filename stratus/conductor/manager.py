"""The conductor: the RPC endpoint its messages arrive at, and nothing more.

Each message is handed to the module of its task: builds and their retries (build.py), resizes and cold
migrations (migrate.py), live migrations (live_migrate.py), evacuations (evacuate.py), unshelves
(unshelve.py), image pre-caching on an aggregate's hosts (image_cache.py), the recovery of builds whose
conductor or host died (recovery.py). They work on the conductor's shared state (state.py), which this class
is; none of them imports this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from oslo_config import cfg

from stratus.conductor import build, evacuate, image_cache, live_migrate, migrate, recovery, unshelve
from stratus.conductor.state import ConductorState, InFlight
from stratus.db.engine import Database
from stratus.rpc.transport import Transport

LOG = logging.getLogger(__name__)

__all__ = ["ConductorManager", "InFlight"]


class ConductorManager(ConductorState):
    def __init__(self, conf: cfg.ConfigOpts, db: Database, transport: Transport, service_id: int = 0,
                 network: Any = None) -> None:
        super().__init__(conf, db, transport, service_id, network=network)
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

    # --- RPC endpoints: resize and cold migration (conductor/migrate.py) -------------------------------------
    async def migrate_server(self, context: dict[str, Any], instance_uuid: str, flavor: dict[str, Any] | None,
                             requested_host: str | None, clean_shutdown: bool = True) -> int:
        return await migrate.migrate_server(self, context, instance_uuid, flavor, requested_host, clean_shutdown)

    async def resize_reschedule(self, context: dict[str, Any], instance_uuid: str, migration_id: int,
                                request_spec: dict[str, Any], alternates: list[dict[str, Any]], failed_host: str,
                                reason: str, tried_hosts: list[str], clean_shutdown: bool = True) -> None:
        await migrate.resize_reschedule(self, context, instance_uuid, migration_id, request_spec, alternates,
                                        failed_host, reason, tried_hosts, clean_shutdown)

    # --- RPC endpoints: live migration (conductor/live_migrate.py) ---------------------------------------------
    async def live_migrate_instance(self, context: dict[str, Any], instance_uuid: str, migration_id: int,
                                    host: str | None, block_migration: bool | None, force: bool) -> None:
        await live_migrate.live_migrate_instance(self, context, instance_uuid, migration_id, host, block_migration,
                                                 force)

    # --- RPC endpoints: evacuation (conductor/evacuate.py) -----------------------------------------------------
    async def evacuate_server(self, context: dict[str, Any], instance_uuid: str, migration_id: int,
                              host: str | None, force: bool, admin_password: str | None,
                              on_shared_storage: bool | None) -> None:
        await evacuate.evacuate(self, context, instance_uuid, migration_id, host, force, admin_password,
                                on_shared_storage)

    # --- RPC endpoints: unshelve of an offloaded server (conductor/unshelve.py) --------------------------------
    async def unshelve_instance(self, context: dict[str, Any], instance_uuid: str, availability_zone: str | None,
                                host: str | None) -> None:
        await unshelve.unshelve_instance(self, context, instance_uuid, availability_zone, host)

    # --- RPC endpoints: image pre-cache on an aggregate's hosts (conductor/image_cache.py) -------------------
    async def cache_images(self, context: dict[str, Any], hosts: list[str], image_ids: list[str]
                           ) -> dict[str, dict[str, str]]:
        """A cast from the API; returns each host's results (image id → result) for whoever calls it in process."""
        return await image_cache.cache_images(self, context, hosts, image_ids)
