"""Resize and cold migration on the compute hosts (Nova's ``prep_resize`` → ``resize_instance`` →
``finish_resize``, then ``confirm_resize`` or ``revert_resize`` → ``finish_revert_resize``).

The conductor has claimed the destination for the instance and handed the instance's source usage to the
migration record (placement's model). Each host step is a compare-and-swap on the instance's task_state and on
the migration's status, so a step that finds either moved on (a delete, a second request) stops there:

- destination ``prep_resize``: the driver may refuse the instance; the destination gives its claim back and
  the conductor tries an alternate (as a failed build does);
- source ``resize_instance``: ``resize_migrating``, the driver powers the guest off and hands its disks over,
  ``resize_migrated`` with the instance's host the destination's;
- destination ``finish_resize``: the new flavor, the driver starts the guest there, ``resized`` (VERIFY_RESIZE);
- confirm on the source: what the source kept goes, with the migration's allocation; revert on the
  destination then the source: the destination's guest and claim go, the migration's allocation is the
  instance's again, the source's guest comes back with the old flavor.

Any failure before the instance is ``resized`` reverts cleanly: no guest and no allocation left on the
destination, the source's usage the instance's again, the instance back in its old state with a fault.
"""

from __future__ import annotations

import logging
from typing import Any

from stratus.compute import networking
from stratus.compute.host import ComputeHost
from stratus.compute.instance_action import power_state_of
from stratus.compute.power import power_off_values
from stratus.compute.rpcapi import ComputeAPI, NotSupportedByDriver
from stratus.db import actions, instances, placement
from stratus.db import migration_records as records
from stratus.objects import states
from stratus.objects.states import power_state, task_states

LOG = logging.getLogger(__name__)

PREP_EVENT = "compute_prep_resize"
RESIZE_EVENT = "compute_resize_instance"
FINISH_EVENT = "compute_finish_resize"
CONFIRM_EVENT = "compute_confirm_resize"
REVERT_EVENT = "compute_revert_resize"
FINISH_REVERT_EVENT = "compute_finish_revert_resize"
#: where the instance's vm_state before the move is kept (as Nova's system_metadata ``old_vm_state``)
OLD_VM_STATE = "old_vm_state"


def flavor_values(flavor: dict[str, Any]) -> dict[str, Any]:
    """The instance columns a flavor sets."""
    return {"flavor": flavor, "vcpus": flavor["vcpus"], "memory_mb": flavor["memory_mb"],
            "root_gb": flavor["root_gb"], "ephemeral_gb": flavor.get("ephemeral_gb") or 0}


