"""The libvirt driver: real QEMU guests, with KVM where the host has hardware virtualisation, TCG otherwise.

The driver never runs qemu itself: it describes each guest as libvirt domain XML and asks libvirtd
(``[libvirt] connection_uri``) to define, start, stop and remove it, as Nova's libvirt driver does. An
instance's files live in ``instances_path/<uuid>/`` (``disk``, ``console.log``, ``kernel``, ``ramdisk``,
``libvirt.xml``); its root disk comes from the image backend (a qcow2 overlay on the host's cached base image by
default). Only domains whose Nova metadata names this compute host count as this host's guests, so a shared
libvirtd's other domains are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import libvirt
import orjson
from oslo_config import cfg

from stratus import exception
from stratus.context import RequestContext
from stratus.image.backends import backend_for
from stratus.image.backends.base import image_info, qemu_img
from stratus.image.backends.blank import BlankDisks
from stratus.image.backends.rbd import RbdBackend
from stratus.image.cache import ImageCache
from stratus.image.cache import base_name as cache_base_name
from stratus.metadata import configdrive
from stratus.objects.states import power_state, task_states
from stratus.virt import driver as virt
from stratus.virt.driver import Capabilities, ComputeDriver, ConfigDrive, HostResources, InstanceInfo
from stratus.virt.libvirt import config as guest_config
from stratus.virt.libvirt import files
from stratus.virt.libvirt import vif as vif_driver
from stratus.virt.libvirt.diagnostics import DiagnosticsMixin
from stratus.virt.libvirt.host import Host
from stratus.virt.libvirt.live_migration import LiveMigrationMixin
from stratus.virt.libvirt.migration import MigrationMixin
from stratus.virt.libvirt.rescue import RescueMixin

LOG = logging.getLogger(__name__)
GiB = 1024**3

#: libvirt's domain states in Nova's power states (a managed-saved, shut-off domain is SUSPENDED, see get_info)
POWER_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: power_state.NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: power_state.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: power_state.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: power_state.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: power_state.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: power_state.SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: power_state.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: power_state.SUSPENDED,
}

LIFECYCLE = {
    libvirt.VIR_DOMAIN_EVENT_STARTED: virt.EVENT_STARTED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED: virt.EVENT_STOPPED,
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: virt.EVENT_PAUSED,
    libvirt.VIR_DOMAIN_EVENT_RESUMED: virt.EVENT_RESUMED,
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: virt.EVENT_SUSPENDED,
}


#: task states in which a guest destroyed here is a move's destination whose RBD root disk is the very image the
#: source goes back to (a resize or migration failing on this host, or reverted): the image stays, as Nova's
#: ``_cleanup_rbd`` keeps it while the instance is ``resize_reverting``
SOURCE_OWNS_RBD_ROOT = (task_states.RESIZE_MIGRATED, task_states.RESIZE_FINISH, task_states.RESIZE_REVERTING)


def detect_virt_type() -> str:
    """kvm only where the CPU's own virtualisation is there (kvm_intel or kvm_amd loaded): a /dev/kvm backed
    by anything else (kvm_pvm, say) starts domains whose guests never run."""
    hardware = any(os.path.isdir(f"/sys/module/{m}") for m in ("kvm_intel", "kvm_amd"))
    return "kvm" if hardware and os.path.exists("/dev/kvm") else "qemu"


def _interface_by_mac(domain_xml: str, mac: str) -> str | None:
    """The domain's ``<interface>`` element with this MAC, as XML (what detachDeviceFlags wants), or None."""
    for nic in ET.fromstring(domain_xml).iter("interface"):
        el = nic.find("mac")
        if el is not None and (el.get("address") or "").lower() == mac.lower():
            return ET.tostring(nic, encoding="unicode")
    return None


def _no_domain(exc: libvirt.libvirtError) -> bool:
    return exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN


def _not_running(exc: libvirt.libvirtError) -> bool:
    return exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID


