"""The host side of the power actions: driver calls, outcomes, failures, take-overs; the request side's claim."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stratus import exception
from stratus.compute import api as compute_api
from stratus.compute.console import tail
from stratus.compute.locks import InstanceLocks
from stratus.compute.rpcapi import NotSupportedByDriver
from stratus.db import actions, instances
from stratus.objects.states import power_state as ps
from stratus.virt.driver import Capabilities
from stratus.virt.fake import FakeDriver
from tests.unit.compute.conftest import Host, context


async def _requested(host: Host, uuid: str, action: compute_api.PowerAction) -> dict[str, Any]:
    """What the API does before its cast: the claim (task_state and the instance action)."""
    ctx = context()
    await compute_api.claim(host.db, ctx, uuid, action)
    return ctx


async def test_stop_gives_the_guest_the_images_shutdown_timeout(host: Host) -> None:
    seen: list[tuple[int, int]] = []
    original = host.driver.power_off

    async def power_off(instance: dict[str, Any], timeout: int = 0, retry_interval: int = 0) -> None:
        seen.append((timeout, retry_interval))
        await original(instance, timeout, retry_interval)

    host.driver.power_off = power_off  # type: ignore[method-assign]
    plain = await host.add()
    custom = await host.add(system_metadata={"image_os_shutdown_timeout": "7"})
    for uuid in (plain, custom):
        await host.manager.stop_instance(await _requested(host, uuid, compute_api.STOP), uuid)
        assert await host.states(uuid) == ("stopped", None, ps.SHUTDOWN)
    assert seen == [(0, 10), (7, 10)]  # [DEFAULT] shutdown_timeout is 0 in these tests; [compute] retry 10 s


async def test_reboot_steps_and_outcome(host: Host) -> None:
    uuid = await host.add(vm_state="stopped", power_state=ps.SHUTDOWN, guest=ps.SHUTDOWN)
    ctx = await _requested(host, uuid, compute_api.HARD_REBOOT)
    await host.manager.reboot_instance(ctx, uuid, "HARD")
    assert await host.states(uuid) == ("active", None, ps.RUNNING)
    assert (await host.actions(uuid))[-1] == ("reboot", "u", [("compute_reboot_instance", "Success")])


async def test_failures_revert_or_error_as_nova(host: Host) -> None:
    paused = await host.add()
    host.driver.fail_actions = {"pause": RuntimeError("no"), "suspend": RuntimeError("disk full"),
                                "reboot": RuntimeError("stuck")}
    await host.manager.pause_instance(await _requested(host, paused, compute_api.PAUSE), paused)
    assert await host.states(paused) == ("active", None, ps.RUNNING)
    assert await host.faults(paused) == ["no"]
    assert (await host.actions(paused))[-1][2] == [("compute_pause_instance", "Error")]

    suspended = await host.add()
    await host.manager.suspend_instance(await _requested(host, suspended, compute_api.SUSPEND), suspended)
    assert await host.states(suspended) == ("error", None, ps.RUNNING)  # Nova: the guest may be half saved

    running = await host.add()
    await host.manager.reboot_instance(await _requested(host, running, compute_api.SOFT_REBOOT), running, "SOFT")
    assert await host.states(running) == ("active", None, ps.RUNNING)  # the guest still runs
    off = await host.add(vm_state="stopped", power_state=ps.SHUTDOWN, guest=ps.SHUTDOWN)
    await host.manager.reboot_instance(await _requested(host, off, compute_api.HARD_REBOOT), off, "HARD")
    assert await host.states(off) == ("error", None, ps.SHUTDOWN)
    assert await host.faults(off) == ["stuck"]


class NoPause(FakeDriver):
    capabilities = Capabilities(supports_pause=False, supports_suspend=False, supports_console_output=False)


async def test_a_driver_without_the_capability(host: Host) -> None:
    host.driver.__class__ = NoPause
    uuid = await host.add()
    for action, call in ((compute_api.PAUSE, host.manager.pause_instance),
                         (compute_api.SUSPEND, host.manager.suspend_instance)):
        await call(await _requested(host, uuid, action), uuid)
        assert await host.states(uuid) == ("active", None, ps.RUNNING)  # as it was, even for suspend
    assert await host.faults(uuid) == ["The requested functionality is not supported."] * 2
    with pytest.raises(NotSupportedByDriver):
        await host.manager.get_console_output(context(), uuid)


async def test_a_delete_that_lands_during_an_action_wins(host: Host) -> None:
    uuid = await host.add(system_metadata={"image_fake_power_action_time": "0.2"})
    ctx = await _requested(host, uuid, compute_api.STOP)
    stop = asyncio.create_task(host.manager.stop_instance(ctx, uuid))
    await asyncio.sleep(0.05)
    async with host.db.write() as conn:  # the API's delete: task_state deleting, whatever was under way
        assert await instances.update_instance(conn, uuid, {"task_state": "deleting"})
    await stop
    assert await host.states(uuid) == ("active", "deleting", ps.RUNNING)  # not reverted, not stopped
    assert await host.faults(uuid) == []
    assert (await host.actions(uuid))[-1][2] == [("compute_stop_instance", "Error")]
    await host.manager.terminate_instance(context(), uuid)
    assert (await host.get(uuid))["deleted"]
    # a cast for an instance already gone does nothing
    await host.manager.start_instance(context(), uuid)
    await host.manager.stop_instance(context(), "no-such-instance")


async def test_concurrent_requests_only_one_claims(host: Host) -> None:
    uuid = await host.add()
    results = await asyncio.gather(*(compute_api.claim(host.db, context(), uuid, compute_api.STOP)
                                     for _ in range(5)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 4
    assert all(isinstance(e, compute_api.InstanceInvalidState) and e.kwargs["state"] == "powering-off"
               for e in errors)
    assert [a[0] for a in await host.actions(uuid)] == ["create", "stop"]


async def test_claim_checks_in_novas_order(host: Host) -> None:
    locked = await host.add(locked=True)
    with pytest.raises(compute_api.InstanceIsLocked):
        await compute_api.claim(host.db, context(), locked, compute_api.STOP)
    await compute_api.claim(host.db, context(), locked, compute_api.STOP, is_admin=True)
    unplaced = await host.add(vm_state="building", host=None, guest=None, launched=False)
    with pytest.raises(compute_api.InstanceNotReady):  # stop checks the host first
        await compute_api.claim(host.db, context(), unplaced, compute_api.STOP)
    with pytest.raises(compute_api.InstanceInvalidState) as info:  # pause checks the states first
        await compute_api.claim(host.db, context(), unplaced, compute_api.PAUSE)
    assert info.value.kwargs == {"attr": "vm_state", "instance_uuid": unplaced, "state": "building",
                                 "method": "pause"}
    with pytest.raises(exception.InstanceNotFound):
        await compute_api.claim(host.db, context(), "nope", compute_api.START)


async def test_console_output_tail(host: Host) -> None:
    uuid = await host.add()
    full = await host.manager.get_console_output(context(), uuid)
    assert full.endswith("login:\n") and await host.manager.get_console_output(context(), uuid, 2) == \
        full.split("\n")[-2] + "\n"
    assert tail(b"a\nb\nc", 2) == b"b\nc" and tail(b"a\nb", -1) == b"a\nb" and tail(b"a", 0) == b""
    assert tail(b"a\xff", None).decode("ascii", "replace") == "a\ufffd"
    with pytest.raises(exception.InstanceNotFound):
        await host.manager.get_console_output(context(), "nope")


async def test_instance_locks_keep_nothing_once_released() -> None:
    locks = InstanceLocks()
    order: list[str] = []

    async def hold(name: str) -> None:
        async with locks("u1"):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    await asyncio.gather(hold("a"), hold("b"))
    assert order == ["a in", "a out", "b in", "b out"]
    assert not locks.held("u1") and len(locks) == 0


async def test_events_join_the_users_action(host: Host) -> None:
    uuid = await host.add()
    ctx = context()
    async with host.db.write() as conn:
        await actions.action_start(conn, ctx, [uuid], "pause")
        assert await instances.update_instance(conn, uuid, {"task_state": "pausing"})
    await host.manager.pause_instance(ctx, uuid)
    await host.manager.unpause_instance(await _requested(host, uuid, compute_api.UNPAUSE), uuid)
    assert [(a, e) for a, _, e in await host.actions(uuid)] == [
        ("create", []), ("pause", [("compute_pause_instance", "Success")]),
        ("unpause", [("compute_unpause_instance", "Success")])]
