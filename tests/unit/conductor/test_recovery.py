"""The conductor's recovery pass: builds left without a host by a conductor that died (or restarted, or never
took them) are scheduled again by exactly one conductor, with their claims given back first; builds a live
conductor is scheduling are left alone; builds past ``instance_build_timeout`` go to ERROR; allocations nothing
will give back are released."""

from __future__ import annotations

import datetime

import pytest
from sqlalchemy import delete, update

from stratus.conductor import recovery
from stratus.context import RequestContext
from stratus.db import actions, builds, instances
from stratus.db.models import instances as instances_table
from stratus.db.models import request_specs, services
from stratus.utils import utcnow
from tests.unit.conductor.conftest import HOSTS, RESOURCES, Cell, placed_exactly_once

SCHEDULE = "conductor_schedule_and_build_instances"
TIMEOUT = "Instance build timed out. Set to error state."


async def _assert_built_once(cell: Cell, uuids: list[str]) -> None:
    await cell.settle()
    for uuid in uuids:
        row = await cell.instance(uuid)
        assert row["host"] in HOSTS and row["vm_state"] == "building" and row["task_state"] == "scheduling"
        assert placed_exactly_once(await cell.allocations(uuid), row["host"]), await cell.allocations(uuid)
        assert cell.builds[uuid] == 1


async def test_a_multi_create_left_by_this_conductors_previous_run_is_scheduled_again(cell: Cell) -> None:
    uuids = await cell.boot(count=3)
    for uuid in uuids:
        await cell.lease(uuid, "c1")  # taken by c1's previous run, which died before choosing hosts
    done = await cell.conductor("c1").recover()
    assert done == [(u, "scheduled again") for u in uuids]
    await _assert_built_once(cell, uuids)
    for uuid in uuids:
        assert (await cell.spec_lease(uuid)) == (cell.conductors["c1"], 2)
        # the event the dead run left open is closed as interrupted; the new one succeeded
        assert await cell.events(uuid) == [(SCHEDULE, "Error"), (SCHEDULE, "Success")]


async def test_claims_the_dead_conductor_made_are_given_back_before_claiming_again(cell: Cell) -> None:
    """Killed after the scheduler's claims, before hosts were recorded: no double and no leaked allocation."""
    uuids = await cell.boot(count=2)
    for uuid in uuids:
        await cell.lease(uuid, "c1")
        await cell.claim(uuid, "h2")
    await cell.conductor("c1").recover()
    await _assert_built_once(cell, uuids)


async def test_a_build_a_live_conductor_holds_is_left_alone(cell: Cell) -> None:
    [uuid] = await cell.boot()
    await cell.lease(uuid, "c2", age=3600)
    await cell.claim(uuid)  # c2 is between its claim and recording the host
    assert await cell.conductor("c1").recover() == []
    row = await cell.instance(uuid)
    assert row["host"] is None and (await cell.spec_lease(uuid)) == (cell.conductors["c2"], 1)
    assert len(await cell.allocations(uuid)) == len(RESOURCES)


async def test_a_conductor_scheduling_it_now_keeps_it(cell: Cell) -> None:
    """This conductor's own lease on a build one of its coroutines works on is not a leftover."""
    [uuid] = await cell.boot()
    conductor = cell.conductor("c1")
    await cell.lease(uuid, "c1")
    with conductor.in_flight.hold([uuid]):
        assert await conductor.recover() == []
    assert (await cell.instance(uuid))["host"] is None


async def test_the_builds_of_a_conductor_whose_service_is_down_are_taken_over(cell: Cell) -> None:
    [uuid] = await cell.boot()
    await cell.lease(uuid, "c2")
    await cell.silence("c2", cell.conf.service_down_time + 1)
    assert await cell.conductor("c1").recover() == [(uuid, "scheduled again")]
    await _assert_built_once(cell, [uuid])
    assert (await cell.spec_lease(uuid))[0] == cell.conductors["c1"]


async def test_a_build_nobody_took_waits_one_interval(cell: Cell) -> None:
    """The API's cast may still be on its way: nobody's build is taken over only once the interval passed."""
    conductor = cell.conductor("c1")
    [uuid] = await cell.boot()
    assert await conductor.recover() == []
    await cell.lease(uuid, None, generation=0, age=cell.conf.conductor.build_recovery_interval + 1)
    assert await conductor.recover() == [(uuid, "scheduled again")]
    await _assert_built_once(cell, [uuid])


