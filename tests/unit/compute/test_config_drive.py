"""The build's config-drive step on a compute host: built when asked, forced or mandatory (and then shown on the
server), and a clear fault without a reschedule on a driver that cannot attach one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stratus.objects.states import power_state as ps
from stratus.virt.driver import Capabilities
from tests.unit.compute.conftest import Host, context


class Conductor:
    """Records a reschedule (``build_instances``) instead of scheduling again."""

    def __init__(self) -> None:
        self.reschedules: list[str] = []

    async def build_instances(self, context: dict[str, Any], instance_uuid: str, *args: Any, **kwargs: Any) -> None:
        self.reschedules.append(instance_uuid)


async def _build(host: Host, image: dict[str, Any] | None = None, **values: Any) -> tuple[str, Conductor]:
    conductor = Conductor()
    await host.transport.listen("conductor", conductor)
    uuid = await host.add(vm_state="building", task_state="scheduling", power_state=ps.NOSTATE, guest=None,
                          launched=False, display_name="vm", hostname="vm", key_name="k", key_data="ssh-ed25519 AA",
                          **values)
    await host.manager.build_and_run_instance(context(), uuid, {"image": image or {}}, {}, [])
    await host.settle()
    return uuid, conductor


async def test_asked_for(host: Host) -> None:
    uuid, _ = await _build(host, config_drive="True")
    assert (await host.get(uuid))["vm_state"] == "active"
    files = dict(host.driver.config_drives[uuid].files)
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta["uuid"] == uuid and meta["public_keys"] == {"k": "ssh-ed25519 AA"}
    assert meta["hostname"] == "vm.novalocal"


async def test_not_asked_for(host: Host) -> None:
    uuid, _ = await _build(host)
    assert (await host.get(uuid))["vm_state"] == "active"
    assert uuid not in host.driver.config_drives
    assert (await host.get(uuid))["config_drive"] == ""


@pytest.mark.parametrize("overrides", [{"DEFAULT": {"force_config_drive": True}}])
async def test_forced_by_the_operator_shows_on_the_server(host: Host) -> None:
    uuid, _ = await _build(host)
    assert uuid in host.driver.config_drives
    assert (await host.get(uuid))["config_drive"] == "True"


async def test_mandatory_for_the_image(host: Host) -> None:
    uuid, _ = await _build(host, image={"id": "i", "img_config_drive": "mandatory"})
    assert uuid in host.driver.config_drives
    assert (await host.get(uuid))["config_drive"] == "True"


async def test_a_driver_without_config_drives_fails_the_build_without_reschedule(host: Host) -> None:
    host.driver.capabilities = Capabilities(supports_config_drive=False)
    uuid, conductor = await _build(host, config_drive="True")
    row = await host.get(uuid)
    assert (row["vm_state"], row["task_state"]) == ("error", None)
    assert conductor.reschedules == []
    faults = await host.faults(uuid)
    assert len(faults) == 1 and "cannot attach" in faults[0] and "config drive" in faults[0]
    assert uuid not in host.driver.guests
