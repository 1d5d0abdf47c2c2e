"""A build cast that waited in this host's queue while the host was down, and that the conductors' recovery
pass has meanwhile scheduled elsewhere (or is scheduling again), is no longer this host's: it is left alone."""

from __future__ import annotations

import pytest

from stratus.objects.states import power_state as ps
from tests.unit.compute.conftest import HOST, Host, context


@pytest.mark.parametrize("now_on", ["h2", None])
async def test_a_build_no_longer_on_this_host_is_left_alone(host: Host, now_on: str | None) -> None:
    uuid = await host.add(vm_state="building", task_state="scheduling", power_state=ps.NOSTATE, guest=None,
                          host=now_on, launched=False)
    await host.manager.build_and_run_instance(context(), uuid, {"image": {}}, {"host": HOST}, [])
    await host.settle()
    row = await host.get(uuid)
    assert (row["host"], row["vm_state"], row["task_state"]) == (now_on, "building", "scheduling")
    assert uuid not in host.driver.guests
    assert await host.actions(uuid) == [("create", "u", [])]  # no build event of this host


async def test_a_build_on_this_host_is_built(host: Host) -> None:
    uuid = await host.add(vm_state="building", task_state="scheduling", power_state=ps.NOSTATE, guest=None,
                          launched=False)
    await host.manager.build_and_run_instance(context(), uuid, {"image": {}}, {"host": HOST}, [])
    await host.settle()
    assert (await host.get(uuid))["vm_state"] == "active" and uuid in host.driver.guests