async def test_with_the_in_process_transport_a_build_from_before_this_process_is_taken_at_once(cell: Cell) -> None:
    [uuid] = await cell.boot()  # its cast died with the process that wrote it
    assert await cell.conductor("c1").recover() == [(uuid, "scheduled again")]
    await _assert_built_once(cell, [uuid])


async def test_a_pass_that_read_before_another_took_over_takes_nothing(cell: Cell) -> None:
    """Two conductors judge the same dead build: the lease's compare-and-swap lets one schedule it."""
    [uuid] = await cell.boot()
    await cell.lease(uuid, "c1")
    first, second = cell.conductor("c1"), cell.conductor("c2")
    async with cell.db.read() as conn:
        stale = await builds.waiting(conn)  # what the second read before the first acted
    assert await first.recover() == [(uuid, "scheduled again")]
    assert await recovery._schedule_again(second, [(stale[0], "this conductor restarted")]) == []
    await _assert_built_once(cell, [uuid])


async def test_the_late_cast_of_a_build_taken_over_does_nothing(cell: Cell) -> None:
    [uuid] = await cell.boot()
    conductor = cell.conductor("c1")
    await conductor.recover()
    spec = {"project_id": "p", "user_id": "u", "flavor": {}, "resources": RESOURCES, "instance_uuid": None}
    await cell.conductor("c2").schedule_and_build_instances(RequestContext.admin().to_dict(), spec, [uuid])
    await _assert_built_once(cell, [uuid])


async def test_a_reschedule_is_taken_by_one_conductor(cell: Cell) -> None:
    """A host gives a failed build back (lease released); the first conductor to take the cast has it."""
    [uuid] = await cell.boot()
    await cell.lease(uuid, None, generation=3)
    spec = {"project_id": "p", "user_id": "u", "flavor": {}, "resources": RESOURCES}
    selection = {"host": "h2", "nodename": "h2", "provider_id": 0, "resources": RESOURCES}
    ctx = RequestContext.admin().to_dict()
    await cell.conductor("c1").build_instances(ctx, uuid, spec, [], "h1", "boom")
    assert (await cell.spec_lease(uuid)) == (cell.conductors["c1"], 4)
    await cell.conductor("c2").build_instances(ctx, uuid, spec, [selection], "h1", "boom")
    await _assert_built_once(cell, [uuid])
    assert (await cell.instance(uuid))["host"] == "h2"  # the scheduler's choice: h1 was tried


@pytest.mark.parametrize("overrides", [{"DEFAULT": {"instance_build_timeout": 60}}])
async def test_builds_past_the_timeout_go_to_error_and_their_claims_are_released(cell: Cell) -> None:
    waiting, young = await cell.boot(age=120), await cell.boot(age=10)
    await cell.lease(waiting[0], "c2")  # a live conductor that is stuck on it
    await cell.claim(waiting[0])
    [placed] = await cell.boot(age=120)  # placed on a host that never got the cast
    async with cell.db.write() as conn:
        await instances.update_instance(conn, placed, {"host": "h1", "node": "h1"})
    await cell.claim(placed)
    done = await cell.conductor("c1").recover()
    assert sorted(done) == sorted([(waiting[0], "timed out"), (placed, "timed out"), (young[0], "scheduled again")])
    for uuid in (waiting[0], placed):
        row = await cell.instance(uuid)
        assert (row["vm_state"], row["task_state"]) == ("error", None)
        assert await cell.faults(uuid) == [TIMEOUT]
        assert await cell.allocations(uuid) == []
    assert (await cell.spec_lease(waiting[0]))[0] == cell.conductors["c1"]
    # the stuck conductor comes back to it: it no longer holds the build and records nothing
    spec = {"project_id": "p", "user_id": "u", "flavor": {}, "resources": RESOURCES, "instance_uuid": None}
    await cell.conductor("c2").schedule_taken(RequestContext.admin().to_dict(), spec, waiting)
    assert (await cell.instance(waiting[0]))["host"] is None
    assert cell.builds[waiting[0]] == 0
    # its claim is stranded on an instance in ERROR without a host: the next pass gives it back
    assert len(await cell.allocations(waiting[0])) == len(RESOURCES)
    assert await cell.conductor("c1").recover() == [(waiting[0], "allocations released")]
    assert await cell.allocations(waiting[0]) == []