async def _load(host: ComputeHost, uuid: str, migration_id: int, task: tuple[str | None, ...],
                status: tuple[str, ...], vm_state: tuple[str, ...] | None = None
                ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The instance and its migration if both are where this step expects them, else None (logged)."""
    async with host.db.read() as conn:
        row = await instances.get_plain(conn, uuid)
        migration = await records.get(conn, migration_id)
    if (row is None or row["deleted"] or row["task_state"] not in task or migration is None
            or migration["status"] not in status or (vm_state is not None and row["vm_state"] not in vm_state)):
        LOG.info("move step of %s on %s skipped: instance %s, migration %s", uuid, host.host,
                 "gone" if row is None or row["deleted"] else f"{row['vm_state']}/{row['task_state']}",
                 None if migration is None else migration["status"])
        return None
    return row, migration


def _unsupported(exc: Exception) -> Exception:
    return NotSupportedByDriver() if isinstance(exc, NotImplementedError) else exc


# --- destination: prep_resize ----------------------------------------------------------------------------
async def prep_resize(host: ComputeHost, context: dict[str, Any], instance_uuid: str, migration_id: int,
                      request_spec: dict[str, Any], selection: dict[str, Any], alternates: list[dict[str, Any]],
                      tried_hosts: list[str], clean_shutdown: bool = True) -> None:
    """The destination takes the instance (or refuses it: its claim back, the conductor tries an alternate)."""
    refused: Exception | None = None
    async with host.locks(instance_uuid):
        loaded = await _load(host, instance_uuid, migration_id, (task_states.RESIZE_PREP,), ("pre-migrating",))
        if loaded is None:
            async with host.db.write() as conn:  # the claim made for this host goes with the step
                await placement.remove_allocations_on(conn, instance_uuid, [selection["provider_id"]])
            return
        row, migration = loaded
        async with host.db.write() as conn:
            await actions.event_start(conn, context, instance_uuid, PREP_EVENT, host=host.host)
        try:
            await host.driver.prepare_migration_destination(
                host.driver_instance({**row, **flavor_values(migration["new_flavor"])}), migration["new_flavor"])
        except Exception as exc:
            refused = _unsupported(exc)
        async with host.db.write() as conn:
            if refused is not None:
                LOG.warning("destination %s refused the move of %s: %s", host.host, instance_uuid, refused)
                await placement.remove_allocations_on(conn, instance_uuid, [selection["provider_id"]])
            else:
                await records.update_migration(conn, migration_id, {
                    "dest_compute": host.host, "dest_host": host.host,
                    "dest_node": selection.get("nodename") or host.node.get("hypervisor_hostname", host.host)},
                    expected_status=("pre-migrating",))
            await actions.event_finish(conn, context, instance_uuid, PREP_EVENT, error=refused)
    if refused is not None:
        await host.conductor.resize_reschedule(context, instance_uuid, migration_id, request_spec, alternates,
                                               host.host, str(refused), [*tried_hosts, host.host], clean_shutdown)
        return
    await ComputeAPI(host.transport).resize_instance(context, migration["source_compute"], instance_uuid,
                                                     migration_id, clean_shutdown)


# --- source: resize_instance -----------------------------------------------------------------------------
async def resize_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str, migration_id: int,
                          clean_shutdown: bool = True) -> None:
    """Power the guest off and hand its disks to the destination; the instance's host is the destination's."""
    async with host.locks(instance_uuid):
        loaded = await _load(host, instance_uuid, migration_id, (task_states.RESIZE_PREP,), ("pre-migrating",))
        if loaded is None:
            return
        row, migration = loaded
        async with host.db.write() as conn:
            await actions.event_start(conn, context, instance_uuid, RESIZE_EVENT, host=host.host)
            moving = await instances.update_instance(conn, instance_uuid, {"task_state": task_states.RESIZE_MIGRATING},
                                                     expected_task_state=(task_states.RESIZE_PREP,))
            moving = moving and await records.update_migration(conn, migration_id, {"status": "migrating"},
                                                               expected_status=("pre-migrating",))
        if not moving:
            return
        instance = host.driver_instance(row)
        try:
            timeout, retry_interval = power_off_values(host, instance, clean_shutdown)
            await host.driver.migrate_disk_and_power_off(instance, migration["dest_compute"],
                                                         migration["new_flavor"], timeout, retry_interval)
        except Exception as exc:
            error = _unsupported(exc)
            LOG.warning("resize of %s failed on its source %s: %s", instance_uuid, host.host, error)
            current = await power_state_of(host, instance)
            await revert_claims(host, context, row, migration, error, RESIZE_EVENT,
                                (task_states.RESIZE_MIGRATING,), {"power_state": current})
            return
        async with host.db.write() as conn:
            done = await instances.update_instance(
                conn, instance_uuid, {"task_state": task_states.RESIZE_MIGRATED, "host": migration["dest_compute"],
                                      "node": migration["dest_node"], "power_state": power_state.SHUTDOWN,
                                      "system_metadata": {**(row["system_metadata"] or {}),
                                                          OLD_VM_STATE: row["vm_state"]}},
                expected_task_state=(task_states.RESIZE_MIGRATING,))
            await records.update_migration(conn, migration_id, {"status": "post-migrating"},
                                           expected_status=("migrating",))
            await actions.event_finish(conn, context, instance_uuid, RESIZE_EVENT)
    if done:
        await ComputeAPI(host.transport).finish_resize(context, migration["dest_compute"], instance_uuid,
                                                       migration_id)


# --- destination: finish_resize --------------------------------------------------------------------------
async def finish_resize(host: ComputeHost, context: dict[str, Any], instance_uuid: str, migration_id: int) -> None:
    """Start the guest here with the new flavor: ``resized`` (VERIFY_RESIZE); a failure reverts to the source."""
    revert_to: str | None = None
    async with host.locks(instance_uuid):
        loaded = await _load(host, instance_uuid, migration_id, (task_states.RESIZE_MIGRATED,), ("post-migrating",))
        if loaded is None:
            return
        row, migration = loaded
        old_vm_state = (row["system_metadata"] or {}).get(OLD_VM_STATE) or states.ACTIVE
        new_values = flavor_values(migration["new_flavor"])
        async with host.db.write() as conn:
            await actions.event_start(conn, context, instance_uuid, FINISH_EVENT, host=host.host)
            if not await instances.update_instance(conn, instance_uuid,
                                                   {"task_state": task_states.RESIZE_FINISH, **new_values},
                                                   expected_task_state=(task_states.RESIZE_MIGRATED,)):
                return
        instance = host.driver_instance({**row, **new_values})
        try:
            network_info = await networking.bind_here(host, context, instance)
            await host.driver.finish_migration(instance, {}, power_on=old_vm_state != states.STOPPED,
                                               network_info=network_info)
        except Exception as exc:
            error = _unsupported(exc)
            LOG.warning("resize of %s failed on its destination %s: %s; reverting to %s", instance_uuid,
                        host.host, error, migration["source_compute"])
            try:
                await host.driver.destroy(instance, network_info=[])
            except Exception:
                LOG.exception("cleaning up the failed resize of %s on %s", instance_uuid, host.host)
            async with host.db.write() as conn:
                await _give_back_destination(conn, row, migration)
                await instances.update_instance(conn, instance_uuid, {"task_state": task_states.RESIZE_REVERTING},
                                                expected_task_state=(task_states.RESIZE_FINISH,))
                await records.update_migration(conn, migration_id, {"status": "error"})
                await actions.add_fault(conn, instance_uuid, error, host=host.host)
                await actions.event_finish(conn, context, instance_uuid, FINISH_EVENT, error=error)
            revert_to = migration["source_compute"]
        else:
            current = await power_state_of(host, instance)
            async with host.db.write() as conn:
                done = await instances.update_instance(
                    conn, instance_uuid, {"vm_state": states.RESIZED, "task_state": None, "power_state": current,
                                          "progress": 100},
                    expected_task_state=(task_states.RESIZE_FINISH,))
                if done:
                    await records.update_migration(conn, migration_id, {"status": "finished"},
                                                   expected_status=("post-migrating",))
                await host.report_stats(conn)
                await actions.event_finish(conn, context, instance_uuid, FINISH_EVENT)
            LOG.info("instance %s resized onto %s: waiting for its confirm", instance_uuid, host.host)
    if revert_to is not None:
        await ComputeAPI(host.transport).finish_revert_resize(context, revert_to, instance_uuid, migration_id)


async def _give_back_destination(conn: Any, row: dict[str, Any], migration: dict[str, Any]) -> None:
    """The destination's part of a move undone in one transaction: the instance's claim there goes, the
    migration's allocation (the source's usage) is the instance's again, and the instance is the source's."""
    uuid = row["uuid"]
    await placement.remove_allocations(conn, uuid)
    await placement.move_allocations(conn, migration["uuid"], uuid, row["project_id"], row["user_id"])
    await instances.update_instance(conn, uuid, {"host": migration["source_compute"],
                                                 "node": migration["source_node"]})


async def revert_claims(host: ComputeHost, context: dict[str, Any], row: dict[str, Any], migration: dict[str, Any],
                        error: Exception, event: str, expected: tuple[str | None, ...],
                        extra: dict[str, Any] | None = None) -> None:
    """A move that failed before the instance left its source: the destination's claim goes, the source's
    usage is the instance's again, the instance keeps its vm_state (task_state cleared), the migration is
    ``error``, and the failure is the instance's fault."""
    async with host.db.write() as conn:
        await _give_back_destination(conn, row, migration)
        if await instances.update_instance(conn, row["uuid"], {"task_state": None, **(extra or {})},
                                           expected_task_state=expected):
            await actions.add_fault(conn, row["uuid"], error, host=host.host)
        await records.update_migration(conn, migration["id"], {"status": "error"})
        await actions.event_finish(conn, context, row["uuid"], event, error=error)


