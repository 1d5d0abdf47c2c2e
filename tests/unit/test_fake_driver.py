from __future__ import annotations

import pytest

from stratus import conf as conf_mod
from stratus import exception
from stratus.objects.states import power_state
from stratus.virt.fake import FakeDriver, FakeSpawnError

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