async def test_allocations_of_deleted_and_failed_instances_are_released(cell: Cell) -> None:
    deleted, failed, active = (await cell.boot())[0], (await cell.boot())[0], (await cell.boot())[0]
    for uuid in (deleted, failed, active):
        await cell.lease(uuid, "c2")
        await cell.claim(uuid)
    async with cell.db.write() as conn:
        await instances.soft_delete(conn, deleted)
        await instances.update_instance(conn, failed, {"vm_state": "error", "task_state": None})
        await instances.update_instance(conn, active, {"vm_state": "active", "task_state": None, "host": "h1"})
    assert sorted(await recovery.release_stranded(cell.conductor("c1"))) == sorted(
        [(deleted, "allocations released"), (failed, "allocations released")])
    assert await cell.allocations(deleted) == [] and await cell.allocations(failed) == []
    assert placed_exactly_once(await cell.allocations(active), "h1")


async def test_one_build_that_cannot_be_scheduled_again_does_not_stop_the_pass(cell: Cell) -> None:
    [broken], [fine] = await cell.boot(), await cell.boot()
    async with cell.db.write() as conn:  # a request spec that is not one (a bug, a bad migration)
        await conn.execute(update(request_specs).where(request_specs.c.instance_uuid == broken)
                           .values(spec=["not", "a", "spec"]))
    done = await cell.conductor("c1").recover()
    assert sorted(done) == sorted([(broken, "failed"), (fine, "scheduled again")])
    await _assert_built_once(cell, [fine])
    assert (await cell.instance(broken))["host"] is None


async def test_a_pass_with_no_build_waiting_does_nothing(cell: Cell) -> None:
    [uuid] = await cell.boot()
    async with cell.db.write() as conn:
        await conn.execute(update(instances_table).where(instances_table.c.uuid == uuid)
                           .values(vm_state="active", task_state=None, host="h1", updated_at=utcnow()))
    assert await cell.conductor("c1").recover() == []


async def test_a_claim_on_another_node_than_the_instances_own_is_released(cell: Cell) -> None:
    """A scheduler's late claim (its reply nobody waited for) beside the one the instance was placed with."""
    [uuid] = await cell.boot()
    await cell.lease(uuid, "c2")
    await cell.claim(uuid, "h1")
    await cell.claim(uuid, "h2")
    async with cell.db.write() as conn:
        await instances.update_instance(conn, uuid, {"vm_state": "active", "task_state": None, "host": "h1",
                                                     "node": "h1"})
    assert await recovery.release_stranded(cell.conductor("c1")) == [(uuid, "misplaced allocations released")]
    assert placed_exactly_once(await cell.allocations(uuid), "h1")


async def test_a_reschedule_claiming_its_new_host_keeps_that_claim(cell: Cell) -> None:
    [uuid] = await cell.boot()
    await cell.lease(uuid, "c2")
    await cell.claim(uuid, "h2")  # claimed on h2; the instance still names the host it failed on
    async with cell.db.write() as conn:
        await instances.update_instance(conn, uuid, {"host": "h1", "node": "h1"})
    assert await recovery.release_stranded(cell.conductor("c1")) == []
    assert placed_exactly_once(await cell.allocations(uuid), "h2")


async def _cast_to(cell: Cell, uuid: str, host: str) -> None:
    """Where a conductor leaves a build it cast: its lease, a claim on ``host`` and the host recorded."""
    await cell.lease(uuid, "c2")
    await cell.claim(uuid, host)
    async with cell.db.write() as conn:
        await instances.update_instance(conn, uuid, {"host": host, "node": host, "launched_on": host})


async def _silence_host(cell: Cell, host: str, seconds: float) -> None:
    async with cell.db.write() as conn:
        await conn.execute(update(services).where(services.c.host == host, services.c.binary == "nova-compute")
                           .values(last_seen_up=utcnow() - datetime.timedelta(seconds=seconds)))


