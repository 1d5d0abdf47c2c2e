"""Live migration on the compute hosts (Nova's ``check_can_live_migrate_destination`` → ``pre_live_migration``
→ ``live_migration`` → ``post_live_migration_at_destination``, or ``rollback_live_migration``).

The conductor has checked the destination, claimed it for the instance and handed the instance's source usage
to the migration record. The source runs the copy (its ``LiveMigrationControl`` is what an abort or a
force-complete sets while it runs), then in one transaction the migration's allocation goes, the instance is
the destination's and the destination starts owning the guest. A failure or an abort rolls back: the
destination's claim and leftovers go, the source's usage is the instance's again, the guest never stopped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from stratus import exception
from stratus.compute import move_step, networking
from stratus.compute.host import ComputeHost
from stratus.compute.instance_action import power_state_of
from stratus.compute.rpcapi import ComputeAPI, NotSupportedByDriver
from stratus.db import actions, info_cache, instances, placement
from stratus.db import migration_records as records
from stratus.objects.states import task_states
from stratus.virt.driver import LiveMigrationControl

LOG = logging.getLogger(__name__)

CHECK_EVENT = "compute_check_can_live_migrate_destination"
PRE_EVENT = "compute_pre_live_migration"
LIVE_EVENT = "compute_live_migration"
POST_EVENT = "compute_post_live_migration_at_destination"
ROLLBACK_EVENT = "compute_rollback_live_migration_at_destination"
#: statuses of a live migration that an abort may stop (Nova 2.65: queued and preparing too)
ABORTABLE = ("queued", "preparing", "running")
#: seconds between two writes of a running live migration's progress
PROGRESS_INTERVAL = 1.0


async def _instance(host: ComputeHost, uuid: str) -> dict[str, Any]:
    async with host.db.read() as conn:
        row = await instances.get_plain(conn, uuid)
    if row is None or row["deleted"]:
        raise exception.InstanceNotFound(instance_id=uuid)
    return row


async def check_can_live_migrate_destination(host: ComputeHost, context: dict[str, Any], instance_uuid: str,
                                             block_migration: bool | None) -> bool:
    """A call from the conductor: the destination's driver says whether (and how) it takes the instance."""
    row = await _instance(host, instance_uuid)
    async with host.db.write() as conn:
        await actions.event_start(conn, context, instance_uuid, CHECK_EVENT, host=host.host)
    error: Exception | None = None
    try:
        return await host.driver.check_can_live_migrate_destination(host.driver_instance(row), block_migration)
    except NotImplementedError:
        error = NotSupportedByDriver()
        raise error from None
    except Exception as exc:
        error = exc
        raise
    finally:
        async with host.db.write() as conn:
            await actions.event_finish(conn, context, instance_uuid, CHECK_EVENT, error=error)


async def pre_live_migration(host: ComputeHost, context: dict[str, Any], instance_uuid: str,
                             block_migration: bool) -> dict[str, Any]:
    """A call from the source before the copy: the destination gets ready, and says what the source's driver
    needs to know of it (Nova's ``migrate_data``)."""
    row = await _instance(host, instance_uuid)
    async with host.db.write() as conn:
        await actions.event_start(conn, context, instance_uuid, PRE_EVENT, host=host.host)
    error: Exception | None = None
    try:
        network_info = await _network_info(host, instance_uuid)
        return await host.driver.pre_live_migration(host.driver_instance(row), block_migration,
                                                    network_info=network_info)
    except Exception as exc:
        error = exc
        raise
    finally:
        async with host.db.write() as conn:
            await actions.event_finish(conn, context, instance_uuid, PRE_EVENT, error=error)


async def _network_info(host: ComputeHost, instance_uuid: str) -> list[dict[str, Any]]:
    """The instance's VIFs as the info cache has them (bound to the source still: the binding moves to the
    destination at the end, Nova's ``migrate_instance_finish``)."""
    async with host.db.read() as conn:
        return list(await info_cache.get(conn, instance_uuid) or [])


