"""The guest's domain XML, built from the instance (flavor, image properties) and what the host prepared.

Pure functions over plain data, so every choice (CPU mode, disk bus, kernel boot, extra specs) is unit-tested
without a hypervisor. The names follow Nova's libvirt driver: the same extra specs and image properties mean the
same thing here.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from typing import Any

from stratus import exception
from stratus.virt.libvirt import vif as vif_driver

#: Nova's namespace for its own domain metadata; tools that read Nova's (e.g. ceilometer) read ours too
NOVA_NS = "http://openstack.org/xmlns/libvirt/nova/1.1"
ET.register_namespace("nova", NOVA_NS)

DISK_BUSES = {"virtio": "vd", "scsi": "sd", "sata": "sd", "ide": "hd", "usb": "sd"}
VIF_MODELS = {"virtio", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet"}
DEFAULT_CMDLINE = "root=/dev/vda console=tty0 console=ttyS0"


class InvalidGuestConfig(exception.StratusException):
    """The flavor or image asks for a guest this host cannot describe: no other host could do better."""

    msg_fmt = "Invalid guest configuration: %(reason)s"


@dataclasses.dataclass(frozen=True)
class NetworkSource:
    """A disk served over the network (an RBD image): libvirt's ``<source protocol=… name=…><host/>``."""

    protocol: str  # rbd
    name: str  # pool/image
    hosts: tuple[tuple[str, str], ...]  # (address, port) of each monitor
    auth_username: str | None = None
    secret_uuid: str | None = None


@dataclasses.dataclass(frozen=True)
class Disk:
    path: str  # a file; for a network disk, its name (pool/image)
    driver_format: str  # qcow2 | raw
    target_dev: str
    bus: str = "virtio"
    device: str = "disk"  # disk | cdrom
    readonly: bool = False
    network: NetworkSource | None = None


def config_drive_disk(path: str, machine_type: str | None) -> Disk:
    """The config drive ``disk.config``, read-only as a CD-ROM, as Nova attaches it: on IDE (``hdd``, the last IDE
    unit), or SATA on a q35 machine, which has no IDE."""
    q35 = "q35" in (machine_type or "")
    return Disk(path=path, driver_format="raw", target_dev="sda" if q35 else "hdd", bus="sata" if q35 else "ide",
                device="cdrom", readonly=True)


