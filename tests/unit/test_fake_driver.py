from __future__ import annotations

import time
from pathlib import Path

import pytest

from stratus import conf as conf_mod
from stratus import exception
from stratus.objects.states import power_state
from stratus.virt.driver import HypervisorUnavailable
from stratus.virt.fake import FakeDriver, FakePowerActionError, FakeSpawnError, uptime_line

INSTANCE = {"uuid": "u1", "name": "instance-00000001", "vcpus": 1, "memory_mb": 64, "flavor": {"extra_specs": {}}}


async def test_spawn_power_and_destroy() -> None:
    driver = FakeDriver(conf_mod.load(), "h1")
    await driver.spawn(INSTANCE, {}, network_info=[])
    assert (await driver.get_info(INSTANCE)).power_state == power_state.RUNNING
    await driver.power_off(INSTANCE)
    assert (await driver.get_info(INSTANCE)).power_state == power_state.SHUTDOWN
    assert await driver.list_instance_uuids() == ["u1"]
    await driver.destroy(INSTANCE, network_info=[])
    await driver.destroy(INSTANCE, network_info=[])  # already gone is fine
    with pytest.raises(exception.InstanceNotFound):
        await driver.get_info(INSTANCE)


async def test_failure_injection_by_host_and_flavor() -> None:
    conf = conf_mod.load(overrides={"fake_driver": {"fail_hosts": ["h1"]}})
    with pytest.raises(FakeSpawnError):
        await FakeDriver(conf, "h1").spawn(INSTANCE, {}, network_info=[])
    bad = {**INSTANCE, "flavor": {"extra_specs": {"fake:fail_on_hosts": "h2, h3"}}}
    with pytest.raises(FakeSpawnError):
        await FakeDriver(conf, "h3").spawn(bad, {}, network_info=[])
    ok = FakeDriver(conf, "h4")
    await ok.spawn(bad, {}, network_info=[])
    assert await ok.list_instance_uuids() == ["u1"]
    with pytest.raises(FakeSpawnError):
        await FakeDriver(conf, "h2").spawn(INSTANCE, {"properties": {"fake_fail_on_hosts": "h2"}}, network_info=[])


async def test_power_actions_console_and_a_hypervisor_that_goes_away() -> None:
    driver = FakeDriver(conf_mod.load(), "h1")
    await driver.spawn(INSTANCE, {}, network_info=[])
    for call, state in ((driver.pause, power_state.PAUSED), (driver.unpause, power_state.RUNNING),
                        (driver.suspend, power_state.SUSPENDED), (driver.resume, power_state.RUNNING)):
        await call(INSTANCE)
        assert await driver.list_power_states() == {"u1": state}
    await driver.power_off(INSTANCE, timeout=5)
    await driver.power_on(INSTANCE)
    await driver.reboot(INSTANCE, "HARD")
    console = (await driver.get_console_output(INSTANCE)).decode()
    boot = [f"[instance-00000001] {line}" for line in (
        f"Linux version 6.1.0-fake ({INSTANCE['vcpus']} vCPU, {INSTANCE['memory_mb']} MB)",
        "init: reached target multi-user", "login:")]
    assert console.splitlines() == [
        "[instance-00000001] booting (boot 1)", *boot,
        "[instance-00000001] memory saved to disk", "[instance-00000001] memory restored from disk",
        "[instance-00000001] ACPI power button: shutting down",
        "[instance-00000001] booting (boot 2)", *boot,
        "[instance-00000001] reboot (HARD)", "[instance-00000001] booting (boot 3)", *boot]

    driver.hypervisor_down = True
    for probe in (driver.list_power_states(), driver.get_info(INSTANCE), driver.init_host("h1")):
        with pytest.raises(HypervisorUnavailable, match="Connection to the hypervisor is broken on host: h1"):
            await probe
    with pytest.raises(HypervisorUnavailable):
        driver.get_available_resources()
    driver.hypervisor_down = False
    assert (await driver.get_info(INSTANCE)).power_state == power_state.RUNNING


async def test_per_instance_failures_and_durations() -> None:
    driver = FakeDriver(conf_mod.load(), "h1")
    slow = {**INSTANCE, "system_metadata": {"image_fake_power_action_time": "0.05",
                                            "image_fake_fail_power_actions": "suspend, reboot"}}
    await driver.spawn(slow, {}, network_info=[])
    with pytest.raises(FakePowerActionError, match="Simulated suspend failure on h1"):
        await driver.suspend(slow)
    await driver.pause(slow)
    driver.fail_actions["unpause"] = RuntimeError("stuck")
    with pytest.raises(RuntimeError):
        await driver.unpause(slow)
    assert (await driver.get_info(slow)).power_state == power_state.PAUSED


