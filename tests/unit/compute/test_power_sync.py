"""The power-state sync: Nova's rules table, one pass over a host, lost races, lifecycle events, intervals."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import event

from stratus.compute import power_sync
from stratus.compute.power_sync import FORCE_STOP, STOP, resolve
from stratus.context import RequestContext
from stratus.db import instances
from stratus.objects.states import power_state as ps
from stratus.virt import driver as virt
from tests.unit.compute.conftest import Host

NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED = (ps.NOSTATE, ps.RUNNING, ps.PAUSED, ps.SHUTDOWN,
                                                          ps.CRASHED, ps.SUSPENDED)
ALL = (NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED)
#: Nova's _sync_instance_power_state, spelled out: (vm_state, guest power state) → what happens
EXPECTED = {
    **{("active", p): None for p in ALL},
    ("active", SHUTDOWN): STOP, ("active", CRASHED): STOP, ("active", SUSPENDED): STOP,
    **{("stopped", p): FORCE_STOP for p in ALL},
    ("stopped", NOSTATE): None, ("stopped", SHUTDOWN): None, ("stopped", CRASHED): None,
    **{("paused", p): None for p in ALL},
    ("paused", SHUTDOWN): FORCE_STOP, ("paused", CRASHED): FORCE_STOP,
    **{(vm, p): None for vm in ("building", "rescued", "resized", "suspended", "error") for p in ALL},
}


@pytest.mark.parametrize(("vm_state", "power"), list(EXPECTED))
def test_novas_rules(vm_state: str, power: int) -> None:
    assert resolve(vm_state, power) == EXPECTED[(vm_state, power)]


def admin() -> dict[str, Any]:
    return RequestContext.admin().to_dict()


class Statements:
    def __init__(self, host: Host) -> None:
        self.count = 0
        assert host.db.sync_engine is not None
        event.listen(host.db.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


async def test_one_pass_applies_the_table(host: Host) -> None:
    powered_off = await host.add(guest=SHUTDOWN)
    vanished = await host.add(guest=None)
    running_but_stopped = await host.add(vm_state="stopped", power_state=SHUTDOWN, guest=RUNNING)
    paused_then_off = await host.add(vm_state="paused", power_state=PAUSED, guest=SHUTDOWN)
    suspended_behind_our_back = await host.add(guest=SUSPENDED)
    paused_by_someone = await host.add(guest=PAUSED)
    busy = await host.add(task_state="pausing", guest=SHUTDOWN)
    errored = await host.add(vm_state="error", guest=SHUTDOWN)
    fine = await host.add()
    elsewhere = await host.add(host="h2", guest=None)

    done = await power_sync.sync_host(host.manager, admin())
    by_uuid = {s.uuid: (s.vm_power_state, s.action) for s in done}
    assert by_uuid == {powered_off: (SHUTDOWN, STOP), vanished: (NOSTATE, None),
                       running_but_stopped: (RUNNING, FORCE_STOP), paused_then_off: (SHUTDOWN, FORCE_STOP),
                       suspended_behind_our_back: (SUSPENDED, STOP), paused_by_someone: (PAUSED, None),
                       errored: (SHUTDOWN, None)}
    # the stop was requested (a cast: it may have run already, the pass's writes each wait for their commit)
    assert await host.states(powered_off) in {("active", "powering-off", SHUTDOWN), ("stopped", None, SHUTDOWN)}
    await host.manager.drain()

    assert await host.states(powered_off) == ("stopped", None, SHUTDOWN)
    assert await host.states(running_but_stopped) == ("stopped", None, SHUTDOWN)
    assert host.driver.guests[running_but_stopped].power_state == SHUTDOWN  # powered off again
    assert await host.states(paused_then_off) == ("stopped", None, SHUTDOWN)
    assert await host.states(suspended_behind_our_back) == ("stopped", None, SHUTDOWN)
    assert await host.states(vanished) == ("active", None, NOSTATE)  # only logged, as Nova
    assert await host.states(paused_by_someone) == ("active", None, PAUSED)
    assert await host.states(busy) == ("active", "pausing", RUNNING)  # an action is under way: not touched
    assert await host.states(errored) == ("error", None, SHUTDOWN)
    assert await host.states(fine) == ("active", None, RUNNING)
    assert await host.states(elsewhere) == ("active", None, RUNNING)
    # the stop is an instance action of its own, by the service, with the host's event
    assert await host.actions(powered_off) == [
        ("create", "u", []), ("stop", "stratus", [("compute_stop_instance", "Success")])]

    # level-triggered: the next pass finds nothing to do, in one query and one driver call
    statements = Statements(host)
    calls = []
    original = host.driver.list_power_states

    async def counted() -> dict[str, int]:
        calls.append(1)
        return await original()

    host.driver.list_power_states = counted  # type: ignore[method-assign]
    assert await power_sync.sync_host(host.manager, admin()) == []
    assert statements.count == 1 and len(calls) == 1  # the host's instances (BEGIN goes to the driver itself)


async def test_an_instance_that_changed_since_the_read_is_left_for_the_next_pass(host: Host) -> None:
    uuid = await host.add(guest=SHUTDOWN)
    async with host.db.read() as conn:
        [row] = await power_sync.host_instances(conn, host.manager.host)
    async with host.db.write() as conn:  # a user's stop lands between the sync's read and its write
        assert await instances.update_instance(conn, uuid, {"task_state": "powering-off"})
        assert await instances.update_instance(conn, uuid, {"task_state": None})
    assert await power_sync.apply(host.manager, admin(), row, SHUTDOWN) is None
    assert await host.states(uuid) == ("active", None, RUNNING)
    [again] = await power_sync.sync_host(host.manager, admin())
    assert (again.uuid, again.action) == (uuid, STOP)
    await host.manager.drain()
    assert await host.states(uuid) == ("stopped", None, SHUTDOWN)


async def test_instances_locked_by_an_action_are_skipped(host: Host) -> None:
    uuid = await host.add(guest=SHUTDOWN)
    async with host.manager.locks(uuid):
        assert await power_sync.sync_host(host.manager, admin()) == []
        assert await power_sync.sync_instance(host.manager, admin(), uuid) is None
    assert await host.states(uuid) == ("active", None, RUNNING)


async def test_a_lifecycle_event_syncs_that_instance_at_once(host: Host) -> None:
    uuid = await host.add()
    other = await host.add(guest=SHUTDOWN)  # not reported by an event: waits for the periodic sync
    host.driver.set_power_state(uuid, SHUTDOWN, virt.EVENT_STOPPED)  # the guest's own poweroff
    await host.manager.drain()
    assert await host.states(uuid) == ("stopped", None, SHUTDOWN)
    assert await host.states(other) == ("active", None, RUNNING)
    assert [a[0] for a in await host.actions(uuid)] == ["create", "stop"]

    # an event about an instance an action of ours holds is ignored: that action's outcome is the truth
    async with host.manager.locks(other):
        host.driver.emit_event(virt.LifecycleEvent(other, virt.EVENT_STOPPED))
        await host.manager.drain()
    assert await host.states(other) == ("active", None, RUNNING)
    host.driver.emit_event(virt.LifecycleEvent("not-an-instance", virt.EVENT_STARTED))
    await host.manager.drain()


@pytest.mark.parametrize("overrides", [{"DEFAULT": {"sync_power_state_interval": 60}}])
async def test_periodic_sync_runs_at_its_interval(host: Host) -> None:
    uuid = await host.add(guest=SHUTDOWN)
    await host.manager.periodic_tasks(time.monotonic() - 1)  # nothing due yet
    assert await host.states(uuid) == ("active", None, RUNNING)
    await host.manager.periodic_tasks(time.monotonic() + 61)
    await host.manager.drain()
    assert await host.states(uuid) == ("stopped", None, SHUTDOWN)


@pytest.mark.parametrize("overrides", [{"DEFAULT": {"sync_power_state_interval": -1}}])
async def test_negative_interval_never_syncs(host: Host) -> None:
    uuid = await host.add(guest=SHUTDOWN)
    await host.manager.periodic_tasks(time.monotonic() + 10**6)
    await host.manager.drain()
    assert await host.states(uuid) == ("active", None, RUNNING)
