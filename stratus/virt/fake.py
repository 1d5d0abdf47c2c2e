"""The fake driver: a simulated hypervisor held in memory, for tests and for scale simulation.

A real product feature, as in Nova: one compute process can simulate many hosts, spawns can take time, and
failures can be injected per host so reschedules and error handling are exercised without hardware.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
from oslo_config import cfg

from stratus import exception
from stratus.objects.states import power_state
from stratus.virt.driver import Capabilities, ComputeDriver, HostResources, InstanceInfo


class FakeSpawnError(exception.StratusException):
    msg_fmt = "Simulated spawn failure on %(host)s"


@dataclasses.dataclass
class _Guest:
    uuid: str
    name: str
    power_state: int
    vcpus: int
    memory_mb: int


class FakeDriver(ComputeDriver):
    capabilities = Capabilities(supports_pause=True, supports_suspend=True, supports_console_output=True,
                                supports_multiattach=True)

    def __init__(self, conf: cfg.ConfigOpts, host: str) -> None:
        self.conf = conf
        self.host = host
        self.guests: dict[str, _Guest] = {}
        self.spawn_count = 0

    async def init_host(self, host: str) -> None:
        self.host = host

    def get_available_resources(self) -> HostResources:
        fake = self.conf.fake_driver
        return HostResources(hypervisor_hostname=self.host, hypervisor_type="fake", hypervisor_version=1000,
                             vcpus=fake.vcpus, memory_mb=fake.memory_mb, local_gb=fake.local_gb,
                             cpu_info=orjson.dumps({"arch": "x86_64", "vendor": "fake", "model": "fake",
                                                    "topology": {"sockets": 1, "cores": fake.vcpus,
                                                                 "threads": 1}}).decode(),
                             supported_instances=(("x86_64", "fake", "hvm"),))

    def _should_fail(self, instance: dict[str, Any], image_meta: dict[str, Any]) -> str | None:
        fake = self.conf.fake_driver
        specs = (instance.get("flavor") or {}).get("extra_specs") or {}
        props = image_meta.get("properties") or image_meta
        if str(specs.get("fake:fail_permanently") or props.get("fake_fail_permanently") or "").lower() == "true":
            raise exception.ImageUnacceptable(image_id=image_meta.get("id", "?"),
                                              reason="the flavor or image asks every host to refuse it")
        if self.host in fake.fail_hosts:
            return f"host {self.host} is configured to fail every build"
        if fake.fail_every_nth_build and self.spawn_count % fake.fail_every_nth_build == 0:
            return f"host {self.host} fails every {fake.fail_every_nth_build}th build (this is {self.spawn_count})"
        fail_on = specs.get("fake:fail_on_hosts") or props.get("fake_fail_on_hosts")
        if fail_on and self.host in {h.strip() for h in str(fail_on).split(",")}:
            return f"host {self.host} is named by the flavor or image to fail"
        return None

    async def prepare_networks_before_block_device_mapping(self, instance: dict[str, Any],
                                                           network_info: list[dict[str, Any]]) -> None:
        if self.conf.fake_driver.network_time:
            await asyncio.sleep(self.conf.fake_driver.network_time)

    async def prepare_for_spawn(self, instance: dict[str, Any]) -> None:
        if self.conf.fake_driver.block_device_time:
            await asyncio.sleep(self.conf.fake_driver.block_device_time)

    async def spawn(self, instance: dict[str, Any], image_meta: dict[str, Any], *,
                    network_info: list[dict[str, Any]], block_device_info: dict[str, Any] | None = None,
                    admin_password: str | None = None) -> None:
        self.spawn_count += 1
        if self.conf.fake_driver.spawn_time:
            await asyncio.sleep(self.conf.fake_driver.spawn_time)
        reason = self._should_fail(instance, image_meta)
        if reason:
            raise FakeSpawnError(reason, host=self.host)
        self.guests[instance["uuid"]] = _Guest(uuid=instance["uuid"], name=instance.get("name", ""),
                                               power_state=power_state.RUNNING, vcpus=instance["vcpus"],
                                               memory_mb=instance["memory_mb"])

    async def destroy(self, instance: dict[str, Any], *, network_info: list[dict[str, Any]],
                      destroy_disks: bool = True) -> None:
        self.guests.pop(instance["uuid"], None)

    async def get_info(self, instance: dict[str, Any]) -> InstanceInfo:
        guest = self.guests.get(instance["uuid"])
        if guest is None:
            raise exception.InstanceNotFound(instance_id=instance["uuid"])
        return InstanceInfo(power_state=guest.power_state, internal_id=guest.name)

    async def list_instance_uuids(self) -> list[str]:
        return list(self.guests)

    def _guest(self, instance: dict[str, Any]) -> _Guest:
        guest = self.guests.get(instance["uuid"])
        if guest is None:
            raise exception.InstanceNotFound(instance_id=instance["uuid"])
        return guest

    async def power_off(self, instance: dict[str, Any], timeout: int = 0, retry_interval: int = 0) -> None:
        self._guest(instance).power_state = power_state.SHUTDOWN

    async def power_on(self, instance: dict[str, Any]) -> None:
        self._guest(instance).power_state = power_state.RUNNING

    async def reboot(self, instance: dict[str, Any], reboot_type: str) -> None:
        self._guest(instance).power_state = power_state.RUNNING
