"""The conductor's build task: a boot request scheduled into builds on hosts, and a failed build retried on an
alternate (or a host the scheduler chooses anew) until ``[scheduler] max_attempts``.

Before it schedules a build the conductor takes the build's lease (db/builds.py), and it records a host only
while it still holds it: a build is scheduled by one conductor at a time, and one that died has its builds
taken over by another (conductor/recovery.py) without any being scheduled twice.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from stratus import exception, failpoints
from stratus.compute import networking
from stratus.conductor.state import ConductorState
from stratus.db import actions, builds, instances, placement
from stratus.objects import states
from stratus.objects.states import task_states
from stratus.priority import background_turn
from stratus.rpc.transport import TransportError

LOG = logging.getLogger(__name__)
SCHEDULE_EVENT = "conductor_schedule_and_build_instances"
RETRY_EVENT = "conductor_build_instances"
#: calls of select_destinations for one scheduling step when a call gets no answer (a scheduler died)
SCHEDULER_CALL_ATTEMPTS = 2


async def schedule_and_build_instances(conductor: ConductorState, context: dict[str, Any], request_spec: dict[str, Any],
                                       instance_uuids: list[str]) -> None:
    """A boot request from the API: take its builds (those a recovery pass took meanwhile are left to it),
    choose hosts, record them and cast each build to its host."""
    failpoints.hit("conductor.received")
    with conductor.in_flight.hold(instance_uuids):
        await background_turn()  # after the API's requests (stratus/priority.py)
        async with conductor.db.write() as conn:
            taken = await builds.take_new(conn, instance_uuids, conductor.service_id)
            for uuid in taken:
                await actions.event_start(conn, context, uuid, SCHEDULE_EVENT, host=conductor.conf.host)
        if len(taken) < len(instance_uuids):
            LOG.info("%d of %d builds of this request were already taken by another conductor",
                     len(instance_uuids) - len(taken), len(instance_uuids))
        if taken:
            failpoints.hit("conductor.leased")
            await schedule_taken(conductor, context, request_spec, taken)


async def schedule_taken(conductor: ConductorState, context: dict[str, Any], request_spec: dict[str, Any],
                         instance_uuids: list[str]) -> None:
    """Schedule and cast builds whose lease this conductor holds (their scheduling event started)."""
    with conductor.in_flight.hold(instance_uuids):
        await schedule(conductor, context, request_spec, instance_uuids)


async def schedule(conductor: ConductorState, context: dict[str, Any], request_spec: dict[str, Any],
                   instance_uuids: list[str]) -> None:
    """Ask the scheduler for hosts, point each instance at its host and cast the builds."""
    await background_turn()
    try:
        selections = await select_destinations(conductor, context, request_spec, instance_uuids)
    except Exception as exc:
        LOG.info("scheduling %d instance(s) failed: %s", len(instance_uuids), exc)
        await set_error(conductor, context, instance_uuids, exc, SCHEDULE_EVENT)
        return
    failpoints.hit("conductor.claimed")
    placed: list[tuple[str, list[dict[str, Any]]]] = []
    await background_turn()
    async with conductor.db.write() as conn:
        for uuid, hosts in zip(instance_uuids, selections, strict=True):
            if await place(conductor, conn, context, uuid, hosts[0], SCHEDULE_EVENT):
                placed.append((uuid, hosts))
    for uuid, hosts in placed:
        try:
            await conductor.compute.build_and_run_instance(context, hosts[0]["host"], uuid, request_spec,
                                                           hosts[0], hosts[1:])
        except Exception:  # one build that cannot reach its host does not hold back the others
            LOG.exception("casting the build of %s to %s failed", uuid, hosts[0]["host"])


async def select_destinations(conductor: ConductorState, context: dict[str, Any], request_spec: dict[str, Any],
                              instance_uuids: list[str]) -> list[list[dict[str, Any]]]:
    """The scheduler's choice, asked again (``SCHEDULER_CALL_ATTEMPTS`` in all) when the call itself failed:
    no reply within ``rpc_response_timeout`` (the scheduler that took the request died, or the broker lost
    it) or the broker was out of reach. Nova errors the build at once; another scheduler may well answer.
    Before asking again the instances' allocations are given back: a scheduler that died after it claimed
    and before it replied leaves a claim nobody knows of (the scheduler replaces such claims itself too).
    A decision of the scheduler (NoValidHost, a bad request) is final."""
    for attempt in range(1, SCHEDULER_CALL_ATTEMPTS + 1):
        try:
            return await conductor.scheduler.select_destinations(context, request_spec, instance_uuids)
        except (exception.MessagingTimeout, TransportError) as exc:
            if attempt == SCHEDULER_CALL_ATTEMPTS:
                raise
            LOG.warning("select_destinations for %d instance(s) failed (%s): giving back their claims and "
                        "asking again", len(instance_uuids), exc)
            async with conductor.db.write() as conn:
                for uuid in instance_uuids:
                    if await builds.held(conn, uuid, conductor.service_id):
                        await placement.remove_allocations(conn, uuid)
    raise AssertionError("unreachable")


async def build_instances(conductor: ConductorState, context: dict[str, Any], instance_uuid: str,
                          request_spec: dict[str, Any], alternates: list[dict[str, Any]], failed_host: str, reason: str,
                          tried_hosts: list[str] | None = None) -> None:
    """A host failed the build and gave back its claim: claim the next alternate that still fits, or, when
    none is left and ``[scheduler] max_attempts`` allows another attempt, ask the scheduler for a host not
    tried yet. Otherwise the instance goes to ERROR with Nova's fault and the last error in its details."""
    with conductor.in_flight.hold([instance_uuid]):
        async with conductor.db.write() as conn:
            # the host released the build's lease when it gave the build back; a recovery pass may be first
            if not await builds.take_released(conn, instance_uuid, conductor.service_id):
                LOG.info("the reschedule of %s was already taken by another conductor", instance_uuid)
                return
            await actions.event_start(conn, context, instance_uuid, RETRY_EVENT, host=conductor.conf.host)
        failpoints.hit("conductor.rescheduling")
        await retry_build(conductor, context, instance_uuid, request_spec, alternates, failed_host, reason, tried_hosts)


