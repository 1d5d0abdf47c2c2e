"""The conductor's live-migration task (Nova's ``LiveMigrationTask``).

The API has put the instance in ``migrating`` and recorded the migration (``accepted``). Here: the instance's
source usage is handed to the migration record, the destination is chosen (the scheduler's choice, the named
host still filtered, or with ``force`` the named host claimed as it is), asked whether it takes the instance
(``check_can_live_migrate_destination``: how ``block_migration: auto`` resolves), and the source's
``live_migration`` is cast. A destination that refuses is given its claim back and the scheduler is asked for
another, within ``[scheduler] max_attempts`` (Nova's ``migrate_max_retries`` loop); with none, the move ends
with the instance as it was (``error`` migration, fault).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from stratus import exception
from stratus.conductor import build
from stratus.conductor.migrate import move_spec
from stratus.conductor.state import ConductorState
from stratus.db import actions, instances, placement
from stratus.db import hosts as hosts_db
from stratus.db import migration_records as records
from stratus.objects.states import task_states
from stratus.scheduler.request import resources_from_flavor

LOG = logging.getLogger(__name__)
LIVE_EVENT = "conductor_live_migrate_instance"


async def live_migrate_instance(conductor: ConductorState, context: dict[str, Any], instance_uuid: str,
                                migration_id: int, host: str | None, block_migration: bool | None,
                                force: bool) -> None:
    """Check, schedule and start a live migration; its errors go back to a caller before 2.34."""
    async with conductor.db.write() as conn:
        instance = await instances.get_plain(conn, instance_uuid)
        migration = await records.get(conn, migration_id)
        if (instance is None or instance["deleted"] or instance["task_state"] != task_states.MIGRATING
                or migration is None or migration["status"] != "accepted"):
            raise exception.InstanceNotFound(instance_id=instance_uuid)
        stored = await instances.request_spec(conn, instance_uuid) or {}
        await actions.event_start(conn, context, instance_uuid, LIVE_EVENT, host=conductor.conf.host)
        await placement.move_allocations(conn, instance_uuid, migration["uuid"], instance["project_id"],
                                         instance["user_id"], consumer_type="MIGRATION")
    try:
        if host == instance["host"]:
            raise exception.UnableToMigrateToSelf(instance_id=instance_uuid, host=host)
        dest, node, resolved = await _destination(conductor, context, instance, stored, host, block_migration,
                                                  force)
    except Exception as exc:
        await _end(conductor, context, instance, migration, exc)
        raise
    async with conductor.db.write() as conn:
        await records.update_migration(conn, migration_id, {"dest_compute": dest, "dest_node": node,
                                                            "dest_host": dest, "status": "queued"},
                                       expected_status=("accepted",))
        await actions.event_finish(conn, context, instance_uuid, LIVE_EVENT)
    await conductor.compute.live_migration(context, instance["host"], instance_uuid, migration_id, resolved)


async def _destination(conductor: ConductorState, context: dict[str, Any], instance: dict[str, Any],
                       stored: dict[str, Any], host: str | None, block_migration: bool | None, force: bool
                       ) -> tuple[str, str, bool]:
    """(host, node, block_migration) of a destination that holds a claim for the instance and said yes."""
    uuid = instance["uuid"]
    if host and force:  # Nova: a forced host skips the scheduler (its resources are still claimed)
        node = await claim_forced(conductor, instance, host)
        try:
            resolved = await conductor.compute.check_can_live_migrate_destination(context, host, uuid,
                                                                                  block_migration)
        except Exception:
            async with conductor.db.write() as conn:
                await placement.remove_allocations(conn, uuid)
            raise
        return host, node, resolved
    tried = [instance["host"]]
    last: Exception | None = None
    for _ in range(max(1, conductor.conf.scheduler.max_attempts)):
        spec = move_spec(stored, instance, instance["flavor"], False, host)
        spec["ignore_hosts"] = list(tried)
        try:
            chosen = (await build.select_destinations(conductor, context, spec, [uuid]))[0][0]
        except exception.NoValidHost as exc:
            raise (last if isinstance(last, exception.MigrationPreCheckError) else exc) from None
        try:
            resolved = await conductor.compute.check_can_live_migrate_destination(context, chosen["host"], uuid,
                                                                                  block_migration)
        except Exception as exc:  # that host said no: its claim back, and another one
            LOG.info("live migration of %s: %s refused it (%s)", uuid, chosen["host"], exc)
            async with conductor.db.write() as conn:
                await placement.remove_allocations(conn, uuid)
            tried.append(chosen["host"])
            last = exc
            if host:  # only that host was asked for
                raise
            continue
        return chosen["host"], chosen["nodename"], resolved
    raise exception.MigrationPreCheckError(reason=f"Exceeded max scheduling retries for instance {uuid}: {last}")


async def claim_forced(conductor: ConductorState, instance: dict[str, Any], host: str) -> str:
    """Claim the instance's resources on a forced host's node; NoValidHost if they do not fit."""
    async with conductor.db.write() as conn:
        service = await hosts_db.get_service(conn, host=host, binary="nova-compute")
        providers = await placement.providers_with_inventory(conn, [host]) if service else []
        if not providers:
            raise exception.ComputeHostNotFound(host=host)
        ok = False
        for _ in range(2):
            with contextlib.suppress(exception.ConcurrentUpdateDetected):
                ok = await placement.claim(conn, providers[0]["id"], instance["uuid"], instance["project_id"],
                                           instance["user_id"], resources_from_flavor(instance["flavor"]))
                break
        if not ok:
            raise exception.NoValidHost(reason=f"Host {host} does not have enough free resources")
        return str(providers[0]["name"])


async def _end(conductor: ConductorState, context: dict[str, Any], instance: dict[str, Any],
               migration: dict[str, Any], error: Exception) -> None:
    """A live migration that never started: the instance's usage its own again, ``error`` migration, the
    instance as it was with the fault."""
    uuid = instance["uuid"]
    async with conductor.db.write() as conn:
        await placement.remove_allocations(conn, uuid)
        await placement.move_allocations(conn, migration["uuid"], uuid, instance["project_id"], instance["user_id"])
        await records.update_migration(conn, migration["id"], {"status": "error"})
        if await instances.update_instance(conn, uuid, {"task_state": None},
                                           expected_task_state=(task_states.MIGRATING,)):
            await actions.add_fault(conn, uuid, error, code=getattr(error, "code", 500))
        await actions.event_finish(conn, context, uuid, LIVE_EVENT, error=error)