# --- source: confirm_resize ------------------------------------------------------------------------------
async def confirm_resize(host: ComputeHost, context: dict[str, Any], instance_uuid: str, migration_id: int) -> None:
    """The move is kept: what the source kept goes, and so does the migration's allocation on the source."""
    async with host.locks(instance_uuid):
        loaded = await _load(host, instance_uuid, migration_id, (None,), ("confirming",), (states.RESIZED,))
        if loaded is None:
            return
        row, migration = loaded
        async with host.db.write() as conn:
            await actions.event_start(conn, context, instance_uuid, CONFIRM_EVENT, host=host.host)
        error: Exception | None = None
        try:
            await host.driver.confirm_migration(host.driver_instance(row))
        except Exception as exc:
            error = _unsupported(exc)
            LOG.warning("confirming the resize of %s on %s failed: %s", instance_uuid, host.host, error)
        sysmeta = {k: v for k, v in (row["system_metadata"] or {}).items() if k != OLD_VM_STATE}
        async with host.db.write() as conn:
            await placement.remove_allocations(conn, migration["uuid"])
            if error is None:
                vm_state = states.STOPPED if row["power_state"] == power_state.SHUTDOWN else states.ACTIVE
                await instances.update_instance(conn, instance_uuid, {"vm_state": vm_state, "task_state": None,
                                                                      "system_metadata": sysmeta},
                                                expected_vm_state=(states.RESIZED,))
                await records.update_migration(conn, migration_id, {"status": "confirmed"},
                                               expected_status=("confirming",))
            else:
                await instances.update_instance(conn, instance_uuid, {"vm_state": states.ERROR, "task_state": None},
                                                expected_vm_state=(states.RESIZED,))
                await records.update_migration(conn, migration_id, {"status": "error"})
                await actions.add_fault(conn, instance_uuid, error, host=host.host)
            await host.report_stats(conn)
            await actions.event_finish(conn, context, instance_uuid, CONFIRM_EVENT, error=error)