@dataclasses.dataclass
class GuestConfig:
    """Everything the domain needs; ``to_xml`` renders it."""

    uuid: str
    name: str
    virt_type: str
    memory_mb: int
    vcpus: int
    disks: list[Disk]
    console_log: str
    #: Nova's network_info: one ``<interface type='bridge'>`` per VIF; none at all gives a guest without a NIC
    vifs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    vif_model: str = "virtio"
    machine_type: str | None = None
    cpu_mode: str | None = None
    cpu_topology: tuple[int, int, int] | None = None  # sockets, cores, threads
    cputune: dict[str, int] = dataclasses.field(default_factory=dict)
    kernel: str | None = None
    ramdisk: str | None = None
    cmdline: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    host: str = ""
    rng: bool = False

    def to_xml(self) -> str:
        dom = ET.Element("domain", type=self.virt_type)
        ET.SubElement(dom, "uuid").text = self.uuid
        ET.SubElement(dom, "name").text = self.name
        ET.SubElement(dom, "memory", unit="KiB").text = str(self.memory_mb * 1024)
        ET.SubElement(dom, "vcpu").text = str(self.vcpus)
        self._metadata(dom)
        if self.cputune:
            tune = ET.SubElement(dom, "cputune")
            for key in ("shares", "period", "quota"):
                if key in self.cputune:
                    ET.SubElement(tune, key).text = str(self.cputune[key])
        os_el = ET.SubElement(dom, "os")
        type_attrs = {"arch": "x86_64"}
        if self.machine_type:
            type_attrs["machine"] = self.machine_type
        ET.SubElement(os_el, "type", type_attrs).text = "hvm"
        if self.kernel:
            ET.SubElement(os_el, "kernel").text = self.kernel
            if self.ramdisk:
                ET.SubElement(os_el, "initrd").text = self.ramdisk
            ET.SubElement(os_el, "cmdline").text = self.cmdline or DEFAULT_CMDLINE
        else:
            ET.SubElement(os_el, "boot", dev="hd")
        features = ET.SubElement(dom, "features")
        ET.SubElement(features, "acpi")
        ET.SubElement(features, "apic")
        self._cpu(dom)
        clock = ET.SubElement(dom, "clock", offset="utc")
        ET.SubElement(clock, "timer", name="pit", tickpolicy="delay")
        ET.SubElement(clock, "timer", name="rtc", tickpolicy="catchup")
        ET.SubElement(dom, "on_poweroff").text = "destroy"
        ET.SubElement(dom, "on_reboot").text = "restart"
        ET.SubElement(dom, "on_crash").text = "destroy"
        self._devices(dom)
        return ET.tostring(dom, encoding="unicode")

    def _metadata(self, dom: ET.Element) -> None:
        """Nova's ``nova:instance`` block: who owns the guest and what flavor it runs, readable from libvirt
        alone; ``nova:owner``'s host attribute tells which compute host's guests these are."""
        meta = ET.SubElement(ET.SubElement(dom, "metadata"), f"{{{NOVA_NS}}}instance")
        ET.SubElement(meta, f"{{{NOVA_NS}}}package", version="stratus")
        ET.SubElement(meta, f"{{{NOVA_NS}}}name").text = str(self.metadata.get("display_name", ""))
        flavor = self.metadata.get("flavor") or {}
        fl = ET.SubElement(meta, f"{{{NOVA_NS}}}flavor", name=str(flavor.get("name", "")))
        for key in ("memory", "disk", "swap", "ephemeral", "vcpus"):
            ET.SubElement(fl, f"{{{NOVA_NS}}}{key}").text = str(flavor.get(key, 0))
        owner = ET.SubElement(meta, f"{{{NOVA_NS}}}owner")
        ET.SubElement(owner, f"{{{NOVA_NS}}}user", uuid=str(self.metadata.get("user_id", "")))
        ET.SubElement(owner, f"{{{NOVA_NS}}}project", uuid=str(self.metadata.get("project_id", "")))
        ET.SubElement(meta, f"{{{NOVA_NS}}}host").text = self.host

    def _cpu(self, dom: ET.Element) -> None:
        if self.cpu_mode in (None, "none") and not self.cpu_topology:
            return
        attrs = {}
        if self.cpu_mode not in (None, "none", "custom"):
            attrs["mode"] = str(self.cpu_mode)
        cpu = ET.SubElement(dom, "cpu", attrs)
        if self.cpu_topology:
            sockets, cores, threads = self.cpu_topology
            ET.SubElement(cpu, "topology", sockets=str(sockets), cores=str(cores), threads=str(threads))

    def _devices(self, dom: ET.Element) -> None:
        devices = ET.SubElement(dom, "devices")
        for disk in self.disks:
            el = ET.SubElement(devices, "disk", type="network" if disk.network else "file", device=disk.device)
            ET.SubElement(el, "driver", name="qemu", type=disk.driver_format, cache="none" if
                          disk.device == "disk" else "default")
            if disk.network is None:
                ET.SubElement(el, "source", file=disk.path)
            else:
                net = disk.network
                if net.auth_username and net.secret_uuid:
                    auth = ET.SubElement(el, "auth", username=net.auth_username)
                    ET.SubElement(auth, "secret", type="ceph", uuid=net.secret_uuid)
                source = ET.SubElement(el, "source", protocol=net.protocol, name=net.name)
                for host, port in net.hosts:
                    ET.SubElement(source, "host", name=host, port=port)
            ET.SubElement(el, "target", dev=disk.target_dev, bus=disk.bus)
            if disk.readonly:
                ET.SubElement(el, "readonly")
        for vif in self.vifs:
            devices.append(vif_driver.interface_element(vif, self.vif_model))
        serial = ET.SubElement(devices, "serial", type="pty")
        ET.SubElement(serial, "log", file=self.console_log, append="on")
        ET.SubElement(serial, "target", port="0")
        console = ET.SubElement(devices, "console", type="pty")
        ET.SubElement(console, "target", type="serial", port="0")
        if self.rng:
            rng = ET.SubElement(devices, "rng", model="virtio")
            ET.SubElement(rng, "backend", model="random").text = "/dev/urandom"
        ET.SubElement(devices, "memballoon", model="virtio")


