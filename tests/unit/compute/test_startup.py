"""Start-up reconciliation: a compute agent restarted on the same hypervisor finishes, retries or settles what
it was doing, starts nothing twice, and leaves no guest of a deleted, unknown or moved instance behind."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from stratus.compute import startup
from stratus.db import actions, instances
from stratus.db.models import instance_actions
from stratus.objects.states import power_state as ps
from tests.unit.compute.conftest import Host, context

RUNNING, PAUSED, SHUTDOWN, SUSPENDED, NOSTATE = ps.RUNNING, ps.PAUSED, ps.SHUTDOWN, ps.SUSPENDED, ps.NOSTATE


async def test_running_instances_are_left_running(host: Host) -> None:
    uuid = await host.add()
    stopped = await host.add(vm_state="stopped", power_state=SHUTDOWN, guest=SHUTDOWN)
    await host.restart()
    assert await host.states(uuid) == ("active", None, RUNNING)
    assert host.driver.guests[uuid].boots == 1  # not started again
    assert await host.states(stopped) == ("stopped", None, SHUTDOWN)
    assert [a[0] for a in await host.actions(uuid)] == ["create"]


async def test_an_interrupted_build_goes_to_error_with_a_fault(host: Host) -> None:
    uuid = await host.add(vm_state="building", task_state="spawning", power_state=NOSTATE, launched=False,
                          guest=None)
    async with host.db.write() as conn:  # the build's event, left open by the agent that stopped
        await actions.event_start(conn, context(await _request_id(host, uuid, "create")), uuid,
                                  "compute__do_build_and_run_instance", host="h1")
    await host.restart()
    assert await host.states(uuid) == ("error", None, NOSTATE)
    assert await host.faults(uuid) == [f"Instance {uuid} was building when compute host h1 restarted"]
    assert await host.actions(uuid) == [("create", "u", [("compute__do_build_and_run_instance", "Error")])]


async def test_an_interrupted_rebuild_goes_to_error_with_a_fault(host: Host) -> None:
    uuid = await host.add(task_state="rebuild_spawning", guest=None)
    await _user_action(host, uuid, "rebuild")
    async with host.db.write() as conn:
        await actions.event_start(conn, context(await _request_id(host, uuid, "rebuild")), uuid,
                                  "compute_rebuild_instance", host="h1")
    await host.restart()
    assert (await host.states(uuid))[:2] == ("error", None)
    assert await host.faults(uuid) == [f"Instance {uuid} was rebuilding when compute host h1 restarted"]
    assert (await host.actions(uuid))[-1] == ("rebuild", "u", [("compute_rebuild_instance", "Error")])


@pytest.mark.parametrize("task", ["image_snapshot", "image_snapshot_pending", "image_pending_upload",
                                  "image_uploading", "image_backup"])
async def test_an_interrupted_snapshot_is_cleared_and_the_guest_left_running(host: Host, task: str) -> None:
    uuid = await host.add(task_state=task)
    await host.restart()
    assert await host.states(uuid) == ("active", None, RUNNING)
    assert host.driver.guests[uuid].boots == 1
    assert await host.faults(uuid) == []


async def test_an_interrupted_delete_is_finished(host: Host) -> None:
    uuid = await host.add(task_state="deleting")
    await _user_action(host, uuid, "delete")
    await host.restart()
    row = await host.get(uuid)
    assert row["deleted"] and row["vm_state"] == "deleted"
    assert uuid not in host.driver.guests
    assert (await host.actions(uuid))[-1] == ("delete", "u", [("compute_terminate_instance", "Success")])


@pytest.mark.parametrize(("task", "guest", "vm_state", "expected", "boots"), [
    ("powering-off", RUNNING, "active", ("stopped", None, SHUTDOWN), 1),
    ("powering-on", SHUTDOWN, "stopped", ("active", None, RUNNING), 2),
    # a soft reboot that got the guest down is finished HARD; one whose guest runs is only cleared
    ("rebooting", SHUTDOWN, "active", ("active", None, RUNNING), 2),
    ("reboot_started", RUNNING, "active", ("active", None, RUNNING), 1),
    ("reboot_pending", RUNNING, "active", ("active", None, RUNNING), 2),
    ("reboot_pending_hard", SHUTDOWN, "stopped", ("active", None, RUNNING), 2),
    ("unpausing", PAUSED, "paused", ("active", None, RUNNING), 1),
    ("resuming", SUSPENDED, "suspended", ("active", None, RUNNING), 1),
    # where the guest already got there, the task is settled; where it did not, it is cleared
    ("pausing", PAUSED, "active", ("paused", None, PAUSED), 1),
    ("pausing", RUNNING, "active", ("active", None, RUNNING), 1),
    ("suspending", SUSPENDED, "active", ("suspended", None, SUSPENDED), 1),
    ("suspending", RUNNING, "active", ("active", None, RUNNING), 1),
])
async def test_interrupted_power_actions(host: Host, task: str, guest: int, vm_state: str,
                                         expected: tuple[str, str | None, int], boots: int) -> None:
    uuid = await host.add(vm_state=vm_state, task_state=task, power_state=RUNNING, guest=guest)
    name = {"powering-off": "stop", "powering-on": "start", "unpausing": "unpause", "resuming": "resume",
            "pausing": "pause", "suspending": "suspend"}.get(task, "reboot")
    await _user_action(host, uuid, name)
    await host.restart()
    assert await host.states(uuid) == expected
    assert host.driver.guests[uuid].boots == boots
    retried = {"powering-off": "compute_stop_instance", "powering-on": "compute_start_instance",
               "unpausing": "compute_unpause_instance", "resuming": "compute_resume_instance"}.get(task)
    if task in ("rebooting", "reboot_pending", "reboot_pending_hard"):
        retried = "compute_reboot_instance"
    last = (await host.actions(uuid))[-1]
    assert last == (name, "u", [(retried, "Success")] if retried else [])  # the retry joins the user's action


async def test_a_reboot_of_a_vanished_guest_errors(host: Host) -> None:
    uuid = await host.add(task_state="reboot_started_hard", guest=None)
    await _user_action(host, uuid, "reboot")
    await host.restart()
    assert await host.states(uuid) == ("error", None, NOSTATE)
    assert await host.faults(uuid) == [f"Instance {uuid} could not be found."]


@pytest.mark.parametrize("overrides", [{"DEFAULT": {"resume_guests_state_on_host_boot": True}}])
async def test_resume_guests_state_on_host_boot_starts_guests_that_were_running(host: Host) -> None:
    after_reboot = await host.add(guest=SHUTDOWN)
    gone = await host.add(guest=None)
    await host.restart()
    assert await host.states(after_reboot) == ("active", None, RUNNING)
    assert host.driver.guests[after_reboot].boots == 2
    assert await host.states(gone) == ("error", None, NOSTATE)  # nothing to start: ERROR, as Nova
    assert await host.faults(gone) == [f"Instance {gone} could not be found."]


async def test_without_resume_a_stopped_guest_makes_its_instance_stopped(host: Host) -> None:
    uuid = await host.add(guest=SHUTDOWN)
    vanished = await host.add(guest=None)
    await host.restart()
    assert await host.states(uuid) == ("stopped", None, SHUTDOWN)  # the sync at start-up, as Nova's first sync
    assert host.driver.guests[uuid].boots == 1
    assert await host.states(vanished) == ("active", None, NOSTATE)


async def test_errored_instances_are_left_alone(host: Host) -> None:
    uuid = await host.add(vm_state="error", task_state="powering-off", guest=SHUTDOWN)
    await host.restart()
    assert await host.states(uuid) == ("error", "powering-off", RUNNING)  # as it was: no retry, no sync


async def _orphans(host: Host) -> dict[str, str]:
    deleted = await host.add()
    async with host.db.write() as conn:
        assert await instances.soft_delete(conn, deleted)
    moved = await host.add()
    async with host.db.write() as conn:
        assert await instances.update_instance(conn, moved, {"host": "h2"})
    unknown = "0e9c3e5a-53a4-4cf2-9b5a-000000000000"
    await host.driver.spawn({"uuid": unknown, "name": "stray", "vcpus": 1, "memory_mb": 64}, {}, network_info=[])
    return {"deleted": deleted, "moved": moved, "unknown": unknown, "mine": await host.add()}


async def test_guests_of_deleted_unknown_or_moved_instances_are_reaped(host: Host) -> None:
    guests = await _orphans(host)
    await host.restart()
    assert set(host.driver.guests) == {guests["mine"]}


@pytest.mark.parametrize("overrides", [{"DEFAULT": {"running_deleted_instance_action": "shutdown"}}])
async def test_running_deleted_shutdown_powers_them_off(host: Host) -> None:
    guests = await _orphans(host)
    await host.restart()
    states = {name: host.driver.guests[uuid].power_state for name, uuid in guests.items()}
    assert states == {"deleted": SHUTDOWN, "moved": SHUTDOWN, "unknown": SHUTDOWN, "mine": RUNNING}


@pytest.mark.parametrize("action", ["log", "noop"])
async def test_running_deleted_log_and_noop_touch_nothing(host: Host, action: str) -> None:
    guests = await _orphans(host)
    host.conf.set_override("running_deleted_instance_action", action)
    found = await startup.running_deleted(host.manager)
    assert sorted(uuid for uuid, _ in found) == ([] if action == "noop" else sorted(
        [guests["deleted"], guests["moved"], guests["unknown"]]))
    assert all(g.power_state == RUNNING for g in host.driver.guests.values())


@pytest.mark.parametrize("overrides", [{"DEFAULT": {"running_deleted_instance_poll_interval": 30}}])
async def test_running_deleted_check_runs_periodically(host: Host) -> None:
    guests = await _orphans(host)
    await host.manager.periodic_tasks(time.monotonic() + 31)
    assert set(host.driver.guests) == {guests["mine"]}


async def _request_id(host: Host, uuid: str, action: str) -> str:
    async with host.db.read() as conn:
        return str((await conn.execute(select(instance_actions.c.request_id).where(
            instance_actions.c.instance_uuid == uuid, instance_actions.c.action == action))).scalar_one())


async def _user_action(host: Host, uuid: str, action: str) -> None:
    async with host.db.write() as conn:
        await actions.action_start(conn, context(), [uuid], action)