class LibvirtDriver(MigrationMixin, LiveMigrationMixin, RescueMixin, DiagnosticsMixin, ComputeDriver):
    """Moves between hosts are in ``migration.py`` (resize, cold migration) and ``live_migration.py``, rescue in
    ``rescue.py`` (mixed in)."""

    capabilities = Capabilities(supports_pause=True, supports_suspend=True, supports_console_output=True,
                                supports_config_drive=True)

    def __init__(self, conf: cfg.ConfigOpts, host: str) -> None:
        self.conf = conf
        self.host_name = host
        self.virt_type = conf.libvirt.virt_type or detect_virt_type()
        self.uri = conf.libvirt.connection_uri or "qemu:///system"
        self.host = Host(self.uri, host)
        self.instances_path = conf.instances_path or os.path.join(conf.state_path, "instances")
        #: the file backend (qcow2, raw, flat); None with images_type rbd, whose backend needs the image service
        self.backend = None if conf.libvirt.images_type == "rbd" else backend_for(conf.libvirt.images_type)
        self.rbd: RbdBackend | None = None
        self.cache: ImageCache | None = None
        self.blank = BlankDisks(os.path.join(self.instances_path, "_base"))
        self._host_info: dict[str, Any] = {}
        #: ``qemu-img info`` of each cached base image
        self._base_info: dict[str, dict[str, Any]] = {}
        #: domain uuid → whether its metadata names this host (read once per domain)
        self._owned: dict[str, bool] = {}
        #: instance uuid → whether this host made the instance's directory for an incoming live migration
        self._incoming: dict[str, bool] = {}

    # --- host ------------------------------------------------------------------------------------------
    async def init_host(self, host: str) -> None:
        self.host_name = host
        os.makedirs(self.instances_path, exist_ok=True)
        if self.images is not None and self.cache is None:  # init_host runs again after an outage
            self.cache = ImageCache(os.path.join(self.instances_path, "_base"), self.images)
        if self.conf.libvirt.images_type == "rbd" and self.rbd is None and self.cache is not None:
            assert self.images is not None
            self.rbd = RbdBackend(self.conf, self.images, self.cache)
            LOG.info("root disks in RBD pool %s of Ceph cluster %s", self.rbd.pool, await self.rbd.fsid())
        self.host.set_lifecycle_handler(asyncio.get_running_loop(), self._lifecycle)
        self._host_info = await asyncio.to_thread(self.host.host_info)
        LOG.info("libvirt %s at %s: %s guests (%s), %d CPUs, %d MiB", self._host_info["libvirt_version"],
                 self.uri, self.virt_type, "hardware virtualisation" if self.virt_type == "kvm" else "emulated",
                 self._host_info["cpus"], self._host_info["memory_mb"])

    async def cleanup_host(self) -> None:
        await asyncio.to_thread(self.host.close)

    def get_available_resources(self) -> HostResources:
        info = self._host_info = self.host.host_info()
        disk = os.statvfs(self.instances_path)
        cpu_info = {"arch": info["arch"], "model": info["model"], "vendor": info["vendor"],
                    "topology": {"sockets": info["sockets"], "cores": info["cores"], "threads": info["threads"]},
                    "features": info["features"]}
        return HostResources(
            hypervisor_hostname=self.host_name, hypervisor_type="QEMU",
            hypervisor_version=int(info["hypervisor_version"]), vcpus=int(info["cpus"]),
            memory_mb=int(info["memory_mb"]), local_gb=disk.f_blocks * disk.f_frsize // GiB,
            cpu_info=orjson.dumps(cpu_info).decode(),
            supported_instances=((info["arch"], self.virt_type, "hvm"),))

    async def read_available_resources(self) -> HostResources:
        return await asyncio.to_thread(self.get_available_resources)

    # --- events ----------------------------------------------------------------------------------------
    def _lifecycle(self, uuid: str, event: int, detail: int) -> None:
        if not self._owned.get(uuid, False):
            return
        transition = LIFECYCLE.get(event)
        if event == libvirt.VIR_DOMAIN_EVENT_STOPPED and detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED:
            transition = virt.EVENT_SUSPENDED
        if transition is not None:
            self.emit_event(virt.LifecycleEvent(uuid, transition))

    # --- paths -----------------------------------------------------------------------------------------
    def instance_dir(self, instance: dict[str, Any]) -> str:
        return os.path.join(self.instances_path, instance["uuid"])

    def console_log(self, instance: dict[str, Any]) -> str:
        return os.path.join(self.instance_dir(instance), "console.log")

    # --- spawn -----------------------------------------------------------------------------------------
    async def spawn(self, instance: dict[str, Any], image_meta: dict[str, Any], *,
                    network_info: list[dict[str, Any]], block_device_info: dict[str, Any] | None = None,
                    admin_password: str | None = None, config_drive: ConfigDrive | None = None) -> None:
        uuid = instance["uuid"]
        try:
            guest = self._guest_config(instance, image_meta)
            guest.vifs = list(network_info)
            for vif in guest.vifs:
                vif_driver.check(vif)
        except (guest_config.InvalidGuestConfig, vif_driver.UnsupportedVIFType) as exc:
            raise exception.BuildAbortException(instance_uuid=uuid, reason=str(exc)) from None
        inst_dir = self.instance_dir(instance)
        await asyncio.to_thread(os.makedirs, inst_dir, exist_ok=True)
        try:
            await self._plug_vifs(network_info)
            await self._create_disks(instance, image_meta, guest)
            if config_drive is not None:
                await self._create_config_drive(instance, guest, config_drive)
            xml = guest.to_xml()
            await asyncio.to_thread(files.write, os.path.join(inst_dir, "libvirt.xml"), xml)
            self._owned[uuid] = True

            def define_and_start(conn: libvirt.virConnect) -> None:
                conn.defineXML(xml).create()

            await self.host.call(define_and_start)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.destroy(instance, network_info=network_info)
            raise
        LOG.info("guest %s of instance %s started (%s)", guest.name, uuid, self.virt_type)

    async def prepare_networks_before_block_device_mapping(self, instance: dict[str, Any],
                                                           network_info: list[dict[str, Any]]) -> None:
        await self._plug_vifs(network_info)

    async def _plug_vifs(self, network_info: list[dict[str, Any]]) -> None:
        for vif in network_info:
            await asyncio.to_thread(vif_driver.plug, self.host_name, vif)

    def _guest_config(self, instance: dict[str, Any], image_meta: dict[str, Any]) -> guest_config.GuestConfig:
        props = {**(image_meta.get("properties") or {}), **image_meta}
        flavor = instance.get("flavor") or {}
        specs = flavor.get("extra_specs") or {}
        guest_config.check_cpu_policy(specs, props)
        bus, prefix = guest_config.disk_bus(props)
        inst_dir = self.instance_dir(instance)
        cpu_mode = self.conf.libvirt.cpu_mode or ("host-model" if self.virt_type == "kvm" else None)
        return guest_config.GuestConfig(
            uuid=instance["uuid"], name=instance.get("name") or self.conf.instance_name_template % instance["id"],
            virt_type=self.virt_type, memory_mb=int(instance["memory_mb"]), vcpus=int(instance["vcpus"]),
            disks=[guest_config.Disk(path=os.path.join(inst_dir, "disk"), driver_format="qcow2",
                                     target_dev=f"{prefix}a", bus=bus)],
            console_log=self.console_log(instance),
            vif_model=guest_config.vif_model(props), machine_type=props.get("hw_machine_type") or None,
            cpu_mode=cpu_mode, cpu_topology=guest_config.cpu_topology(int(instance["vcpus"]), specs, props),
            cputune=guest_config.cputune(specs), cmdline=props.get("os_command_line") or None,
            rng=str(specs.get("hw_rng:allowed", "")).lower() == "true" or bool(props.get("hw_rng_model")),
            host=self.host_name,
            metadata={"display_name": instance.get("display_name") or "", "user_id": instance.get("user_id"),
                      "project_id": instance.get("project_id"),
                      "flavor": {"name": flavor.get("name", ""), "memory": instance["memory_mb"],
                                 "disk": instance.get("root_gb", 0), "swap": flavor.get("swap", 0),
                                 "ephemeral": instance.get("ephemeral_gb", 0), "vcpus": instance["vcpus"]}})

    async def _create_disks(self, instance: dict[str, Any], image_meta: dict[str, Any],
                            guest: guest_config.GuestConfig) -> None:
        """The root disk from the image backend, and the kernel and ramdisk an AMI-style image names."""
        if self.cache is None:
            raise exception.BuildAbortException(instance_uuid=instance["uuid"],
                                                reason="this compute host has no image service")
        image_id = image_meta.get("id")
        if not image_id:
            raise exception.BuildAbortException(instance_uuid=instance["uuid"],
                                                reason="booting from volume needs the volume service")
        root_bytes = int(instance.get("root_gb") or 0) * GiB
        if self.rbd is not None:
            await self._create_rbd_root(instance, image_meta, guest, root_bytes)
        else:
            await self._create_file_root(instance, image_meta, guest, root_bytes)
        await self._create_blank_disks(instance, guest)
        await self._fetch_boot_files(instance, image_meta, guest)

    async def _fetch_boot_files(self, instance: dict[str, Any], image_meta: dict[str, Any],
                                guest: guest_config.GuestConfig) -> None:
        """The kernel and ramdisk an AMI-style image names, linked from the host's cache into the instance's
        directory."""
        assert self.cache is not None
        props = {**(image_meta.get("properties") or {}), **image_meta}
        inst_dir = self.instance_dir(instance)
        for key, name in (("kernel_id", "kernel"), ("ramdisk_id", "ramdisk")):
            if not props.get(key):
                continue
            assert self.images is not None
            part = await self.images.show(RequestContext.admin().to_dict(), str(props[key]))
            cached = await self.cache.fetch(part)
            target = os.path.join(inst_dir, name)
            await asyncio.to_thread(files.link_or_copy, cached, target)
            setattr(guest, name, target)

    async def _create_config_drive(self, instance: dict[str, Any], guest: guest_config.GuestConfig,
                                   drive: ConfigDrive) -> None:
        """``disk.config`` in the instance's directory (written in a worker thread), attached read-only as a
        CD-ROM (``config.config_drive_disk``). It stays a local file with images_type rbd too; destroy removes it
        with the directory."""
        path = os.path.join(self.instance_dir(instance), ConfigDrive.FILE_NAME)
        await asyncio.to_thread(configdrive.make_drive, path, drive.files)
        guest.disks.append(guest_config.config_drive_disk(path, guest.machine_type))
        LOG.info("config drive of instance %s at %s", instance["uuid"], path)

    async def _create_rbd_root(self, instance: dict[str, Any], image_meta: dict[str, Any],
                               guest: guest_config.GuestConfig, root_bytes: int) -> None:
        assert self.rbd is not None
        virtual_size = int(image_meta.get("virtual_size") or image_meta.get("size") or 0)
        if root_bytes and virtual_size > root_bytes:
            raise exception.BuildAbortException(
                instance_uuid=instance["uuid"],
                reason=f"Flavor's disk is too small for requested image. Flavor disk is {root_bytes} bytes, "
                       f"image is {virtual_size} bytes.")
        context = RequestContext.admin().to_dict()
        disk = await self.rbd.create_root(context, image_meta, instance["uuid"], root_bytes)
        root = guest.disks[0]
        guest.disks[0] = guest_config.Disk(
            path=disk.path, driver_format="raw", target_dev=root.target_dev, bus=root.bus,
            network=guest_config.NetworkSource("rbd", disk.path, disk.hosts, disk.user, disk.secret_uuid))

    async def _create_file_root(self, instance: dict[str, Any], image_meta: dict[str, Any],
                                guest: guest_config.GuestConfig, root_bytes: int) -> None:
        assert self.cache is not None and self.backend is not None
        image_id = image_meta["id"]
        base = await self.cache.fetch(image_meta)
        info = self._base_info.get(base)
        if info is None:  # a base never changes once cached: inspect it once, not once per instance
            info = self._base_info[base] = await image_info(base)
        if info.get("backing-filename"):  # an image must not read host files through its backing chain
            raise exception.ImageUnacceptable(image_id=image_id, reason="it has a backing file")
        base_format = str(info["format"])
        virtual_size = int(str(info["virtual-size"]))
        if root_bytes and virtual_size > root_bytes:
            raise exception.BuildAbortException(
                instance_uuid=instance["uuid"],
                reason=f"Flavor's disk is too small for requested image. Flavor disk is {root_bytes} bytes, "
                       f"image is {virtual_size} bytes.")
        root = guest.disks[0]
        disk = await self.backend.create(base, base_format, root.path, max(root_bytes, virtual_size))
        guest.disks[0] = guest_config.Disk(path=disk.path, driver_format=disk.driver_format,
                                           target_dev=root.target_dev, bus=root.bus)

    async def _create_blank_disks(self, instance: dict[str, Any], guest: guest_config.GuestConfig) -> None:
        """The flavor's ephemeral disk (``disk.local``) and swap (``disk.swap``), on the root disk's bus, next in
        device order (vdb, vdc), as Nova attaches them."""
        root = guest.disks[0]
        prefix = root.target_dev[:-1]
        inst_dir = self.instance_dir(instance)
        ephemeral_gb = int(instance.get("ephemeral_gb") or 0)
        swap_mb = int((instance.get("flavor") or {}).get("swap") or 0)
        made = []
        if ephemeral_gb:
            made.append(await self.blank.ephemeral(os.path.join(inst_dir, "disk.local"), ephemeral_gb))
        if swap_mb:
            made.append(await self.blank.swap(os.path.join(inst_dir, "disk.swap"), swap_mb))
        for index, disk in enumerate(made, start=1):
            guest.disks.append(guest_config.Disk(path=disk.path, driver_format=disk.driver_format,
                                                 target_dev=prefix + "abcdefghijklmnop"[index], bus=root.bus))

    async def manage_image_cache(self, instances: list[dict[str, Any]]) -> list[str]:
        """Nova's image cache manager: bases (images, kernels, ramdisks, blank ephemeral and swap disks) that
        no live instance of this host uses and that have been idle for
        ``[image_cache] remove_unused_original_minimum_age_seconds`` are removed."""
        if self.cache is None:
            return []
        in_use = set()
        for inst in instances:
            sysmeta = inst.get("system_metadata") or {}
            for image_id in (inst.get("image_ref"), sysmeta.get("image_kernel_id"), sysmeta.get("image_ramdisk_id")):
                if image_id:
                    in_use.add(cache_base_name(str(image_id)))
            if inst.get("ephemeral_gb"):
                in_use.add(f"ephemeral_{inst['ephemeral_gb']}_ext4")
            swap = (inst.get("flavor") or {}).get("swap")
            if swap:
                in_use.add(f"swap_{swap}")
        in_use |= await asyncio.to_thread(files.backing_names, self.instances_path)  # moves kept, rescue disks
        opts = self.conf.image_cache
        removed = await asyncio.to_thread(self.cache.age, in_use, opts.remove_unused_original_minimum_age_seconds,
                                          opts.remove_unused_base_images)
        if opts.remove_unused_base_images:
            for name in removed:
                self._base_info.pop(os.path.join(self.cache.base_dir, name), None)
        if self.rbd is not None:
            images = {str(inst["image_ref"]) for inst in instances if inst.get("image_ref")}
            removed += await self.rbd.age_bases(images, opts.remove_unused_original_minimum_age_seconds,
                                                opts.remove_unused_base_images)
        return removed

    # --- lookups ---------------------------------------------------------------------------------------
    def _domain(self, conn: libvirt.virConnect, instance: dict[str, Any]) -> libvirt.virDomain:
        try:
            return conn.lookupByUUIDString(instance["uuid"])
        except libvirt.libvirtError as exc:
            if _no_domain(exc):
                raise exception.InstanceNotFound(instance_id=instance["uuid"]) from None
            raise

    def _owns(self, dom: libvirt.virDomain) -> bool:
        uuid = dom.UUIDString()
        owned = self._owned.get(uuid)
        if owned is None:
            try:
                meta = ET.fromstring(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, guest_config.NOVA_NS))
                # libvirt returns the element without its namespace (the namespace chose it already)
                owned = (meta.findtext("host") or meta.findtext(f"{{{guest_config.NOVA_NS}}}host")) == self.host_name
            except libvirt.libvirtError:
                owned = False
            self._owned[uuid] = owned
        return owned

    @staticmethod
    def _power_state(dom: libvirt.virDomain) -> int:
        state, _reason = dom.state()
        if state == libvirt.VIR_DOMAIN_SHUTOFF and dom.hasManagedSaveImage():
            return power_state.SUSPENDED
        return POWER_STATES.get(state, power_state.NOSTATE)

    async def get_info(self, instance: dict[str, Any]) -> InstanceInfo:
        def read(conn: libvirt.virConnect) -> InstanceInfo:
            dom = self._domain(conn, instance)
            return InstanceInfo(power_state=self._power_state(dom), internal_id=dom.name())

        return await self.host.call(read)

    async def list_instance_uuids(self) -> list[str]:
        return await self.host.call(lambda conn: [d.UUIDString() for d in conn.listAllDomains() if self._owns(d)])

    async def list_power_states(self) -> dict[str, int]:
        def read(conn: libvirt.virConnect) -> dict[str, int]:
            out = {}
            for dom in conn.listAllDomains():
                if self._owns(dom):
                    with contextlib.suppress(libvirt.libvirtError):  # gone between the list and the read
                        out[dom.UUIDString()] = self._power_state(dom)
            return out

        return await self.host.call(read)

    # --- destroy ---------------------------------------------------------------------------------------
    async def destroy(self, instance: dict[str, Any], *, network_info: list[dict[str, Any]],
                      destroy_disks: bool = True) -> None:
        def remove(conn: libvirt.virConnect) -> None:
            try:
                dom = conn.lookupByUUIDString(instance["uuid"])
            except libvirt.libvirtError as exc:
                if _no_domain(exc):
                    return
                raise
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                if not _not_running(exc):
                    raise
            flags = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                     | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            try:
                dom.undefineFlags(flags)
            except libvirt.libvirtError as exc:
                if not _no_domain(exc):
                    raise

        await self.host.call(remove)
        self._owned.pop(instance["uuid"], None)
        for vif in network_info:
            await asyncio.to_thread(vif_driver.unplug, self.host_name, vif)
        if destroy_disks:
            await asyncio.to_thread(shutil.rmtree, self.instance_dir(instance), True)
            if self.rbd is not None and instance.get("task_state") not in SOURCE_OWNS_RBD_ROOT:
                await self.rbd.remove_instance_disks(instance["uuid"])

    # --- interfaces ------------------------------------------------------------------------------------
    async def attach_interface(self, instance: dict[str, Any], vif: dict[str, Any]) -> None:
        """The NIC live and in the persistent definition (``hw_vif_model`` of the instance's image, if the
        instance carries it, else virtio), after ``vif.plug`` made sure of its bridge."""
        image = instance.get("image_meta") or {}
        props = {**(image.get("properties") or {}), **image}
        try:
            xml = vif_driver.interface_xml(vif, guest_config.vif_model(props))
        except vif_driver.UnsupportedVIFType as exc:
            LOG.warning("attach of port %s to %s refused: %s", vif.get("id"), instance["uuid"], exc)
            raise exception.InterfaceAttachFailed(instance_uuid=instance["uuid"]) from None
        await asyncio.to_thread(vif_driver.plug, self.host_name, vif)

        def attach(conn: libvirt.virConnect) -> None:
            dom = self._domain(conn, instance)
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
            if dom.isActive():
                flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
            dom.attachDeviceFlags(xml, flags)

        try:
            await self.host.call(attach)
        except libvirt.libvirtError as exc:
            LOG.warning("attach of port %s to %s failed: %s", vif.get("id"), instance["uuid"], exc)
            raise exception.InterfaceAttachFailed(instance_uuid=instance["uuid"]) from None

    async def detach_interface(self, instance: dict[str, Any], vif: dict[str, Any]) -> None:
        def detach(conn: libvirt.virConnect) -> None:
            dom = self._domain(conn, instance)
            for flags, xml_flags in ((libvirt.VIR_DOMAIN_AFFECT_LIVE, 0),
                                     (libvirt.VIR_DOMAIN_AFFECT_CONFIG, libvirt.VIR_DOMAIN_XML_INACTIVE)):
                if flags == libvirt.VIR_DOMAIN_AFFECT_LIVE and not dom.isActive():
                    continue
                found = _interface_by_mac(dom.XMLDesc(xml_flags), vif["address"])
                if found is None:
                    continue
                dom.detachDeviceFlags(found, flags)

        try:
            await self.host.call(detach)
        except libvirt.libvirtError as exc:
            if not _no_domain(exc):
                LOG.warning("detach of port %s from %s failed: %s", vif.get("id"), instance["uuid"], exc)
                raise exception.InterfaceDetachFailed(instance_uuid=instance["uuid"]) from None
        await asyncio.to_thread(vif_driver.unplug, self.host_name, vif)

    # --- power -----------------------------------------------------------------------------------------
    async def power_off(self, instance: dict[str, Any], timeout: int = 0, retry_interval: int = 0) -> None:
        """ACPI shutdown, repeated every ``retry_interval`` seconds, for up to ``timeout`` seconds; then (or at
        once with no timeout) pulled off. A guest without ACPI handling ends the same way, only later."""
        if timeout and await self._clean_shutdown(instance, timeout, retry_interval):
            return

        def pull(conn: libvirt.virConnect) -> None:
            try:
                self._domain(conn, instance).destroy()
            except libvirt.libvirtError as exc:
                if not _not_running(exc):
                    raise

        await self.host.call(pull)

    async def _clean_shutdown(self, instance: dict[str, Any], timeout: float, retry_interval: float) -> bool:
        def request(conn: libvirt.virConnect) -> bool:
            dom = self._domain(conn, instance)
            state, _ = dom.state()
            if state != libvirt.VIR_DOMAIN_RUNNING:
                return state == libvirt.VIR_DOMAIN_SHUTOFF
            try:
                dom.shutdown()
            except libvirt.libvirtError as exc:
                if not _not_running(exc):
                    raise
            return False

        def stopped(conn: libvirt.virConnect) -> bool:
            return bool(self._domain(conn, instance).state()[0] == libvirt.VIR_DOMAIN_SHUTOFF)

        if await self.host.call(request):
            return True
        deadline = time.monotonic() + timeout
        last_request = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            if await self.host.call(stopped):
                LOG.info("instance %s shut down cleanly", instance["uuid"])
                return True
            if retry_interval and time.monotonic() - last_request >= retry_interval:
                await self.host.call(request)
                last_request = time.monotonic()
        LOG.warning("instance %s did not shut down within %ss; powering it off", instance["uuid"], timeout)
        return False

    async def power_on(self, instance: dict[str, Any]) -> None:
        def start(conn: libvirt.virConnect) -> None:
            dom = self._domain(conn, instance)
            if not dom.isActive():
                dom.create()

        await self.host.call(start)

    async def reboot(self, instance: dict[str, Any], reboot_type: str) -> None:
        """SOFT: ACPI shutdown, then start again; a guest that does not go down within
        ``[libvirt] wait_soft_reboot_seconds`` (default ``[DEFAULT] shutdown_timeout``) is rebooted HARD.
        HARD: pulled off and started from its definition (a saved memory image is dropped)."""
        if reboot_type == "SOFT":
            wait = self.conf.libvirt.wait_soft_reboot_seconds
            if wait is None:
                wait = self.conf.shutdown_timeout
            if wait and await self._clean_shutdown(instance, wait, 0):
                await self.power_on(instance)
                return
            LOG.info("soft reboot of %s fell back to a hard reboot", instance["uuid"])

        def hard(conn: libvirt.virConnect) -> None:
            dom = self._domain(conn, instance)
            if dom.isActive():
                dom.destroy()
            if dom.hasManagedSaveImage():
                dom.managedSaveRemove()
            dom.create()

        await self.host.call(hard)

    async def pause(self, instance: dict[str, Any]) -> None:
        await self.host.call(lambda conn: self._domain(conn, instance).suspend())

    async def unpause(self, instance: dict[str, Any]) -> None:
        await self.host.call(lambda conn: self._domain(conn, instance).resume())

    async def suspend(self, instance: dict[str, Any]) -> None:
        await self.host.call(lambda conn: self._domain(conn, instance).managedSave(0))

    async def resume(self, instance: dict[str, Any]) -> None:
        await self.host.call(lambda conn: self._domain(conn, instance).create())

    async def snapshot(self, context: dict[str, Any], instance: dict[str, Any], image_id: str,
                       update_task_state: Callable[[str, str], Awaitable[None]]) -> None:
        """The root disk flattened into a standalone qcow2 (its base folded in) under
        ``instances_path/snapshots``, then uploaded. A running guest is paused for the copy, so the disk does
        not change under it, and let run again at once after; a stopped or suspended one is copied as it is."""
        if self.images is None:
            raise exception.BuildAbortException(instance_uuid=instance["uuid"], reason="no image service")
        disk = os.path.join(self.instance_dir(instance), "disk")
        if self.rbd is not None:
            await update_task_state(task_states.IMAGE_PENDING_UPLOAD, task_states.IMAGE_SNAPSHOT)
            if await self.rbd.direct_snapshot(context, instance, image_id):
                LOG.info("instance %s snapshotted into image %s inside Ceph", instance["uuid"], image_id)
                return
            disk = self.rbd.qemu_uri(self.rbd.disk_name(instance["uuid"]))
        out_dir = os.path.join(self.instances_path, "snapshots")
        out = os.path.join(out_dir, f"{image_id}.qcow2")
        await asyncio.to_thread(os.makedirs, out_dir, exist_ok=True)

        def pause_if_running(conn: libvirt.virConnect) -> bool:
            dom = self._domain(conn, instance)
            if dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
                return False
            dom.suspend()
            return True

        try:
            await update_task_state(task_states.IMAGE_PENDING_UPLOAD, task_states.IMAGE_SNAPSHOT)
            paused = self.rbd is None and await self.host.call(pause_if_running)  # an RBD snapshot is atomic
            try:
                source_format = "raw" if self.rbd is not None else \
                    str((await image_info(disk, force_share=True))["format"])
                await qemu_img("convert", "-U", "-q", "-f", source_format, "-O", "qcow2", disk, out)
            finally:
                if paused:
                    await self.host.call(lambda conn: self._domain(conn, instance).resume())
            await update_task_state(task_states.IMAGE_UPLOADING, task_states.IMAGE_PENDING_UPLOAD)
            await self.images.update(context, image_id, {"disk_format": "qcow2", "container_format": "bare"})
            await self.images.upload(context, image_id, _file_chunks(out))
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.unlink, out)
        LOG.info("instance %s snapshotted into image %s", instance["uuid"], image_id)

    async def get_console_output(self, instance: dict[str, Any]) -> bytes:
        """The tail of the serial log (``[libvirt] console_log_max_bytes``), as libvirt's virtlogd wrote it."""
        path = self.console_log(instance)
        limit = self.conf.libvirt.console_log_max_bytes

        def tail() -> bytes:
            try:
                with open(path, "rb") as handle:
                    handle.seek(0, os.SEEK_END)
                    size = handle.tell()
                    handle.seek(max(0, size - limit))
                    return handle.read()
            except FileNotFoundError:
                return b""

        await self.get_info(instance)  # InstanceNotFound for a guest this host does not have
        return await asyncio.to_thread(tail)

    async def get_host_uptime(self) -> str:
        """What ``uptime`` prints on this host, as Nova's libvirt driver (``env LANG=C uptime``), in a worker
        thread. The compute host's own, whichever libvirtd ``connection_uri`` names."""
        def run() -> str:
            return subprocess.run(["env", "LANG=C", "uptime"], capture_output=True, text=True, check=True,
                                  timeout=30).stdout

        return await asyncio.to_thread(run)


async def _file_chunks(path: str, size: int = 4 * 1024 * 1024) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, size):
            yield chunk
    finally:
        handle.close()