async def retry_build(conductor: ConductorState, context: dict[str, Any], instance_uuid: str,
                      request_spec: dict[str, Any], alternates: list[dict[str, Any]], failed_host: str, reason: str,
                      tried_hosts: list[str] | None) -> None:
    """The next alternate not tried yet that still fits, else a host the scheduler chooses anew, else ERROR."""
    tried = list(dict.fromkeys([*(tried_hosts or []), failed_host]))
    max_attempts = conductor.conf.scheduler.max_attempts
    remaining = [a for a in alternates if a["host"] not in tried] if len(tried) < max_attempts else []
    while remaining:
        selection, remaining = remaining[0], remaining[1:]
        placed = await claim_alternate(conductor, context, instance_uuid, request_spec, selection)
        if placed is None:
            return  # deleted or taken over meanwhile: nothing more to do
        if placed:
            await conductor.compute.build_and_run_instance(context, selection["host"], instance_uuid,
                                                           request_spec, {**selection, "claimed": True}, remaining,
                                                           tried_hosts=tried)
            return
    if len(tried) < max_attempts and await reschedule(conductor, context, instance_uuid, request_spec, tried):
        return
    error = exception.NoValidHost(
        f"Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures for "
        f"instance {instance_uuid}.")
    # the ports first: a server seen in ERROR has none left (Nova frees them just after)
    await networking.release_failed_build(conductor, context, instance_uuid, retry_delays=())
    await set_error(conductor, context, [instance_uuid], error, RETRY_EVENT, details=reason)