async def live_migration(host: ComputeHost, context: dict[str, Any], instance_uuid: str, migration_id: int,
                         block_migration: bool) -> None:
    """The source runs the move; success hands the instance to the destination, failure rolls back."""
    control = LiveMigrationControl()
    host.live_migrations[migration_id] = control
    try:
        await _live_migration(host, context, instance_uuid, migration_id, block_migration, control)
    finally:
        host.live_migrations.pop(migration_id, None)


async def _live_migration(host: ComputeHost, context: dict[str, Any], instance_uuid: str, migration_id: int,
                          block_migration: bool, control: LiveMigrationControl) -> None:
    async with host.locks(instance_uuid):
        taken = await move_step.begin_step(host, context, instance_uuid, migration_id, task_states.MIGRATING,
                                           ("queued", "preparing"), LIVE_EVENT)
        if taken is None:
            return
        row, migration = taken
        dest = migration["dest_compute"]
        compute = ComputeAPI(host.transport)
        instance = host.driver_instance(row)
        try:
            migrate_data = await compute.pre_live_migration(context, dest, instance_uuid, block_migration)
            async with host.db.write() as conn:
                if not await records.update_migration(
                        conn, migration_id, {"status": "running", "memory_total": row["memory_mb"] * 1024 * 1024,
                                             "memory_processed": 0,
                                             "memory_remaining": row["memory_mb"] * 1024 * 1024},
                        expected_status=("preparing",)):
                    raise exception.LiveMigrationAborted(instance_uuid=instance_uuid)
            if control.abort.is_set():
                raise exception.LiveMigrationAborted(instance_uuid=instance_uuid)
            progress = asyncio.ensure_future(_report_progress(host, migration_id, control))
            try:
                power = await host.driver.live_migration(instance, dest, block_migration, control, migrate_data)
            finally:
                progress.cancel()
        except Exception as exc:
            error = NotSupportedByDriver() if isinstance(exc, NotImplementedError) else exc
            await _rollback(host, context, row, migration, error)
            return
        async with host.db.write() as conn:
            await placement.remove_allocations(conn, migration["uuid"])
            await instances.update_instance(conn, instance_uuid, {"host": dest, "node": migration["dest_node"],
                                                                  "power_state": power},
                                            expected_task_state=(task_states.MIGRATING,))
            total = control.memory_total or row["memory_mb"] * 1024 * 1024
            await records.update_migration(conn, migration_id, {"status": "post-migrating", "memory_total": total,
                                                                "memory_processed": total, "memory_remaining": 0})
            await host.report_stats(conn)
            await actions.event_finish(conn, context, instance_uuid, LIVE_EVENT)
        try:
            await host.driver.post_live_migration_at_source(instance, await _network_info(host, instance_uuid))
        except Exception:
            LOG.exception("unplugging the VIFs %s left on %s", instance_uuid, host.host)
    await compute.post_live_migration_at_destination(context, dest, instance_uuid, migration_id, power)


async def _report_progress(host: ComputeHost, migration_id: int, control: LiveMigrationControl) -> None:
    """While the copy runs, what the driver says of it goes to the migration record once a second (the API's
    ``memory_*_bytes`` and ``disk_*_bytes`` of a migration in progress)."""
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL)
        if not control.memory_total:
            continue
        values = {"memory_total": control.memory_total, "memory_processed": control.memory_processed,
                  "memory_remaining": max(0, control.memory_total - control.memory_processed)}
        if control.disk_total:
            values.update(disk_total=control.disk_total, disk_processed=control.disk_processed,
                          disk_remaining=max(0, control.disk_total - control.disk_processed))
        async with host.db.write() as conn:
            await records.update_migration(conn, migration_id, values, expected_status=("running",))