async def test_a_build_cast_to_a_host_that_is_down_is_scheduled_again_elsewhere(cell: Cell) -> None:
    """The cast waits in the dead host's queue with nobody to consume it: the build goes to another host."""
    uuids = await cell.boot(count=2)
    for uuid in uuids:
        await _cast_to(cell, uuid, "h1")
    await _silence_host(cell, "h1", cell.conf.service_down_time + 1)
    assert await cell.conductor("c1").recover() == [(u, "scheduled again") for u in uuids]
    await cell.settle()
    for uuid in uuids:
        row = await cell.instance(uuid)
        assert (row["host"], row["node"], row["vm_state"], row["task_state"]) == ("h2", "h2", "building",
                                                                                  "scheduling")
        assert placed_exactly_once(await cell.allocations(uuid), "h2"), await cell.allocations(uuid)
        assert cell.builds[uuid] == 1  # the one cast to h2
        assert (await cell.spec_lease(uuid))[0] == cell.conductors["c1"]


async def test_a_build_cast_to_a_live_host_is_left_to_it(cell: Cell) -> None:
    [uuid] = await cell.boot()
    await _cast_to(cell, uuid, "h1")
    await _silence_host(cell, "h1", cell.conf.service_down_time - 5)
    assert await cell.conductor("c1").recover() == []
    row = await cell.instance(uuid)
    assert row["host"] == "h1" and placed_exactly_once(await cell.allocations(uuid), "h1")


async def test_a_build_cast_to_a_deleted_host_is_scheduled_again(cell: Cell) -> None:
    [uuid] = await cell.boot()
    await _cast_to(cell, uuid, "h1")
    async with cell.db.write() as conn:
        await conn.execute(delete(services).where(services.c.host == "h1"))
    assert await cell.conductor("c1").recover() == [(uuid, "scheduled again")]
    await cell.settle()
    assert (await cell.instance(uuid))["host"] == "h2"


async def _lost_unshelve(cell: Cell, age: float) -> str:
    """An offloaded server whose unshelve the scheduler claimed a host for, then nobody took, ``age`` s ago."""
    [uuid] = await cell.boot()
    ctx = RequestContext(user_id="u", project_id="p").to_dict()
    async with cell.db.write() as conn:
        await conn.execute(update(instances_table).where(instances_table.c.uuid == uuid).values(
            vm_state="shelved_offloaded", task_state="unshelving", host=None, node=None,
            updated_at=utcnow() - datetime.timedelta(seconds=age)))
        await actions.action_start(conn, ctx, [uuid], "unshelve")
        await actions.event_start(conn, ctx, uuid, "conductor_unshelve_instance", host="c1-host")
    await cell.claim(uuid, "h2")
    return uuid


async def test_an_unshelve_lost_with_the_process_leaves_the_server_offloaded(cell: Cell) -> None:
    """With the in-process transport: asked before this conductor started, its cast died with that process."""
    uuid = await _lost_unshelve(cell, age=1)
    assert await cell.conductor("c1").recover() == [(uuid, "unshelve given back")]
    row = await cell.instance(uuid)
    assert (row["vm_state"], row["task_state"], row["host"]) == ("shelved_offloaded", None, None)
    assert await cell.allocations(uuid) == []
    assert (await cell.faults(uuid))[-1].startswith(f"The unshelve of instance {uuid} was lost")
    assert ("conductor_unshelve_instance", "Error") in await cell.events(uuid)


async def test_an_unshelve_under_way_is_left_alone(cell: Cell) -> None:
    conductor = cell.conductor("c1")  # started before the unshelve was asked
    uuid = await _lost_unshelve(cell, age=0)
    async with cell.db.write() as conn:
        await conn.execute(update(instances_table).where(instances_table.c.uuid == uuid).values(
            updated_at=utcnow()))
    assert await conductor.recover() == []
    assert (await cell.instance(uuid))["task_state"] == "unshelving"
    assert len(await cell.allocations(uuid)) == len(RESOURCES)


@pytest.mark.parametrize("overrides", [{"DEFAULT": {"transport_url": "rabbit://guest:guest@127.0.0.1:1//",
                                                    "instance_build_timeout": 60}}])
async def test_an_unshelve_no_host_took_times_out_on_any_transport(cell: Cell) -> None:
    fresh = await _lost_unshelve(cell, age=10)
    old = await _lost_unshelve(cell, age=61)
    conductor = cell.conductor("c1")
    assert not conductor.in_process
    assert await recovery.recover_unshelves(conductor, utcnow()) == [(old, "unshelve given back")]
    assert (await cell.instance(fresh))["task_state"] == "unshelving"