async def cleanup_migration_source(host: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    """The instance was deleted during a move: what this source kept to undo it goes."""
    try:
        await host.driver.confirm_migration({"uuid": instance_uuid, "name": ""})
    except NotImplementedError:
        pass


# --- destination then source: revert_resize, finish_revert_resize ------------------------------------------
async def revert_resize(host: ComputeHost, context: dict[str, Any], instance_uuid: str, migration_id: int) -> None:
    """The destination drops its guest and claim; the source's usage is the instance's again."""
    failed: Exception | None = None
    async with host.locks(instance_uuid):
        loaded = await _load(host, instance_uuid, migration_id, (task_states.RESIZE_REVERTING,), ("reverting",))
        if loaded is None:
            return
        row, migration = loaded
        async with host.db.write() as conn:
            await actions.event_start(conn, context, instance_uuid, REVERT_EVENT, host=host.host)
        try:
            await host.driver.destroy(host.driver_instance(row), network_info=[])
        except Exception as exc:
            failed = _unsupported(exc)
        async with host.db.write() as conn:
            if failed is None:
                await _give_back_destination(conn, row, migration)
                await host.report_stats(conn)
            else:
                LOG.warning("reverting the resize of %s on %s failed: %s", instance_uuid, host.host, failed)
                await instances.update_instance(conn, instance_uuid, {"vm_state": states.ERROR, "task_state": None})
                await records.update_migration(conn, migration_id, {"status": "error"})
                await actions.add_fault(conn, instance_uuid, failed, host=host.host)
            await actions.event_finish(conn, context, instance_uuid, REVERT_EVENT, error=failed)
    if failed is None:
        await ComputeAPI(host.transport).finish_revert_resize(context, migration["source_compute"], instance_uuid,
                                                              migration_id)


async def finish_revert_resize(host: ComputeHost, context: dict[str, Any], instance_uuid: str,
                               migration_id: int) -> None:
    """The source's guest back with the old flavor, in the instance's vm_state before the move. After a revert
    asked for, the migration is ``reverted``; after a failed destination (already ``error``), it stays so."""
    async with host.locks(instance_uuid):
        loaded = await _load(host, instance_uuid, migration_id, (task_states.RESIZE_REVERTING,),
                             ("reverting", "error"))
        if loaded is None:
            return
        row, migration = loaded
        sysmeta = dict(row["system_metadata"] or {})
        old_vm_state = sysmeta.pop(OLD_VM_STATE, None) or states.ACTIVE
        old_values = flavor_values(migration["old_flavor"])
        async with host.db.write() as conn:
            await actions.event_start(conn, context, instance_uuid, FINISH_REVERT_EVENT, host=host.host)
        instance = host.driver_instance({**row, **old_values})
        error: Exception | None = None
        try:
            network_info = await networking.bind_here(host, context, instance)
            await host.driver.finish_revert_migration(instance, power_on=old_vm_state != states.STOPPED,
                                                      network_info=network_info)
        except Exception as exc:
            error = _unsupported(exc)
            LOG.warning("the source %s could not take %s back: %s", host.host, instance_uuid, error)
        current = await power_state_of(host, instance)
        async with host.db.write() as conn:
            values: dict[str, Any] = {**old_values, "task_state": None, "power_state": current,
                                      "system_metadata": sysmeta, "progress": 0,
                                      "vm_state": old_vm_state if error is None else states.ERROR}
            await instances.update_instance(conn, instance_uuid, values,
                                            expected_task_state=(task_states.RESIZE_REVERTING,))
            if error is not None:
                await actions.add_fault(conn, instance_uuid, error, host=host.host)
            await records.update_migration(conn, migration_id,
                                           {"status": "reverted" if error is None else "error"},
                                           expected_status=("reverting",))
            await host.report_stats(conn)
            await actions.event_finish(conn, context, instance_uuid, FINISH_REVERT_EVENT, error=error)
        LOG.info("instance %s is back on %s", instance_uuid, host.host)
