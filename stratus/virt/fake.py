"""The fake driver: a simulated hypervisor held in memory, for tests and for scale simulation.

A real product feature, as in Nova: one compute process can simulate many hosts, spawns can take time, and
failures can be injected per host so reschedules and error handling are exercised without hardware.

Tests play the part of the guest and the hypervisor directly: ``set_power_state`` is a guest powering itself
off (with the lifecycle event a real hypervisor would send, if asked), ``guests.pop`` a guest removed behind the
cloud's back, ``hypervisor_down`` a hypervisor that stopped answering, ``fail_actions`` a power action that fails.
Through the API, a flavor extra spec or image property does the same per instance: ``fake:power_action_time`` /
``fake_power_action_time`` (seconds each power action takes, so its task_state can be seen) and
``fake:fail_power_actions`` / ``fake_fail_power_actions`` (driver methods that fail, e.g. ``reboot,suspend``,
``migrate_disk_and_power_off``). For moves, the flavor an instance moves with decides: a destination named by its
``fake:fail_on_hosts`` (or in ``[fake_driver] fail_hosts``) refuses it before anything moves (the conductor tries
an alternate, as for a build), and one named by ``fake:fail_finish_on_hosts`` fails to start it after the disks
came over (the move is reverted to the source). A live migration takes ``fake:live_migration_time`` seconds (0 by
default: at once), so that it can be aborted or forced to complete while it runs; simulated hosts share no
storage, so a live migration asked not to copy the disks (``block_migration: false``) is refused.

With ``[fake_driver] persist_guests`` the guests outlive the compute service: each change is written to
``state_path/fake-guests/<host>.json`` and read back when the driver is made again, as a real hypervisor keeps
its domains (and a move's disks) while its agent restarts. The move steps pass crash points named
``fake.<method>`` (stratus/failpoints.py) as they start, so a crash test kills the service right in that step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from oslo_config import cfg

from stratus import exception, failpoints
from stratus.metadata import configdrive
from stratus.objects.states import power_state, task_states
from stratus.virt.driver import (
    Capabilities,
    ComputeDriver,
    ConfigDrive,
    HostResources,
    HypervisorUnavailable,
    InstanceInfo,
    LifecycleEvent,
    LiveMigrationControl,
)

#: lines of console log kept per guest (the oldest go first), so a long-lived simulated fleet stays small
CONSOLE_LINES = 200


class FakeSpawnError(exception.StratusException):
    msg_fmt = "Simulated spawn failure on %(host)s"


class FakePowerActionError(exception.StratusException):
    msg_fmt = "Simulated %(action)s failure on %(host)s"


@dataclasses.dataclass
class _Guest:
    uuid: str
    name: str
    power_state: int
    vcpus: int
    memory_mb: int
    console: list[str] = dataclasses.field(default_factory=list)
    boots: int = 0

    def log(self, text: str) -> None:
        """A deterministic serial console: one line per thing the guest would print."""
        self.console.append(f"[{self.name or self.uuid}] {text}")
        del self.console[:-CONSOLE_LINES]

    def boot(self) -> None:
        self.boots += 1
        self.power_state = power_state.RUNNING
        self.log(f"booting (boot {self.boots})")  # what a guest's boot prints, shortly: kernel, init, login
        self.log(f"Linux version 6.1.0-fake ({self.vcpus} vCPU, {self.memory_mb} MB)")
        self.log("init: reached target multi-user")
        self.log("login:")


class FakeDriver(ComputeDriver):
    capabilities = Capabilities(supports_pause=True, supports_suspend=True, supports_console_output=True,
                                supports_multiattach=True, supports_config_drive=True)

    def __init__(self, conf: cfg.ConfigOpts, host: str) -> None:
        self.conf = conf
        self.host = host
        #: when the simulated host booted (epoch seconds): its driver's creation; a compute restart keeps it
        self.booted_at = time.time()
        self.guests: dict[str, _Guest] = {}
        #: the VIFs plugged into each guest, by port id (spawn, attach_interface; destroy unplugs them all)
        self.vifs: dict[str, dict[str, dict[str, Any]]] = {}
        self.spawn_count = 0
        #: a hypervisor that stopped answering: every call raises HypervisorUnavailable until it is False again
        self.hypervisor_down = False
        #: power action (``power_off``, ``reboot``, ``pause``…) → the exception it raises while it is set
        self.fail_actions: dict[str, Exception] = {}
        #: instance uuid → the config drive its spawn got (kept while the guest exists)
        self.config_drives: dict[str, ConfigDrive] = {}
        #: guests whose disks went to another host (or this one) in a resize or migration, kept until the move
        #: is confirmed (dropped) or reverted (back in ``guests``)
        self.moved_away: dict[str, _Guest] = {}
        #: instance uuid → the network info last given by injectNetworkInfo
        self.injected_network_info: dict[str, list[dict[str, Any]]] = {}
        #: the images this host has cached (image pre-cache requests; no data is kept), in the order they came
        self.cached_images: list[str] = []
        self._load()

    def _state_file(self) -> str:
        return os.path.join(self.conf.state_path, "fake-guests", f"{self.host}.json")

    def _save(self) -> None:
        """With ``persist_guests``: the guests and the disks moves left behind, written whole (replace on rename,
        so a kill mid-write leaves the previous state)."""
        if not self.conf.fake_driver.persist_guests:
            return
        path = self._state_file()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        state = {"guests": {u: dataclasses.asdict(g) for u, g in self.guests.items()},
                 "moved_away": {u: dataclasses.asdict(g) for u, g in self.moved_away.items()}}
        with open(path + ".tmp", "wb") as f:
            f.write(orjson.dumps(state))
        os.replace(path + ".tmp", path)

    def _load(self) -> None:
        if not self.conf.fake_driver.persist_guests or not os.path.exists(self._state_file()):
            return
        with open(self._state_file(), "rb") as f:
            state = orjson.loads(f.read())
        self.guests = {u: _Guest(**g) for u, g in state["guests"].items()}
        self.moved_away = {u: _Guest(**g) for u, g in state["moved_away"].items()}

    @staticmethod
    def _crash_point(method: str) -> None:
        failpoints.hit(f"fake.{method}")

    def _check_up(self) -> None:
        if self.hypervisor_down:
            raise HypervisorUnavailable(host=self.host)

    @staticmethod
    def _hint(instance: dict[str, Any], name: str) -> str:
        """A per-instance setting: the flavor's ``fake:<name>`` extra spec or the image's ``fake_<name>``."""
        specs = (instance.get("flavor") or {}).get("extra_specs") or {}
        sysmeta = instance.get("system_metadata") or {}
        return str(specs.get(f"fake:{name}") or sysmeta.get(f"image_fake_{name}") or "")

    async def _act(self, instance: dict[str, Any], action: str) -> _Guest:
        """The common start of a power action: hypervisor reachable, injected failure, simulated duration."""
        self._check_up()
        error = self.fail_actions.get(action)
        if error is None and action in {a.strip() for a in self._hint(instance, "fail_power_actions").split(",")}:
            error = FakePowerActionError(action=action, host=self.host)
        if error is not None:
            raise error
        guest = self._guest(instance)
        delay = self._hint(instance, "power_action_time")
        if delay:
            await asyncio.sleep(float(delay))
        return guest

    async def init_host(self, host: str) -> None:
        self.host = host
        self._check_up()

    def get_available_resources(self) -> HostResources:
        self._check_up()
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
                    admin_password: str | None = None, config_drive: ConfigDrive | None = None) -> None:
        self._check_up()
        self._crash_point("spawn")
        self.spawn_count += 1
        if self.conf.fake_driver.spawn_time:
            await asyncio.sleep(self.conf.fake_driver.spawn_time)
        reason = self._should_fail(instance, image_meta)
        if reason:
            raise FakeSpawnError(reason, host=self.host)
        guest = _Guest(uuid=instance["uuid"], name=instance.get("name", ""), power_state=power_state.NOSTATE,
                       vcpus=instance["vcpus"], memory_mb=instance["memory_mb"])
        if config_drive is not None:
            await self._attach_config_drive(instance, guest, config_drive)
        guest.boot()
        self.guests[instance["uuid"]] = guest
        self.vifs[instance["uuid"]] = {vif["id"]: vif for vif in network_info}
        self._save()

    def instance_dir(self, instance: dict[str, Any]) -> str:
        return os.path.join(self.conf.instances_path or os.path.join(self.conf.state_path, "instances"),
                            instance["uuid"])

    async def _attach_config_drive(self, instance: dict[str, Any], guest: _Guest, drive: ConfigDrive) -> None:
        """Record the drive; with ``[fake_driver] write_config_drive`` also write the real ISO in the instance's
        directory, as the libvirt driver does (destroy removes it)."""
        self.config_drives[instance["uuid"]] = drive
        if self.conf.fake_driver.write_config_drive:
            path = os.path.join(self.instance_dir(instance), ConfigDrive.FILE_NAME)
            await asyncio.to_thread(configdrive.make_drive, path, drive.files)
        guest.log(f"config drive {configdrive.VOLUME_LABEL}: {len(drive.files)} files")

    async def destroy(self, instance: dict[str, Any], *, network_info: list[dict[str, Any]],
                      destroy_disks: bool = True) -> None:
        self._check_up()
        self._crash_point("destroy")
        self.guests.pop(instance["uuid"], None)
        self.vifs.pop(instance["uuid"], None)
        self._save()
        if self.config_drives.pop(instance["uuid"], None) is not None and self.conf.fake_driver.write_config_drive:
            await asyncio.to_thread(shutil.rmtree, self.instance_dir(instance), True)

    async def attach_interface(self, instance: dict[str, Any], vif: dict[str, Any]) -> None:
        self._check_up()
        if instance["uuid"] not in self.guests:
            raise exception.InstanceNotFound(instance_id=instance["uuid"])
        self.vifs.setdefault(instance["uuid"], {})[vif["id"]] = vif

    async def detach_interface(self, instance: dict[str, Any], vif: dict[str, Any]) -> None:
        self._check_up()
        self.vifs.get(instance["uuid"], {}).pop(vif["id"], None)

    async def get_info(self, instance: dict[str, Any]) -> InstanceInfo:
        self._check_up()
        guest = self.guests.get(instance["uuid"])
        if guest is None:
            raise exception.InstanceNotFound(instance_id=instance["uuid"])
        return InstanceInfo(power_state=guest.power_state, internal_id=guest.name)

    async def list_instance_uuids(self) -> list[str]:
        self._check_up()
        return list(self.guests)

    async def list_power_states(self) -> dict[str, int]:
        self._check_up()
        return {uuid: guest.power_state for uuid, guest in self.guests.items()}

    def set_power_state(self, uuid: str, state: int, transition: str | None = None) -> None:
        """The guest changed on its own (powered itself off, crashed…); with ``transition``, the hypervisor also
        reports it as a lifecycle event, as libvirt does."""
        self.guests[uuid].power_state = state
        self.guests[uuid].log(f"power state is now {state} (by itself)")
        self._save()
        if transition is not None:
            self.emit_event(LifecycleEvent(uuid, transition))

    def _guest(self, instance: dict[str, Any]) -> _Guest:
        guest = self.guests.get(instance["uuid"])
        if guest is None:
            raise exception.InstanceNotFound(instance_id=instance["uuid"])
        return guest

    async def power_off(self, instance: dict[str, Any], timeout: int = 0, retry_interval: int = 0) -> None:
        guest = await self._act(instance, "power_off")
        if guest.power_state != power_state.SHUTDOWN:
            guest.log("ACPI power button: shutting down" if timeout else "powered off")
        guest.power_state = power_state.SHUTDOWN
        self._save()

    async def power_on(self, instance: dict[str, Any]) -> None:
        guest = await self._act(instance, "power_on")
        if guest.power_state != power_state.RUNNING:
            guest.boot()
        self._save()

    async def reboot(self, instance: dict[str, Any], reboot_type: str) -> None:
        guest = await self._act(instance, "reboot")
        guest.log(f"reboot ({reboot_type})")
        guest.boot()
        self._save()

    async def pause(self, instance: dict[str, Any]) -> None:
        (await self._act(instance, "pause")).power_state = power_state.PAUSED
        self._save()

    async def unpause(self, instance: dict[str, Any]) -> None:
        (await self._act(instance, "unpause")).power_state = power_state.RUNNING
        self._save()

    async def suspend(self, instance: dict[str, Any]) -> None:
        guest = await self._act(instance, "suspend")
        guest.log("memory saved to disk")
        guest.power_state = power_state.SUSPENDED
        self._save()

    async def resume(self, instance: dict[str, Any]) -> None:
        guest = await self._act(instance, "resume")
        guest.log("memory restored from disk")
        guest.power_state = power_state.RUNNING
        self._save()

    async def snapshot(self, context: dict[str, Any], instance: dict[str, Any], image_id: str,
                       update_task_state: Callable[[str, str], Awaitable[None]]) -> None:
        """A real upload of simulated disk contents: a small raw image naming the instance, so the snapshot
        becomes an active image that can boot another server. ``fake:fail_power_actions=snapshot`` fails it."""
        self._crash_point("snapshot")
        guest = await self._act(instance, "snapshot")
        if self.images is None:
            raise exception.BuildAbortException(instance_uuid=instance["uuid"], reason="no image service")
        await update_task_state(task_states.IMAGE_PENDING_UPLOAD, task_states.IMAGE_SNAPSHOT)
        data = f"stratus fake disk of instance {instance['uuid']}\n".encode().ljust(4096, b"\0")
        await update_task_state(task_states.IMAGE_UPLOADING, task_states.IMAGE_PENDING_UPLOAD)
        await self.images.update(context, image_id, {"disk_format": "raw", "container_format": "bare"})

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        await self.images.upload(context, image_id, chunks())
        guest.log(f"disk snapshot uploaded as image {image_id}")

    @staticmethod
    def _named(flavor: dict[str, Any], spec: str, host: str) -> bool:
        value = str((flavor.get("extra_specs") or {}).get(spec) or "")
        return host in {h.strip() for h in value.split(",") if h.strip()}

    async def prepare_migration_destination(self, instance: dict[str, Any], flavor: dict[str, Any]) -> None:
        self._check_up()
        if self.host in self.conf.fake_driver.fail_hosts or self._named(flavor, "fake:fail_on_hosts", self.host):
            raise FakeSpawnError(f"host {self.host} refuses instance {instance['uuid']}", host=self.host)

    async def migrate_disk_and_power_off(self, instance: dict[str, Any], dest_host: str, flavor: dict[str, Any],
                                         timeout: int = 0, retry_interval: int = 0) -> None:
        self._crash_point("migrate_disk_and_power_off")
        guest = await self._act(instance, "migrate_disk_and_power_off")
        guest.power_state = power_state.SHUTDOWN
        guest.log(f"powered off: disks going to {dest_host}")
        self.moved_away[instance["uuid"]] = self.guests.pop(instance["uuid"])
        self._save()

    async def finish_migration(self, instance: dict[str, Any], image_meta: dict[str, Any], *,
                               power_on: bool, network_info: list[dict[str, Any]] | None = None) -> None:
        self._check_up()
        self._crash_point("finish_migration")
        if self._named(instance.get("flavor") or {}, "fake:fail_finish_on_hosts", self.host):
            raise FakeSpawnError(f"host {self.host} failed to start the guest of {instance['uuid']}",
                                 host=self.host)
        guest = _Guest(uuid=instance["uuid"], name=instance.get("name", ""), power_state=power_state.SHUTDOWN,
                       vcpus=instance["vcpus"], memory_mb=instance["memory_mb"])
        guest.log(f"disks arrived on {self.host}")
        if power_on:
            guest.boot()
        self.guests[instance["uuid"]] = guest
        self._save()

    async def confirm_migration(self, instance: dict[str, Any]) -> None:
        self._check_up()
        self._crash_point("confirm_migration")
        self.moved_away.pop(instance["uuid"], None)
        self._save()

    async def finish_revert_migration(self, instance: dict[str, Any], *, power_on: bool,
                                      network_info: list[dict[str, Any]] | None = None) -> None:
        self._check_up()
        self._crash_point("finish_revert_migration")
        guest = self.moved_away.pop(instance["uuid"], None) or self.guests.get(instance["uuid"])
        if guest is None:
            raise exception.InstanceNotFound(instance_id=instance["uuid"])
        guest.vcpus, guest.memory_mb = instance["vcpus"], instance["memory_mb"]
        self.guests[instance["uuid"]] = guest
        if power_on and guest.power_state != power_state.RUNNING:
            guest.boot()
        self._save()

    async def check_can_live_migrate_destination(self, instance: dict[str, Any], block_migration: bool | None
                                                 ) -> bool:
        self._check_up()
        if block_migration is False:
            raise exception.MigrationPreCheckError(
                reason=f"{instance['uuid']} is not on shared storage: Shared storage live-migration requires "
                       f"either shared storage or boot-from-volume with no local disks.")
        return True

    async def live_migration(self, instance: dict[str, Any], dest_host: str, block_migration: bool,
                             control: LiveMigrationControl, migrate_data: dict[str, Any]) -> int:
        self._crash_point("live_migration")
        guest = await self._act(instance, "live_migration")
        control.memory_total = guest.memory_mb * 1024 * 1024
        duration = float(self._hint(instance, "live_migration_time") or 0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        while (elapsed := loop.time() - started) < duration and not control.force_complete.is_set():
            control.memory_processed = int(control.memory_total * elapsed / duration)
            if control.abort.is_set():
                guest.log(f"live migration to {dest_host} aborted")
                raise exception.LiveMigrationAborted(instance_uuid=instance["uuid"])
            await asyncio.sleep(min(0.05, duration - elapsed))
        if control.abort.is_set() and not control.force_complete.is_set():
            raise exception.LiveMigrationAborted(instance_uuid=instance["uuid"])
        control.memory_processed = control.memory_total
        guest.log(f"live-migrated to {dest_host}" + (" (block migration)" if block_migration else ""))
        self.guests.pop(instance["uuid"], None)
        self._save()
        return guest.power_state

    async def post_live_migration_at_destination(self, instance: dict[str, Any], power: int) -> None:
        self._check_up()
        self._crash_point("post_live_migration_at_destination")
        guest = _Guest(uuid=instance["uuid"], name=instance.get("name", ""), power_state=power,
                       vcpus=instance["vcpus"], memory_mb=instance["memory_mb"])
        guest.log(f"arrived live on {self.host}")
        self.guests[instance["uuid"]] = guest
        self._save()

    async def rollback_live_migration_at_destination(self, instance: dict[str, Any]) -> None:
        self._check_up()

    async def rescue(self, instance: dict[str, Any], rescue_image: dict[str, Any], admin_password: str | None
                     ) -> None:
        guest = await self._act(instance, "rescue")
        guest.log(f"booting rescue image {rescue_image.get('id', '?')}, own disk attached as the second disk")
        guest.boot()
        self._save()

    async def unrescue(self, instance: dict[str, Any]) -> None:
        guest = await self._act(instance, "unrescue")
        guest.log("rescue over: booting from its own disk")
        guest.boot()
        self._save()

    async def set_admin_password(self, instance: dict[str, Any], new_pass: str) -> None:
        guest = await self._act(instance, "set_admin_password")
        guest.log("administrator password changed by the guest agent")

    async def get_instance_diagnostics(self, instance: dict[str, Any]) -> dict[str, Any]:
        """As Nova's fake driver reports them (it names itself ``libvirt``, the one value tempest's schema and
        most clients know), with this guest's CPUs, memory and state."""
        self._check_up()
        guest = self._guest(instance)
        names = {power_state.RUNNING: "running", power_state.PAUSED: "paused", power_state.SHUTDOWN: "shutdown",
                 power_state.CRASHED: "crashed", power_state.SUSPENDED: "suspended"}
        return {"state": names.get(guest.power_state, "pending"), "driver": "libvirt", "hypervisor": "fake",
                "hypervisor_os": "fake", "uptime": int(time.time() - self.booted_at),
                "config_drive": instance["uuid"] in self.config_drives, "num_cpus": guest.vcpus, "num_nics": 0,
                "num_disks": 1,
                "cpu_details": [{"id": i, "time": 17300000000, "utilisation": 15} for i in range(guest.vcpus)],
                "nic_details": [],
                "disk_details": [{"read_bytes": 262144, "read_requests": 112, "write_bytes": 5778432,
                                  "write_requests": 488, "errors_count": 0}],
                "memory_details": {"maximum": guest.memory_mb, "used": guest.memory_mb // 2}}

    async def trigger_crash_dump(self, instance: dict[str, Any]) -> None:
        guest = await self._act(instance, "trigger_crash_dump")
        guest.log("NMI received: kernel panic - not syncing: NMI IOCK error: writing crash dump")

    async def get_host_uptime(self) -> str:
        """The simulated host's ``uptime`` line: the time now, how long since it booted, no logged-in users, and
        as load its running guests (each a busy process). It needs no hypervisor, as a real host's does not."""
        running = sum(1 for guest in self.guests.values() if guest.power_state == power_state.RUNNING)
        return uptime_line(time.localtime(), time.time() - self.booted_at, users=0, load=(running,) * 3)

    async def inject_network_info(self, instance: dict[str, Any], network_info: list[dict[str, Any]]) -> None:
        self._guest(instance)  # the guest must exist, as for any call about it
        self.injected_network_info[instance["uuid"]] = network_info

    async def cache_image(self, context: dict[str, Any], image_id: str) -> bool:
        """Records the image as cached, once: True the first time, False after (what a real cache answers). The
        image must exist in the image service, as a download needs it to."""
        self._check_up()
        if image_id in self.cached_images:
            return False
        if self.images is not None:
            await self.images.show(context, image_id)
        self.cached_images.append(image_id)
        return True

    async def get_console_output(self, instance: dict[str, Any]) -> bytes:
        self._check_up()
        return "".join(line + "\n" for line in self._guest(instance).console).encode()


def uptime_line(now: time.struct_time, up_seconds: float, users: int, load: tuple[float, float, float]) -> str:
    """A line as procps' ``uptime`` prints it: `` 08:32:11 up 93 days, 18:25, 12 users,  load average: 0.20,
    0.12, 0.14`` (``up 5 min`` under an hour, ``1 day``, `` 1 user``), which clients parse."""
    minutes = int(up_seconds) // 60
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    up = f"{days} day{'s' if days != 1 else ''}, " if days else ""
    up += f"{hours:2d}:{minutes:02d}" if hours else f"{minutes} min"
    return (f" {now.tm_hour:02d}:{now.tm_min:02d}:{now.tm_sec:02d} up {up}, {users:2d} user{'' if users == 1 else 's'},"
            f"  load average: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")