async def _rollback(host: ComputeHost, context: dict[str, Any], row: dict[str, Any], migration: dict[str, Any],
                    error: Exception) -> None:
    """Nova's ``_rollback_live_migration``: the destination's claim and leftovers go, the instance's usage is
    its own again on this host, task_state cleared; an abort is ``cancelled``, any other failure ``error`` with
    the fault."""
    aborted = isinstance(error, exception.LiveMigrationAborted)
    uuid = row["uuid"]
    LOG.warning("live migration of %s from %s %s: %s", uuid, host.host, "aborted" if aborted else "failed", error)
    current = await power_state_of(host, host.driver_instance(row))
    async with host.db.write() as conn:
        await move_step.give_back_source(conn, row, migration)
        changed = await instances.update_instance(conn, uuid, {"task_state": None, "power_state": current},
                                                  expected_task_state=(task_states.MIGRATING,))
        if changed and not aborted:
            await actions.add_fault(conn, uuid, error, host=host.host)
        await records.update_migration(conn, migration["id"], {"status": "cancelled" if aborted else "error"})
        await actions.event_finish(conn, context, uuid, LIVE_EVENT, error=error)
    if migration["dest_compute"]:
        await ComputeAPI(host.transport).rollback_live_migration_at_destination(context, migration["dest_compute"],
                                                                               uuid)


async def post_live_migration_at_destination(host: ComputeHost, context: dict[str, Any], instance_uuid: str,
                                             migration_id: int, power: int) -> None:
    """The guest is this host's: power state recorded, task_state cleared, migration ``completed``."""
    async with host.locks(instance_uuid):
        row = await _instance(host, instance_uuid)
        async with host.db.write() as conn:
            await actions.event_start(conn, context, instance_uuid, POST_EVENT, host=host.host)
        error: Exception | None = None
        try:
            await networking.bind_here(host, context, host.driver_instance(row))
            await host.driver.post_live_migration_at_destination(host.driver_instance(row), power)
        except Exception as exc:
            error = NotSupportedByDriver() if isinstance(exc, NotImplementedError) else exc
            LOG.warning("the destination %s could not take %s: %s", host.host, instance_uuid, error)
        current = await power_state_of(host, host.driver_instance(row))
        async with host.db.write() as conn:
            values: dict[str, Any] = {"task_state": None, "power_state": current}
            if error is not None:
                values["vm_state"] = "error"
                await actions.add_fault(conn, instance_uuid, error, host=host.host)
            await instances.update_instance(conn, instance_uuid, values,
                                            expected_task_state=(task_states.MIGRATING,))
            await records.update_migration(conn, migration_id, {"status": "completed" if error is None else "error"},
                                           expected_status=("post-migrating",))
            await host.report_stats(conn)
            await actions.event_finish(conn, context, instance_uuid, POST_EVENT, error=error)


async def rollback_live_migration_at_destination(host: ComputeHost, context: dict[str, Any],
                                                 instance_uuid: str) -> None:
    try:
        await host.driver.rollback_live_migration_at_destination({"uuid": instance_uuid, "name": ""})
    except Exception:
        LOG.exception("rolling back the live migration of %s on %s", instance_uuid, host.host)


async def abort(host: ComputeHost, context: dict[str, Any], instance_uuid: str, migration_id: int) -> None:
    """Stop a live migration of this host: one under way is told to stop (and rolls back itself); one still
    ``queued`` (its cast not taken yet) is ``cancelled`` here and rolled back, so the cast finds it over."""
    control = host.live_migrations.get(migration_id)
    if control is not None:
        control.abort.set()
        return
    async with host.db.write() as conn:
        row = await instances.get_plain(conn, instance_uuid)
        migration = await records.get(conn, migration_id)
        if row is None or migration is None or not await records.update_migration(
                conn, migration_id, {"status": "cancelled"}, expected_status=("queued",)):
            return
        await move_step.give_back_source(conn, row, migration)
        await instances.update_instance(conn, instance_uuid, {"task_state": None},
                                        expected_task_state=(task_states.MIGRATING,))
    LOG.info("live migration %s of %s cancelled before it started", migration_id, instance_uuid)


def force_complete(host: ComputeHost, migration_id: int) -> None:
    """Ask a live migration this host runs to finish now (nothing if it is over already)."""
    control = host.live_migrations.get(migration_id)
    if control is not None:
        control.force_complete.set()
