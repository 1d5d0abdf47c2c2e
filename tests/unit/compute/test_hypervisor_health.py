"""A hypervisor that stops answering disables its compute service (never crashes it) until it answers again."""

from __future__ import annotations

import itertools
import time

from sqlalchemy import update

from stratus.db.models import services
from stratus.objects.states import power_state as ps
from tests.unit.compute.conftest import Host

REASON = "AUTO: Connection to the hypervisor is broken on host: h1"


_passes = itertools.count(1)


def later() -> float:
    """A moment when every periodic task is due (each call later than the last)."""
    return time.monotonic() + 10**6 * next(_passes)


async def test_down_at_start_up_registers_disabled_then_recovers(host: Host) -> None:
    building = await host.add(vm_state="building", task_state="spawning", power_state=0, guest=None,
                              launched=False)
    host.driver.hypervisor_down = True
    host.schedulers.calls.clear()
    await host.restart()  # does not raise
    await host.settle()
    service = await host.service()
    assert (service["disabled"], service["disabled_reason"]) == (True, REASON)
    assert host.schedulers.calls == ["refresh_hosts"]
    assert await host.states(building) == ("building", "spawning", 0)  # reconciliation waits for the hypervisor

    await host.manager.periodic_tasks(later())  # still down: nothing changes, no crash
    assert (await host.service())["disabled"] and host.schedulers.calls == ["refresh_hosts"]

    host.driver.hypervisor_down = False
    await host.manager.periodic_tasks(later())
    await host.settle()
    service = await host.service()
    assert (service["disabled"], service["disabled_reason"]) == (False, None)
    assert host.schedulers.calls == ["refresh_hosts", "refresh_hosts"]
    assert (await host.states(building))[0] == "error"  # the start-up work ran once it could


async def test_lost_while_running_then_back(host: Host) -> None:
    uuid = await host.add(guest=ps.SHUTDOWN)
    host.driver.hypervisor_down = True
    await host.manager.periodic_tasks(later())
    assert (await host.service())["disabled_reason"] == REASON
    assert host.manager.hypervisor_down
    assert await host.states(uuid) == ("active", None, ps.RUNNING)  # no sync while it is down

    host.driver.hypervisor_down = False
    await host.manager.periodic_tasks(later())
    await host.manager.drain()
    assert not (await host.service())["disabled"]
    assert await host.states(uuid) == ("stopped", None, ps.SHUTDOWN)  # the sync runs again


async def test_an_operators_disable_is_never_undone(host: Host) -> None:
    async with host.db.write() as conn:
        await conn.execute(update(services).where(services.c.host == "h1")
                           .values(disabled=True, disabled_reason="maintenance"))
    host.driver.hypervisor_down = True
    await host.manager.periodic_tasks(later())
    assert (await host.service())["disabled_reason"] == "maintenance"
    host.driver.hypervisor_down = False
    await host.manager.periodic_tasks(later())
    service = await host.service()
    assert (service["disabled"], service["disabled_reason"]) == (True, "maintenance")


async def test_a_stale_automatic_disable_is_undone_at_start_up(host: Host) -> None:
    """The agent died while the hypervisor was down; the hypervisor came back before the agent did."""
    async with host.db.write() as conn:
        await conn.execute(update(services).where(services.c.host == "h1").values(disabled=True,
                                                                                   disabled_reason=REASON))
    await host.restart()
    assert not (await host.service())["disabled"]


async def test_build_failure_disables_are_not_undone_by_a_healthy_hypervisor(host: Host) -> None:
    async with host.db.write() as conn:
        await conn.execute(update(services).where(services.c.host == "h1")
                           .values(disabled=True, disabled_reason="Auto-disabled due to 10 build failures"))
    await host.restart()
    assert (await host.service())["disabled"]
