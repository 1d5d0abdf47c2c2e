"""The conductor asks the scheduler once more when ``select_destinations`` got no answer (a scheduler that died
after its claims, a broker that lost the reply, one out of reach), giving the instances' claims back first; a
decision of the scheduler ("No valid host") is final."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from stratus import exception
from stratus.conductor.manager import ConductorManager
from stratus.context import RequestContext
from stratus.db import instances
from stratus.rpc.local import LocalTransport
from stratus.scheduler.manager import SchedulerManager
from tests.unit.conductor.conftest import HOSTS, Cell, ComputeHost, placed_exactly_once


class Scheduler:
    """A real scheduler whose first ``calls_unanswered`` calls claim and then never reply (it died before
    answering); it records the allocations each call found on arrival."""

    def __init__(self, cell: Cell, calls_unanswered: int) -> None:
        self.real = SchedulerManager(cell.conf, cell.db)
        self.cell = cell
        self.unanswered = calls_unanswered
        self.calls = 0
        #: per call: the allocations each instance held when the call arrived
        self.found: list[dict[str, list[tuple[str, str, int]]]] = []

    async def select_destinations(self, context: dict[str, Any], request_spec: dict[str, Any],
                                  instance_uuids: list[str], return_alternates: bool = True
                                  ) -> list[list[dict[str, Any]]]:
        self.calls += 1
        self.found.append({u: await self.cell.allocations(u) for u in instance_uuids})
        result = await self.real.select_destinations(context, request_spec, instance_uuids, return_alternates)
        if self.calls <= self.unanswered:
            await asyncio.Event().wait()  # claimed, and never answers
        return result


class NoHost:
    """A scheduler that answers every request with NoValidHost."""

    def __init__(self) -> None:
        self.calls = 0

    async def select_destinations(self, context: dict[str, Any], **_: Any) -> None:
        self.calls += 1
        raise exception.NoValidHost(reason="")


async def _transport(cell: Cell, scheduler: object) -> tuple[LocalTransport, Counter[str]]:
    transport = LocalTransport(timeout=0.5)
    builds: Counter[str] = Counter()
    await transport.listen("scheduler", scheduler)
    for host in HOSTS:
        await transport.listen("compute", ComputeHost(host, builds), server=host)
    return transport, builds


async def _boot(cell: Cell, transport: LocalTransport, uuids: list[str]) -> None:
    async with cell.db.read() as conn:
        spec = await instances.request_spec(conn, uuids[0])
    assert spec is not None
    conductor = ConductorManager(cell.conf, cell.db, transport, service_id=cell.conductors["c1"])
    context = RequestContext(user_id="u", project_id="p").to_dict()
    await conductor.schedule_and_build_instances(context, {**spec, "num_instances": len(uuids)}, uuids)
    await transport.stop()


async def test_a_call_without_an_answer_gives_back_the_claims_and_asks_again(cell: Cell) -> None:
    uuids = await cell.boot(count=2)
    scheduler = Scheduler(cell, calls_unanswered=1)
    transport, builds = await _transport(cell, scheduler)
    await _boot(cell, transport, uuids)
    assert scheduler.calls == 2
    # the first call claimed for both; the conductor gave that back before the second call arrived
    assert scheduler.found == [{u: [] for u in uuids}, {u: [] for u in uuids}]
    for uuid in uuids:
        row = await cell.instance(uuid)
        assert row["host"] in HOSTS and row["vm_state"] == "building"
        assert placed_exactly_once(await cell.allocations(uuid), row["host"]), await cell.allocations(uuid)
        assert builds[uuid] == 1


async def test_two_calls_without_an_answer_put_the_builds_in_error_with_nothing_held(cell: Cell) -> None:
    [uuid] = await cell.boot()
    scheduler = Scheduler(cell, calls_unanswered=2)
    transport, builds = await _transport(cell, scheduler)
    await _boot(cell, transport, [uuid])
    assert scheduler.calls == 2
    row = await cell.instance(uuid)
    assert (row["vm_state"], row["host"]) == ("error", None)
    assert await cell.allocations(uuid) == [] and builds[uuid] == 0
    assert any("Timed out waiting for a reply to select_destinations" in f for f in await cell.faults(uuid))


async def test_no_valid_host_is_final(cell: Cell) -> None:
    [uuid] = await cell.boot()
    scheduler = NoHost()
    transport, builds = await _transport(cell, scheduler)
    await _boot(cell, transport, [uuid])
    assert scheduler.calls == 1
    row = await cell.instance(uuid)
    assert (row["vm_state"], row["host"]) == ("error", None) and builds[uuid] == 0
