"""Nova's ``_check_instance_build_time``: a compute host's builds that have been building longer than ``[DEFAULT]
instance_build_timeout`` (counted from the instance's creation) go to ERROR.

The backstop for any build that stalls (a hung driver call, a download that never ends, a cast that never came):
the instance goes to ERROR with the fault "Instance build timed out. Set to error state." and its claims are
released, in one compare-and-swap on its state; then its ports are released as a failed build's (those the user
brought unbound and kept, the others deleted), so a server in ERROR holds no address. Nothing waits for the build
itself (it may be stuck for good): if it goes on, its next step finds the instance no longer building and undoes
what it made (the build's own ``BuildInterrupted`` path). The conductors time out the builds no host has started
the same way.
"""

from __future__ import annotations

import datetime
import logging

from sqlalchemy import select

from stratus import exception
from stratus.compute import networking
from stratus.compute.host import ComputeHost
from stratus.context import RequestContext
from stratus.db import actions, instances, placement
from stratus.db.models import instance_actions
from stratus.db.models import instances as instances_table
from stratus.objects import states
from stratus.utils import utcnow

LOG = logging.getLogger(__name__)
BUILD_EVENT = "compute__do_build_and_run_instance"
#: Nova's default spacing of periodic tasks; a shorter timeout is checked as often as it is long
MAX_SPACING = 60.0


def spacing(timeout: int) -> float:
    """Seconds between checks: Nova's 60, or the timeout itself when it is shorter."""
    return float(min(MAX_SPACING, max(1, timeout)))


async def check_instance_build_time(host: ComputeHost) -> list[tuple[str, str]]:
    """Time out the host's builds older than the timeout; returns (uuid, "timed out") pairs."""
    timeout = host.conf.instance_build_timeout
    if not timeout:
        return []
    cutoff = utcnow() - datetime.timedelta(seconds=timeout)
    c = instances_table.c
    async with host.db.read() as conn:
        rows = [dict(r) for r in (await conn.execute(
            select(c.uuid, c.task_state).where(c.host == host.host, c.deleted == 0,
                                               c.vm_state == states.BUILDING, c.created_at < cutoff))).mappings()]
    done = []
    for row in rows:
        try:
            if await _time_out(host, row["uuid"], row["task_state"]):
                done.append((row["uuid"], "timed out"))
        except Exception:
            LOG.exception("timing out the build of %s on %s failed", row["uuid"], host.host)
    return done


async def _time_out(host: ComputeHost, uuid: str, task_state: str | None) -> bool:
    error = exception.InstanceBuildTimeout()
    async with host.db.write() as conn:
        if not await instances.update_instance(conn, uuid, {"vm_state": states.ERROR, "task_state": None},
                                               expected_vm_state=(states.BUILDING,),
                                               expected_task_state=(task_state,)):
            return False  # the build moved on meanwhile: judged again at the next check if still building
        await placement.remove_allocations(conn, uuid)
        await actions.add_fault(conn, uuid, error, host=host.host, code=500)
        row = (await conn.execute(select(instance_actions.c.request_id).where(
            instance_actions.c.instance_uuid == uuid, instance_actions.c.action == "create")
            .order_by(instance_actions.c.id.desc()).limit(1))).first()
        if row is not None:
            await actions.event_finish(conn, {"request_id": row[0]}, uuid, BUILD_EVENT, error=error)
    LOG.warning("instance %s on %s: %s", uuid, host.host, error.message)
    host.dispatch(networking.release_failed_build(host, RequestContext.admin().to_dict(), uuid))
    return True
