"""Nova's ``terminate_instance`` on this host: the guest destroyed, the claims given back, the row deleted.

A destroy that fails leaves the instance in ERROR with a fault (and its claims: the guest may still hold them);
an instance already gone only has any claim left given back.
"""

from __future__ import annotations

from typing import Any

from stratus.compute.host import ComputeHost
from stratus.db import actions, instances, placement
from stratus.objects import states

TERMINATE_EVENT = "compute_terminate_instance"


async def terminate_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    async with host.locks(instance_uuid):
        async with host.db.write() as conn:
            instance = await instances.get_plain(conn, instance_uuid)
            if instance is None or instance["deleted"]:
                await placement.remove_allocations(conn, instance_uuid)
                return
            await actions.event_start(conn, context, instance_uuid, TERMINATE_EVENT, host=host.host)
        error: Exception | None = None
        try:
            await host.driver.destroy(host.driver_instance(instance), network_info=[])
        except Exception as exc:
            error = exc
        async with host.db.write() as conn:
            if error is None:
                await placement.remove_allocations(conn, instance_uuid)
                await instances.soft_delete(conn, instance_uuid)
                if host.node:  # none yet while the hypervisor has never answered
                    await host.report_stats(conn)
            else:
                await instances.update_instance(conn, instance_uuid, {"vm_state": states.ERROR,
                                                                      "task_state": None})
                await actions.add_fault(conn, instance_uuid, error, host=host.host)
            await actions.event_finish(conn, context, instance_uuid, TERMINATE_EVENT, error=error)
