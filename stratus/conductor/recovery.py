"""The conductor's recovery pass: builds that lost their conductor are scheduled again, stuck ones time out.

Level-triggered (as the compute host's start-up reconciliation): when the conductor starts and every ``[conductor]
build_recovery_interval``, it reads every instance still waiting for a compute host to take it (``building`` /
``scheduling``) with its lease (db/builds.py) and judges each from that alone:

- older than ``[DEFAULT] instance_build_timeout``: ERROR with the fault "Instance build timed out. Set to error
  state.", its claims released (placed on a host or not; the host's own check does the same from its side) and
  its ports released as a failed build's (a rescheduled build has the ports its first host made);
- cast to a host whose compute service is down (silent past ``service_down_time``, forced down, or deleted)
  and never taken by it: the cast waits in that host's queue with nobody to consume it, so the build is taken
  over, its claims given back, its host cleared and it is scheduled again away from that host (a host that comes
  back finds the build is no longer its own and leaves it: compute/conductor.py); Nova leaves such a build in BUILD;
- on a live host already: the host's (its start-up puts an interrupted build in ERROR);
- waiting for a host, and its conductor is gone: the lease is nobody's and was handed over longer than the
  interval ago (or, with the in-process transport, before this process started: that cast died with its process),
  or it is held by a conductor whose service is down, or by this conductor though no coroutine of this process
  works on it (its previous run): the lease is taken over at the generation seen, any claim the dead conductor made
  is given back, and the builds of one boot request are scheduled again together, with their stored request spec,
  as ``schedule_and_build_instances`` would (Stratus's choice; Nova leaves such an instance in BUILD);
- anything else is in the hands of a live conductor.

An offloaded server left ``unshelving`` with no host (the conductor scheduling its unshelve died, or its cast to the
chosen host was lost with the process) is judged the same way: with the in-process transport, when its unshelve was
asked before this process started; on any transport, once it is older than ``instance_build_timeout``. It stays
offloaded, as after an unshelve with no host, its claim given back and the fault recorded, so it can be unshelved
again (Stratus's choice; Nova leaves it ``unshelving``). A host that took the unshelve records itself on the
instance first, and its start-up judges it from there.

Then allocations nothing will ever give back (of deleted instances, or of instances in ERROR without a host) are
removed. One instance that fails does not stop the pass; the pass returns what it did, as (uuid, action) pairs.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from stratus import exception
from stratus.compute import networking
from stratus.conductor import build
from stratus.conductor.build import RETRY_EVENT, SCHEDULE_EVENT
from stratus.conductor.state import ConductorState
from stratus.conductor.unshelve import UNSHELVE_EVENT
from stratus.context import RequestContext
from stratus.db import actions, builds, instances, placement
from stratus.db import services as services_db
from stratus.db.models import instance_actions
from stratus.db.models import instances as instances_table
from stratus.objects import states
from stratus.objects.states import task_states
from stratus.utils import utcnow

if TYPE_CHECKING:
    import datetime

LOG = logging.getLogger(__name__)


class ConductorLost(exception.StratusException):
    """The event a dead conductor left open: closed by the conductor that schedules the build again."""

    msg_fmt = "The conductor scheduling instance %(instance_uuid)s went away (%(why)s); scheduling it again"


class UnshelveLost(exception.StratusException):
    msg_fmt = "The unshelve of instance %(instance_uuid)s was lost (%(why)s); it stays offloaded"


class BuildHostDown(exception.StratusException):
    """The event of a build cast to a host that is down: closed by the conductor that schedules it again."""

    msg_fmt = ("Compute host %(host)s of instance %(instance_uuid)s is down and never took the build; "
               "scheduling it again")


async def reconcile(conductor: ConductorState) -> list[tuple[str, str]]:
    now = utcnow()
    async with conductor.db.read() as conn:
        rows = await builds.waiting(conn)
    done: list[tuple[str, str]] = []
    orphans: dict[str, list[tuple[dict[str, Any], str]]] = defaultdict(list)
    for row in rows:
        try:
            verdict = judge(conductor, row, now)
            if verdict == "timeout":
                if await _time_out(conductor, row):
                    done.append((row["uuid"], "timed out"))
            elif verdict is not None:
                orphans[row["reservation_id"]].append((row, verdict))
        except Exception:
            LOG.exception("recovery of the build of %s failed", row["uuid"])
            done.append((row["uuid"], "failed"))
    for group in orphans.values():
        try:
            done += await _schedule_again(conductor, group)
        except Exception:
            LOG.exception("scheduling again the builds of reservation %s failed", group[0][0]["reservation_id"])
            done += [(row["uuid"], "failed") for row, _ in group]
    try:
        done += await recover_unshelves(conductor, now)
    except Exception:
        LOG.exception("recovery of lost unshelves failed")
    done += await release_stranded(conductor)
    return done


def judge(conductor: ConductorState, row: dict[str, Any], now: datetime.datetime) -> str | None:
    """What the pass does with one waiting build: "timeout", the reason its conductor is gone (schedule it
    again), or None (leave it)."""
    timeout = conductor.conf.instance_build_timeout
    if timeout and builds.older_than(row["created_at"], timeout, now):
        return "timeout"
    if row["spec"] is None or row["uuid"] in conductor.in_flight:
        return None
    if row["host"] is not None:
        service = row["host_service"]
        if service is None or not services_db.is_up(service, conductor.conf.service_down_time, now):
            return f"its host {row['host']} is down"
        return None
    holder = row["conductor_id"]
    if holder is None:
        since = row["since"]
        if builds.older_than(since, conductor.conf.conductor.build_recovery_interval, now):
            return "no conductor took it"
        if conductor.in_process and since is not None and since < conductor.started_at:
            return "its cast was lost with the process that sent it"
        return None
    if holder == conductor.service_id:
        return None if row["uuid"] in conductor.in_flight else "this conductor restarted"
    service = row["service"]
    if service is None or not services_db.is_up(service, conductor.conf.service_down_time, now):
        return f"conductor service {holder} is down"
    return None


async def _context_of(conductor: ConductorState, uuid: str, action: str = "create") -> dict[str, Any]:
    """An admin context under the request id of the instance's newest ``action``, so the events recovery
    records join the action the user started."""
    context = RequestContext.admin()
    async with conductor.db.read() as conn:
        row = (await conn.execute(select(instance_actions.c.request_id).where(
            instance_actions.c.instance_uuid == uuid, instance_actions.c.action == action)
            .order_by(instance_actions.c.id.desc()).limit(1))).first()
    if row is not None:
        context.request_id = row[0]
    return context.to_dict()


async def _time_out(conductor: ConductorState, row: dict[str, Any]) -> bool:
    """ERROR with Nova's timeout message as the fault, claims released. A build still waiting for a host has
    its lease taken first, so the conductor that may still be scheduling it records nothing more."""
    uuid = row["uuid"]
    error = exception.InstanceBuildTimeout()
    context = await _context_of(conductor, uuid)
    async with conductor.db.write() as conn:
        if row["host"] is None and row["generation"] is not None and not await builds.take_over(
                conn, uuid, conductor.service_id, row["generation"]):
            return False
        if not await instances.update_instance(conn, uuid, {"vm_state": states.ERROR, "task_state": None},
                                               expected_vm_state=(states.BUILDING,),
                                               expected_task_state=(task_states.SCHEDULING,)):
            return False
        await placement.remove_allocations(conn, uuid)
        await actions.add_fault(conn, uuid, error, host=row["host"], code=500)
        for event in (SCHEDULE_EVENT, RETRY_EVENT):
            await actions.event_finish(conn, context, uuid, event, error=error)
    LOG.warning("instance %s: %s", uuid, error.message)
    conductor.dispatch(networking.release_failed_build(conductor, context, uuid))
    return True


async def _schedule_again(conductor: ConductorState, group: list[tuple[dict[str, Any], str]]
                          ) -> list[tuple[str, str]]:
    """Take over the builds of one boot request, give back their claims, and schedule them together."""
    uuids = [row["uuid"] for row, _ in group]
    context = await _context_of(conductor, uuids[0])
    taken: list[str] = []
    down_hosts: set[str] = set()
    with conductor.in_flight.hold(uuids):
        async with conductor.db.write() as conn:
            for row, why in group:
                uuid, host = row["uuid"], row["host"]
                if not await builds.take_over(conn, uuid, conductor.service_id, row["generation"]):
                    continue  # another conductor was first
                if not await builds.still_waiting(conn, uuid, row["generation"] + 1, host):
                    continue  # placed, taken by its host, failed or deleted since it was read: nothing to do
                LOG.warning("instance %s waits for a host and %s: scheduling it again", uuid, why)
                if host is None:
                    lost: exception.StratusException = ConductorLost(instance_uuid=uuid, why=why)
                else:
                    lost = BuildHostDown(instance_uuid=uuid, host=host)
                    down_hosts.add(host)
                    # no host until the new one is recorded: the old one, back, must not take it. A compare-and-
                    # swap against the host's own take (compute/conductor.py): if the host took the build since it
                    # was read (it was only slow to beat, not down), the build and its claims are the host's
                    if not await instances.update_instance(conn, uuid, {"host": None, "node": None,
                                                                        "launched_on": None},
                                                           expected_vm_state=(states.BUILDING,),
                                                           expected_task_state=(task_states.SCHEDULING,),
                                                           expected_host=(host,)):
                        LOG.info("instance %s was taken by its host %s meanwhile: left to it", uuid, host)
                        continue
                for event in (SCHEDULE_EVENT, RETRY_EVENT):
                    await actions.event_finish(conn, context, uuid, event, error=lost)
                await placement.remove_allocations(conn, uuid)
                await actions.event_start(conn, context, uuid, SCHEDULE_EVENT, host=conductor.conf.host)
                taken.append(uuid)
        if taken:
            first = group[0][0]["spec"]
            spec = {**first, "instance_uuid": None, "num_instances": len(taken)}
            if down_hosts:
                spec["ignore_hosts"] = sorted({*(first.get("ignore_hosts") or []), *down_hosts})
            await build.schedule_taken(conductor, context, spec, taken)
    return [(uuid, "scheduled again") for uuid in taken]


async def release_stranded(conductor: ConductorState) -> list[tuple[str, str]]:
    """Remove the allocations of deleted instances and of instances in ERROR without a host (a claim that
    landed after its instance was deleted or had failed, by a conductor that died before giving it back), and
    those a placed instance holds on another node than its own (a claim whose scheduler's reply came too late)."""
    async with conductor.db.read() as conn:
        consumers = await builds.stranded_allocations(conn)
    done = []
    for consumer in consumers:
        try:
            async with conductor.db.write() as conn:
                await placement.remove_allocations(conn, consumer)
        except Exception:
            LOG.exception("removing the stranded allocations of %s failed", consumer)
            continue
        LOG.warning("removed the allocations of %s: its instance is deleted or failed without a host", consumer)
        done.append((consumer, "allocations released"))
    async with conductor.db.read() as conn:
        misplaced = await builds.misplaced_allocations(conn)
    by_consumer: dict[str, list[int]] = defaultdict(list)
    for consumer, provider_id in misplaced:
        by_consumer[consumer].append(provider_id)
    for consumer, provider_ids in by_consumer.items():
        try:
            async with conductor.db.write() as conn:
                await placement.remove_allocations_on(conn, consumer, provider_ids)
        except Exception:
            LOG.exception("removing the misplaced allocations of %s failed", consumer)
            continue
        LOG.warning("removed the allocations of %s on providers %s: its instance is on another node", consumer,
                    provider_ids)
        done.append((consumer, "misplaced allocations released"))
    return done


async def recover_unshelves(conductor: ConductorState, now: datetime.datetime) -> list[tuple[str, str]]:
    """Offloaded servers whose unshelve was lost before any host took it (see the module's docstring)."""
    c = instances_table.c
    async with conductor.db.read() as conn:
        rows = [dict(r) for r in (await conn.execute(select(c.uuid, c.updated_at).where(
            c.deleted == 0, c.vm_state == states.SHELVED_OFFLOADED, c.task_state == task_states.UNSHELVING,
            c.host.is_(None)))).mappings()]
    timeout = conductor.conf.instance_build_timeout
    done = []
    for row in rows:
        uuid, updated = row["uuid"], row["updated_at"]
        if conductor.in_process and updated is not None and updated < conductor.started_at:
            why = "its cast was lost with the process that sent it"
        elif timeout and builds.older_than(updated, timeout, now):
            why = f"no host took it in {timeout} s"
        else:
            continue
        error = UnshelveLost(instance_uuid=uuid, why=why)
        context = await _context_of(conductor, uuid, "unshelve")
        async with conductor.db.write() as conn:
            if not await instances.update_instance(conn, uuid, {"task_state": None},
                                                   expected_task_state=(task_states.UNSHELVING,),
                                                   expected_vm_state=(states.SHELVED_OFFLOADED,),
                                                   expected_host=(None,)):
                continue
            await placement.remove_allocations(conn, uuid)
            await actions.add_fault(conn, uuid, error, code=500)
            await actions.event_finish(conn, context, uuid, UNSHELVE_EVENT, error=error)
        LOG.warning("%s", error.message)
        done.append((uuid, "unshelve given back"))
    return done