def _int_spec(specs: dict[str, Any], key: str) -> int | None:
    value = specs.get(key)
    if value in (None, ""):
        return None
    try:
        number = int(str(value))
    except ValueError:
        raise InvalidGuestConfig(reason=f"{key}={value!r} is not an integer") from None
    if number < 0:
        raise InvalidGuestConfig(reason=f"{key}={value!r} must not be negative")
    return number


def cpu_topology(vcpus: int, specs: dict[str, Any], props: dict[str, Any]) -> tuple[int, int, int] | None:
    """``hw:cpu_sockets/cores/threads`` (flavor) or ``hw_cpu_*`` (image): a topology whose product is the vCPU
    count, the unnamed parts filled in as Nova does (sockets take the rest); None when nothing is asked."""
    asked = {}
    for part in ("sockets", "cores", "threads"):
        value = _int_spec(specs, f"hw:cpu_{part}")
        if value is None:
            value = _int_spec(props, f"hw_cpu_{part}")
        if value is not None:
            if value == 0:
                raise InvalidGuestConfig(reason=f"hw:cpu_{part} must be at least 1")
            asked[part] = value
    if not asked:
        return None
    threads = asked.get("threads", 1)
    cores = asked.get("cores") or max(1, vcpus // (threads * asked.get("sockets", vcpus)))
    sockets = asked.get("sockets") or max(1, vcpus // (threads * cores))
    if sockets * cores * threads != vcpus:
        raise InvalidGuestConfig(
            reason=f"CPU topology {sockets} sockets x {cores} cores x {threads} threads does not give the "
                   f"flavor's {vcpus} vCPUs")
    return sockets, cores, threads


def cputune(specs: dict[str, Any]) -> dict[str, int]:
    """Nova's ``quota:cpu_shares``, ``quota:cpu_period`` and ``quota:cpu_quota`` flavor extra specs."""
    out = {}
    for key in ("shares", "period", "quota"):
        value = _int_spec(specs, f"quota:cpu_{key}")
        if value is not None:
            out[key] = value
    return out


def disk_bus(props: dict[str, Any]) -> tuple[str, str]:
    """The root disk's bus and device prefix from the image's ``hw_disk_bus`` (virtio by default)."""
    bus = str(props.get("hw_disk_bus") or "virtio")
    if bus not in DISK_BUSES:
        raise InvalidGuestConfig(reason=f"hw_disk_bus={bus!r} is not one of {', '.join(sorted(DISK_BUSES))}")
    return bus, DISK_BUSES[bus]


def vif_model(props: dict[str, Any]) -> str:
    model = str(props.get("hw_vif_model") or "virtio")
    if model not in VIF_MODELS:
        raise InvalidGuestConfig(reason=f"hw_vif_model={model!r} is not one of {', '.join(sorted(VIF_MODELS))}")
    return model


def check_cpu_policy(specs: dict[str, Any], props: dict[str, Any]) -> None:
    """Dedicated CPUs need pinning against an accounted set of host CPUs (Nova's PCPU resource), which
    Stratus does not schedule yet: refuse clearly rather than hand out shared CPUs as dedicated ones."""
    policy = specs.get("hw:cpu_policy") or props.get("hw_cpu_policy")
    if policy not in (None, "", "shared"):
        raise InvalidGuestConfig(reason=f"hw:cpu_policy={policy} is not supported on this host (only shared)")
