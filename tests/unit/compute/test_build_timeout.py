"""``[DEFAULT] instance_build_timeout`` on a compute host (Nova's ``_check_instance_build_time``): the host's builds
older than the timeout go to ERROR with a fault and give their claims back; a build that was still going undoes
what it made at its next step."""

from __future__ import annotations

import asyncio
import datetime
import time

import pytest
from sqlalchemy import select, update

from stratus.compute import build_timeout
from stratus.db import actions, placement
from stratus.db.models import instance_actions
from stratus.db.models import instances as instances_table
from stratus.objects.states import power_state as ps
from stratus.utils import utcnow
from tests.unit.compute.conftest import Host, context

TIMEOUT = "Instance build timed out. Set to error state."
RESOURCES = {"VCPU": 1, "MEMORY_MB": 64, "DISK_GB": 1}


async def _age(host: Host, uuid: str, seconds: float) -> None:
    async with host.db.write() as conn:
        await conn.execute(update(instances_table).where(instances_table.c.uuid == uuid).values(
            created_at=utcnow() - datetime.timedelta(seconds=seconds)))


async def _claim(host: Host, uuid: str) -> None:
    async with host.db.write() as conn:
        assert await placement.claim(conn, host.manager.node["provider_id"], uuid, "p", "u", RESOURCES)


async def _allocations(host: Host, uuid: str) -> dict[int, dict[str, int]]:
    async with host.db.read() as conn:
        return await placement.allocations_for_consumer(conn, uuid)


async def _building(host: Host, task: str = "spawning", age: float = 0.0, on: str = "h1") -> str:
    uuid = await host.add(vm_state="building", task_state=task, power_state=ps.NOSTATE, guest=None, host=on,
                          launched=False)
    await _age(host, uuid, age)
    return uuid


@pytest.mark.parametrize("overrides", [{"DEFAULT": {"instance_build_timeout": 60}}])
async def test_builds_older_than_the_timeout_go_to_error_and_release_their_claims(host: Host) -> None:
    old = await _building(host, age=61)
    async with host.db.write() as conn:  # the build's event, still open
        await actions.event_start(conn, context(await _create_request(host, old)), old,
                                  "compute__do_build_and_run_instance", host="h1")
    await _claim(host, old)
    young = await _building(host, age=30)
    elsewhere = await _building(host, age=61, on="h2")
    active = await host.add()
    await _age(host, active, 3600)
    assert await build_timeout.check_instance_build_time(host.manager) == [(old, "timed out")]
    assert await host.states(old) == ("error", None, ps.NOSTATE)
    assert await host.faults(old) == [TIMEOUT]
    assert await _allocations(host, old) == {}
    assert await host.actions(old) == [("create", "u", [("compute__do_build_and_run_instance", "Error")])]
    assert (await host.get(old))["host"] == "h1"  # as Nova: the instance stays on its host
    for uuid, state in ((young, "building"), (elsewhere, "building"), (active, "active")):
        assert (await host.states(uuid))[0] == state


@pytest.mark.parametrize("overrides", [{"DEFAULT": {"instance_build_timeout": 0}}])
async def test_a_timeout_of_zero_never_times_out(host: Host) -> None:
    uuid = await _building(host, age=10 ** 6)
    assert await build_timeout.check_instance_build_time(host.manager) == []
    await host.manager.periodic_tasks(time.monotonic() + 10 ** 6)
    assert (await host.states(uuid))[0] == "building"


@pytest.mark.parametrize("overrides", [{"DEFAULT": {"instance_build_timeout": 5}}])
async def test_the_periodic_check_runs_as_often_as_a_short_timeout(host: Host) -> None:
    assert build_timeout.spacing(5) == 5 and build_timeout.spacing(3600) == 60
    uuid = await _building(host, age=6)
    await host.manager.periodic_tasks(time.monotonic() + 5.5)
    assert (await host.states(uuid))[0] == "error"


@pytest.mark.parametrize("overrides", [{"DEFAULT": {"instance_build_timeout": 60},
                                        "fake_driver": {"spawn_time": 0.5}}])
async def test_a_build_still_running_undoes_its_guest_after_timing_out(host: Host) -> None:
    uuid = await _building(host, task="scheduling", age=0, on="h1")
    await _claim(host, uuid)
    build = asyncio.create_task(host.manager.build_and_run_instance(
        context(await _create_request(host, uuid)), uuid, {"image": {}}, {"host": "h1"}, []))
    deadline = time.monotonic() + 5
    while (await host.states(uuid))[1] != "spawning":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await _age(host, uuid, 61)
    assert await build_timeout.check_instance_build_time(host.manager) == [(uuid, "timed out")]
    await build
    assert await host.states(uuid) == ("error", None, ps.NOSTATE)
    assert uuid not in host.driver.guests  # spawned after the timeout, then destroyed
    assert await _allocations(host, uuid) == {}
    assert await host.faults(uuid) == [TIMEOUT]


async def _create_request(host: Host, uuid: str) -> str:
    async with host.db.read() as conn:
        return str((await conn.execute(select(instance_actions.c.request_id).where(
            instance_actions.c.instance_uuid == uuid, instance_actions.c.action == "create"))).scalar_one())
