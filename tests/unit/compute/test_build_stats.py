"""The host's stats after builds (the instances on it, the I/O work under way, failed builds: what the schedulers'
weighers read): written in a unit of work of their own that the builds ending together share, and at once, in
the build's own unit, when a build ends a run of failures (the schedulers are told then)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event, select

from stratus.db.models import compute_nodes
from stratus.objects.states import power_state as ps
from tests.unit.compute.conftest import HOST, Host, context

BUILDS = 4


def _stats_statements(host: Host) -> list[str]:
    """The statements that count the host's instances or write its node's stats, from now on."""
    seen: list[str] = []

    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        text = " ".join(statement.split())
        if text.startswith(("SELECT instances.vm_state, instances.task_state, count(*)", "UPDATE compute_nodes")):
            seen.append(text.split(None, 1)[0])

    assert host.db.sync_engine is not None
    event.listen(host.db.sync_engine, "before_cursor_execute", _seen)
    return seen


async def _node(host: Host) -> tuple[int, dict[str, Any]]:
    async with host.db.read() as conn:
        running, stats = (await conn.execute(select(compute_nodes.c.running_vms, compute_nodes.c.stats).where(
            compute_nodes.c.id == host.manager.node["id"]))).one()
    return running, stats


async def _builds(host: Host, count: int) -> list[str]:
    uuids = [await host.add(vm_state="building", task_state="scheduling", power_state=ps.NOSTATE, guest=None,
                            launched=False) for _ in range(count)]
    await asyncio.gather(*(host.manager.build_and_run_instance(context(), u, {"image": {}}, {"host": HOST}, [])
                           for u in uuids))
    await host.manager.drain()
    assert [(await host.get(u))["vm_state"] for u in uuids] == ["active"] * count
    return uuids


async def test_builds_that_end_together_write_the_host_stats_once(host: Host) -> None:
    seen = _stats_statements(host)
    await _builds(host, BUILDS)
    assert seen == ["SELECT", "UPDATE"]
    assert host.manager.node["stats"] == {"num_instances": BUILDS, "io_workload": 0, "failed_builds": 0}
    running, stats = await _node(host)
    assert running == BUILDS and stats == host.manager.node["stats"]
    assert host.schedulers.calls == []  # nothing failed: the schedulers re-read the node at their next sync


async def test_a_build_that_ends_a_run_of_failures_writes_and_sends_the_stats_at_once(host: Host) -> None:
    host.manager.failed_builds = 2
    seen = _stats_statements(host)
    await _builds(host, 1)
    assert seen == ["SELECT", "UPDATE"]  # in the build's last unit: nothing left to write after it
    assert host.manager.failed_builds == 0
    assert (await _node(host))[1] == {"num_instances": 1, "io_workload": 0, "failed_builds": 0}
    await host.settle()
    assert host.schedulers.calls == ["update_host_stats"]
