"""Evacuation on the compute hosts (Nova's ``rebuild_instance`` with ``evacuate``, and the source's
``_destroy_evacuated_instances`` when it starts again).

The instance's host is down; the conductor has claimed a destination for it and handed the source's usage to
the evacuation's migration record. The destination builds the guest anew from the instance's image (the hosts
share no storage), the instance is the destination's, ``active``, and the migration ``done``. The source, once
it runs again, finds its ``done`` evacuations at start-up: it destroys what is left of their guests, the
migration's allocation (its usage) goes, and the migration is ``completed``. A destination that fails gives
back its claim; the instance goes to ERROR with the fault (still the source's), the migration ``failed``.
"""

from __future__ import annotations

import logging
from typing import Any

from stratus.compute import config_drive, move_step, networking
from stratus.compute.host import ComputeHost
from stratus.compute.instance_action import power_state_of
from stratus.compute.rpcapi import NotSupportedByDriver
from stratus.db import actions, instances, placement
from stratus.db import migration_records as records
from stratus.objects import states
from stratus.objects.states import task_states
from stratus.utils import utcnow

LOG = logging.getLogger(__name__)
EVACUATE_EVENT = "compute_rebuild_instance"


async def rebuild_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str, migration_id: int,
                           image_meta: dict[str, Any], admin_password: str | None,
                           on_shared_storage: bool | None) -> None:
    """Build the evacuated instance here (its disks are not here: the image is spawned again)."""
    async with host.locks(instance_uuid):
        taken = await move_step.begin_step(host, context, instance_uuid, migration_id, task_states.REBUILDING,
                                           ("accepted", "pre-migrating"), EVACUATE_EVENT,
                                           next_task_state=task_states.REBUILD_SPAWNING)
        if taken is None:
            return
        row, migration = taken
        instance = host.driver_instance(row)
        error: Exception | None = None
        try:
            if on_shared_storage:  # Nova's check that the disks are where they were said to be
                raise NotSupportedByDriver(f"Invalid state of instance files on shared storage: {host.host} shares "
                                           f"no storage with {migration['source_compute']}")
            network_info = await networking.bind_here(host, context, instance)
            drive = await config_drive.prepare(host.conf, host.db, host.driver, instance, image_meta,
                                               admin_password=admin_password)
            await host.driver.spawn(instance, image_meta, network_info=network_info, admin_password=admin_password,
                                    config_drive=drive)
        except Exception as exc:
            error = NotSupportedByDriver() if isinstance(exc, NotImplementedError) else exc
        if error is not None:
            LOG.warning("evacuation of %s to %s failed: %s", instance_uuid, host.host, error)
            try:
                await host.driver.destroy(instance, network_info=[])
            except Exception:
                LOG.exception("cleaning up the failed evacuation of %s on %s", instance_uuid, host.host)
            async with host.db.write() as conn:
                await move_step.give_back_source(conn, row, migration)
                await instances.update_instance(conn, instance_uuid, {"vm_state": states.ERROR, "task_state": None},
                                                expected_task_state=(task_states.REBUILD_SPAWNING,))
                await actions.add_fault(conn, instance_uuid, error, host=host.host)
                await records.update_migration(conn, migration_id, {"status": "failed"})
                await actions.event_finish(conn, context, instance_uuid, EVACUATE_EVENT, error=error)
            return
        current = await power_state_of(host, instance)
        async with host.db.write() as conn:
            await instances.update_instance(
                conn, instance_uuid, {"vm_state": states.ACTIVE, "task_state": None, "power_state": current,
                                      "host": host.host, "node": migration["dest_node"] or host.host,
                                      "launched_at": utcnow(), "progress": 0},
                expected_task_state=(task_states.REBUILD_SPAWNING,))
            await records.update_migration(conn, migration_id, {"status": "done"}, expected_status=("pre-migrating",))
            await host.report_stats(conn)
            await actions.event_finish(conn, context, instance_uuid, EVACUATE_EVENT)
        LOG.info("instance %s evacuated from %s to %s", instance_uuid, migration["source_compute"], host.host)


async def destroy_evacuated_instances(host: ComputeHost) -> list[tuple[str, str]]:
    """At start-up: the guests of instances evacuated away from this host go, with the usage the evacuations'
    migration records held here; each such migration is ``completed`` (Nova's ``_destroy_evacuated_instances``)."""
    async with host.db.read() as conn:
        done = await records.list_filtered(conn, {"source_compute": host.host, "migration_type": records.EVACUATION,
                                                  "status": "done"})
    cleaned = []
    for migration in done:
        uuid = migration["instance_uuid"]
        try:
            await host.driver.destroy({"uuid": uuid, "name": ""}, network_info=[])
        except Exception:
            LOG.exception("destroying the evacuated guest of %s on %s", uuid, host.host)
            continue
        async with host.db.write() as conn:
            await placement.remove_allocations(conn, migration["uuid"])
            await records.update_migration(conn, migration["id"], {"status": "completed"},
                                           expected_status=("done",))
        LOG.info("instance %s was evacuated from %s: its guest and usage here are gone", uuid, host.host)
        cleaned.append((uuid, "evacuated: cleaned up"))
    return cleaned
