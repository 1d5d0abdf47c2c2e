"""Rebuild in place on the server's host (Nova's ``rebuild_instance`` without ``evacuate``): the guest is
destroyed and spawned again from the new image the API recorded, on the same host with the same claim.

Steps, each a compare-and-swap on the task_state: ``rebuilding`` (the guest goes), ``rebuild_block_device_mapping``,
``rebuild_spawning`` (the driver spawns the new image), then ``active``, or ``stopped`` again for a server that
was stopped (Nova powers it off after the spawn). A failed spawn leaves the server in ERROR with the fault, as
Nova's; a delete meanwhile wins.
"""

from __future__ import annotations

import logging
from typing import Any

from stratus.compute import config_drive, networking
from stratus.compute.host import ComputeHost
from stratus.compute.instance_action import UnexpectedTaskState, advance, power_state_of
from stratus.compute.rpcapi import NotSupportedByDriver
from stratus.db import actions, instances
from stratus.objects import states
from stratus.objects.states import task_states
from stratus.utils import utcnow

LOG = logging.getLogger(__name__)
REBUILD_EVENT = "compute_rebuild_instance"


async def rebuild_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str,
                           image_meta: dict[str, Any], admin_password: str | None,
                           preserve_ephemeral: bool = False, injected_files: list[dict[str, str]] | None = None
                           ) -> None:
    async with host.locks(instance_uuid):
        async with host.db.write() as conn:
            row = await instances.get_plain(conn, instance_uuid)
            if row is None or row["deleted"] or row["task_state"] != task_states.REBUILDING:
                return
            await actions.event_start(conn, context, instance_uuid, REBUILD_EVENT, host=host.host)
        instance = host.driver_instance(row)
        was_stopped = row["vm_state"] == states.STOPPED
        error: Exception | None = None
        try:
            # the guest keeps its ports and addresses: the same VIFs are unplugged and plugged again
            network_info = await networking.bind_here(host, context, instance)
            await host.driver.destroy(instance, network_info=network_info, destroy_disks=not preserve_ephemeral)
            await advance(host, instance_uuid, {"task_state": task_states.REBUILD_BLOCK_DEVICE_MAPPING},
                          (task_states.REBUILDING,))
            await advance(host, instance_uuid, {"task_state": task_states.REBUILD_SPAWNING},
                          (task_states.REBUILD_BLOCK_DEVICE_MAPPING,))
            drive = await config_drive.prepare(host.conf, host.db, host.driver, instance, image_meta,
                                               admin_password=admin_password, injected_files=injected_files)
            await host.driver.spawn(instance, image_meta, network_info=network_info, admin_password=admin_password,
                                    config_drive=drive)
            if was_stopped:
                await host.driver.power_off(instance)
        except UnexpectedTaskState as exc:  # deleted (or reset) meanwhile: the delete cleans up
            async with host.db.write() as conn:
                await actions.event_finish(conn, context, instance_uuid, REBUILD_EVENT, error=exc)
            return
        except Exception as exc:
            error = NotSupportedByDriver() if isinstance(exc, NotImplementedError) else exc
        current = await power_state_of(host, instance)
        async with host.db.write() as conn:
            expected = (task_states.REBUILDING, task_states.REBUILD_BLOCK_DEVICE_MAPPING,
                        task_states.REBUILD_SPAWNING)
            if error is None:
                await instances.update_instance(conn, instance_uuid, {
                    "vm_state": states.STOPPED if was_stopped else states.ACTIVE, "task_state": None,
                    "power_state": current, "launched_at": utcnow(), "progress": 0},
                    expected_task_state=expected)
                await actions.event_finish(conn, context, instance_uuid, REBUILD_EVENT)
            else:
                LOG.warning("rebuild of %s on %s failed: %s", instance_uuid, host.host, error)
                if await instances.update_instance(conn, instance_uuid, {
                        "vm_state": states.ERROR, "task_state": None, "power_state": current},
                        expected_task_state=expected):
                    await actions.add_fault(conn, instance_uuid, error, host=host.host)
                await actions.event_finish(conn, context, instance_uuid, REBUILD_EVENT, error=error)
