"""``[DEFAULT] max_concurrent_builds``: a host runs at most that many builds at once (Nova's build semaphore); the
others wait in BUILD/scheduling, untouched, and are built once a running one ends. 0 is no limit."""

from __future__ import annotations

import asyncio

import pytest

from stratus.objects.states import power_state as ps
from tests.unit.compute.conftest import HOST, Host, context

BUILDS = 5


async def _started(host: Host, uuids: list[str]) -> int:
    """How many of the builds have left ``scheduling`` (taken by the host: networking, spawning or done)."""
    return sum([(await host.get(u))["task_state"] != "scheduling" for u in uuids])


@pytest.mark.parametrize(("overrides", "running"), [
    ({"DEFAULT": {"max_concurrent_builds": 2}, "fake_driver": {"spawn_time": 0.3}}, 2),
    ({"DEFAULT": {"max_concurrent_builds": 0}, "fake_driver": {"spawn_time": 0.3}}, BUILDS),
])
async def test_builds_past_the_limit_wait_for_a_turn(host: Host, running: int) -> None:
    uuids = [await host.add(vm_state="building", task_state="scheduling", power_state=ps.NOSTATE, guest=None,
                            launched=False) for _ in range(BUILDS)]
    builds = [asyncio.create_task(host.manager.build_and_run_instance(context(), u, {"image": {}}, {"host": HOST},
                                                                      [])) for u in uuids]
    await asyncio.sleep(0.15)  # every build that may run is spawning now; none has finished
    assert await _started(host, uuids) == running
    assert len(host.driver.guests) == 0
    await asyncio.gather(*builds)
    await host.settle()
    assert [(await host.get(u))["vm_state"] for u in uuids] == ["active"] * BUILDS
