"""Nova's ``terminate_instance`` on this host: the guest destroyed, the claims given back, the row deleted.

A destroy that fails leaves the instance in ERROR with a fault (and its claims: the guest may still hold them);
an instance already gone only has any claim left given back. A move under way ends with the delete: its
migration's allocation (the source's usage) goes too, a resize waiting for its confirm is confirmed (Nova's
``_confirm_resize_on_deleting``), any other move is ``error``, and the source drops what it kept to undo it.
"""

from __future__ import annotations

import logging
from typing import Any

from stratus.compute import networking
from stratus.compute.host import ComputeHost
from stratus.compute.rpcapi import ComputeAPI
from stratus.db import actions, info_cache, instances, placement
from stratus.db import migration_records as records
from stratus.objects import states
from stratus.priority import background_turn

LOG = logging.getLogger(__name__)
TERMINATE_EVENT = "compute_terminate_instance"


async def terminate_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    async with host.locks(instance_uuid):
        await background_turn()  # after the API's requests (stratus/priority.py)
        async with host.db.write() as conn:
            instance = await instances.get_plain(conn, instance_uuid)
            if instance is None or instance["deleted"]:
                await placement.remove_allocations(conn, instance_uuid)
                return
            await actions.event_start(conn, context, instance_uuid, TERMINATE_EVENT, host=host.host)
            moves = await records.in_progress_for_instance(conn, instance_uuid)
            network_info = await info_cache.get(conn, instance_uuid)  # here, not in a read of its own
        error: Exception | None = None
        try:
            await host.driver.destroy(host.driver_instance(instance), network_info=network_info)
        except Exception as exc:
            error = exc
        if error is None:  # Nova's _try_deallocate_network: the ports go with the guest
            await networking.deallocate(host, context, instance, cached=network_info)
        await background_turn()
        async with host.db.write() as conn:
            if error is None:
                await placement.remove_allocations(conn, instance_uuid)
                for move in moves:
                    await placement.remove_allocations(conn, move["uuid"])
                    await records.update_migration(
                        conn, move["id"], {"status": "confirmed" if move["status"] == "finished" else "error"})
                await instances.soft_delete(conn, instance_uuid)
            else:
                await instances.update_instance(conn, instance_uuid, {"vm_state": states.ERROR,
                                                                      "task_state": None})
                await actions.add_fault(conn, instance_uuid, error, host=host.host)
            await actions.event_finish(conn, context, instance_uuid, TERMINATE_EVENT, error=error)
    if error is None:
        host.stats_changed()  # one write for the deletes that end together (none while the node is unknown)
        await _clean_sources(host, context, instance_uuid, moves)


async def _clean_sources(host: ComputeHost, context: dict[str, Any], instance_uuid: str,
                         moves: list[dict[str, Any]]) -> None:
    """The sources of the deleted instance's moves drop what they kept (this host's at once)."""
    for source in {m["source_compute"] for m in moves if m["source_compute"]}:
        try:
            if source == host.host:
                await host.driver.confirm_migration({"uuid": instance_uuid, "name": ""})
            else:
                await ComputeAPI(host.transport).cleanup_migration_source(context, source, instance_uuid)
        except Exception:  # the source's start-up and reaper find what is left
            LOG.warning("cleaning the move of deleted %s on %s failed", instance_uuid, source, exc_info=True)