async def claim_alternate(conductor: ConductorState, context: dict[str, Any], instance_uuid: str,
                          request_spec: dict[str, Any], selection: dict[str, Any]) -> bool | None:
    """Claim on an alternate and place the instance there: True, False if it no longer fits, None if the
    instance was deleted meanwhile (any claim given back) or its build taken over (nothing claimed)."""
    async with conductor.db.write() as conn:
        if not await builds.held(conn, instance_uuid, conductor.service_id):
            return None
        instance = await instances.get_plain(conn, instance_uuid)
        if instance is None or instance["deleted"] or instance["task_state"] == task_states.DELETING:
            await placement.remove_allocations(conn, instance_uuid)
            return None
        ok = False
        for _ in range(2):  # a lost compare-and-swap re-reads the provider once
            with contextlib.suppress(exception.ConcurrentUpdateDetected):
                ok = await placement.claim(conn, selection["provider_id"], instance_uuid,
                                           request_spec["project_id"], request_spec["user_id"],
                                           selection["resources"])
                break
        if not ok:
            return False
        return await place(conductor, conn, context, instance_uuid, selection)


async def place(conductor: ConductorState, conn: Any, context: dict[str, Any], instance_uuid: str,
                selection: dict[str, Any], event: str = RETRY_EVENT) -> bool | None:
    """Point the instance at the claimed host (and that host's zone); None, with the claim given back, if
    the instance was deleted (or otherwise moved on) meanwhile. None too, leaving every claim alone, if
    another conductor took the build over: it gave back what was claimed before it took over and claims anew.

    On SQLite the lease check rides in the instance's UPDATE (one statement, ``builds.place_held``); only when
    that changes nothing is the lease read, to tell a build taken over from an instance that moved on."""
    zone = selection.get("availability_zone") or conductor.conf.default_availability_zone
    if conductor.db.is_sqlite:
        placed = await builds.place_held(conn, instance_uuid, conductor.service_id, selection["host"],
                                         selection["nodename"], zone)
        taken_over = not placed and not await builds.held(conn, instance_uuid, conductor.service_id)
    else:
        taken_over = not await builds.held(conn, instance_uuid, conductor.service_id)
        placed = not taken_over and await instances.update_instance(
            conn, instance_uuid, {"host": selection["host"], "node": selection["nodename"],
                                  "launched_on": selection["host"], "availability_zone": zone},
            expected_vm_state=(states.BUILDING,), expected_task_state=(task_states.SCHEDULING,))
    if taken_over:
        LOG.warning("the build of %s was taken over by another conductor: leaving it to that one", instance_uuid)
        return None
    if not placed:
        await placement.remove_allocations(conn, instance_uuid)
        return None
    await actions.event_finish(conn, context, instance_uuid, event)
    return True


async def reschedule(conductor: ConductorState, context: dict[str, Any], instance_uuid: str,
                     request_spec: dict[str, Any], tried: list[str]) -> bool:
    """No alternate left: ask the scheduler for a host not tried yet (and alternates within what
    ``max_attempts`` still allows). True when the build went to a new host or the instance is gone."""
    spec = {**request_spec, "ignore_hosts": tried}
    try:
        selections = await select_destinations(conductor, context, spec, [instance_uuid])
    except exception.NoValidHost:
        return False
    chosen, *alternates = selections[0]
    async with conductor.db.write() as conn:
        placed = await place(conductor, conn, context, instance_uuid, chosen)
    if placed:
        left = conductor.conf.scheduler.max_attempts - len(tried) - 1
        await conductor.compute.build_and_run_instance(context, chosen["host"], instance_uuid, request_spec,
                                                       chosen, alternates[:max(0, left)], tried_hosts=tried)
    return True


async def set_error(conductor: ConductorState, context: dict[str, Any], uuids: list[str], error: Exception, event: str,
                    details: str | None = None) -> None:
    """The builds go to ERROR with a fault and their claims given back (those another conductor took over are
    left to it)."""
    async with conductor.db.write() as conn:
        for uuid in uuids:
            if not await builds.held(conn, uuid, conductor.service_id):
                LOG.warning("the build of %s was taken over by another conductor: not failing it", uuid)
                continue
            changed = await instances.update_instance(conn, uuid, {"vm_state": states.ERROR, "task_state": None,
                                                                   "host": None, "node": None})
            await placement.remove_allocations(conn, uuid)
            if changed:
                await actions.add_fault(conn, uuid, error, code=500, details=details)
            await actions.event_finish(conn, context, uuid, event, error=error)