def test_uptime_line_is_procps_format() -> None:
    """The shapes procps' ``uptime`` prints (and python-openstackclient parses), Nova's fake line among them."""
    at = time.struct_time((2024, 1, 2, 8, 32, 11, 1, 2, 0))
    assert uptime_line(at, (93 * 24 + 18) * 3600 + 25 * 60 + 7, 12, (0.2, 0.12, 0.14)) == (
        " 08:32:11 up 93 days, 18:25, 12 users,  load average: 0.20, 0.12, 0.14")
    assert uptime_line(at, 299, 0, (0, 0, 0)) == " 08:32:11 up 4 min,  0 users,  load average: 0.00, 0.00, 0.00"
    assert uptime_line(at, 24 * 3600 + 5 * 3600 + 60, 1, (1, 1, 1)).startswith(" 08:32:11 up 1 day,  5:01,  1 user,")
    assert uptime_line(at, 2 * 24 * 3600 + 60, 2, (0, 0, 0)).startswith(" 08:32:11 up 2 days, 1 min,  2 users,")


async def test_host_uptime_counts_from_the_simulated_hosts_boot() -> None:
    driver = FakeDriver(conf_mod.load(), "h1")
    before = time.localtime()
    line = await driver.get_host_uptime()
    clock, _, rest = line.strip().partition(" up ")
    assert rest.startswith("0 min,  0 users,  load average: 0.00, 0.00, 0.00"), line
    now = time.localtime()
    assert clock in {time.strftime("%H:%M:%S", before), time.strftime("%H:%M:%S", now)}
    driver.booted_at -= 3 * 24 * 3600 + 2 * 3600 + 7 * 60  # booted 3 days, 2:07 ago
    await driver.spawn(INSTANCE, {}, network_info=[])
    driver.hypervisor_down = True  # the host itself still answers, as `uptime` needs no libvirtd
    assert " up 3 days,  2:07,  0 users,  load average: 1.00, 1.00, 1.00" in await driver.get_host_uptime()


async def test_vifs_are_recorded_as_plugged() -> None:
    driver = FakeDriver(conf_mod.load(), "h1")
    await driver.spawn(INSTANCE, {}, network_info=[{"id": "p1", "address": "fa:16:3e:00:00:01"}])
    assert list(driver.vifs["u1"]) == ["p1"]
    await driver.attach_interface(INSTANCE, {"id": "p2"})
    assert list(driver.vifs["u1"]) == ["p1", "p2"]
    await driver.detach_interface(INSTANCE, {"id": "p1"})
    await driver.detach_interface(INSTANCE, {"id": "p1"})  # not plugged: fine
    assert list(driver.vifs["u1"]) == ["p2"]
    await driver.destroy(INSTANCE, network_info=[])
    assert "u1" not in driver.vifs
    with pytest.raises(exception.InstanceNotFound):
        await driver.attach_interface(INSTANCE, {"id": "p3"})


@pytest.mark.parametrize("persist", [True, False])
async def test_persist_guests_keeps_guests_and_moved_disks_across_a_new_driver(tmp_path: Path, persist: bool
                                                                             ) -> None:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "fake_driver": {"persist_guests": persist}})
    first = FakeDriver(conf, "h1")
    await first.spawn(INSTANCE, {}, network_info=[])
    await first.power_off(INSTANCE)
    moved = {**INSTANCE, "uuid": "u2"}
    await first.spawn(moved, {}, network_info=[])
    await first.migrate_disk_and_power_off(moved, "h2", {})
    again = FakeDriver(conf, "h1")  # the compute service started again on the same hypervisor
    if not persist:
        assert again.guests == {} and again.moved_away == {}
        return
    assert await again.list_power_states() == {"u1": power_state.SHUTDOWN}
    assert again.guests["u1"].boots == 1 and again.guests["u1"].console == first.guests["u1"].console
    assert list(again.moved_away) == ["u2"]
    await again.finish_revert_migration(moved, power_on=True)
    assert (await again.get_info(moved)).power_state == power_state.RUNNING
    assert set(FakeDriver(conf, "h1").guests) == {"u1", "u2"}
    assert FakeDriver(conf, "h2").guests == {}  # each host its own
