"""Soft delete, restore and reclaim on the server's host (Nova's ``soft_delete_instance``, ``restore_instance``
and ``_reclaim_queued_deletes``), with ``[DEFAULT] reclaim_instance_interval`` above 0.

A delete then powers the guest off and leaves the server ``soft-delete`` (status SOFT_DELETED) with its claim;
restore powers it on again (``active``); the host's periodic task deletes, for good, the servers soft-deleted
longer than the interval ago (as a delete does: the guest destroyed, the claims given back).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from stratus.compute import delete, instance_action, power_sync
from stratus.compute.host import ComputeHost
from stratus.compute.instance_action import Outcome, power_state_of
from stratus.db import instances
from stratus.objects import states
from stratus.objects.states import task_states
from stratus.utils import utcnow

LOG = logging.getLogger(__name__)


async def soft_delete_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    async def run(instance: dict[str, Any]) -> Outcome:
        await host.driver.power_off(instance)
        return {"vm_state": states.SOFT_DELETED, "power_state": await power_state_of(host, instance)}

    await instance_action.run(host, context, instance_uuid, "compute_soft_delete_instance",
                              (task_states.SOFT_DELETING,), run)


async def restore_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    async def run(instance: dict[str, Any]) -> Outcome:
        await host.driver.power_on(instance)
        return {"vm_state": states.ACTIVE, "power_state": await power_state_of(host, instance)}

    await instance_action.run(host, context, instance_uuid, "compute_restore_instance", (task_states.RESTORING,),
                              run)


async def reclaim_queued_deletes(host: ComputeHost, context: dict[str, Any]) -> list[str]:
    """This host's servers soft-deleted longer than ``reclaim_instance_interval`` ago are deleted."""
    interval = host.conf.reclaim_instance_interval
    if interval <= 0:
        return []
    cutoff = utcnow() - datetime.timedelta(seconds=interval)
    async with host.db.read() as conn:
        rows = [r for r in await power_sync.host_instances(conn, host.host, full=True)
                if r["vm_state"] == states.SOFT_DELETED and r["task_state"] is None and r["updated_at"] < cutoff]
    done = []
    for row in rows:
        async with host.db.write() as conn:
            if not await instances.update_instance(conn, row["uuid"], {"task_state": task_states.DELETING},
                                                   expected_task_state=(None,),
                                                   expected_vm_state=(states.SOFT_DELETED,)):
                continue
        LOG.info("reclaiming soft-deleted %s on %s", row["uuid"], host.host)
        await delete.terminate_instance(host, context, row["uuid"])
        done.append(row["uuid"])
    return done
