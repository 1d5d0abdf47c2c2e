"""What the libvirt driver reads from a running guest and pokes into it, as Nova's libvirt driver does:
``get_instance_diagnostics`` (the standard form of 2.48) and ``trigger_crash_dump`` (an NMI).

Diagnostics come from libvirt's own counters: the domain's info (state, memory), each vCPU's time, each disk's
``blockStats`` and each NIC's ``interfaceStats`` in the order of the domain's XML, the MACs from that XML; the
uptime counts from the instance's ``launched_at``. libvirt gives no CPU utilisation or NIC rates, so those are
null, as in Nova. A counter a hypervisor cannot give is left out of its list rather than failing the whole read.
"""

from __future__ import annotations

import datetime
import logging
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

import libvirt

from stratus.utils import utcnow

if TYPE_CHECKING:
    from stratus.virt.libvirt.driver import LibvirtDriver

LOG = logging.getLogger(__name__)

#: libvirt's domain states in Nova's diagnostics names (``power_state.STATE_MAP``)
_STATES = {libvirt.VIR_DOMAIN_NOSTATE: "pending", libvirt.VIR_DOMAIN_RUNNING: "running",
           libvirt.VIR_DOMAIN_BLOCKED: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
           libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown", libvirt.VIR_DOMAIN_SHUTOFF: "shutdown",
           libvirt.VIR_DOMAIN_CRASHED: "crashed", libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended"}


def _uptime(launched_at: Any) -> int:
    if isinstance(launched_at, str):
        try:
            launched_at = datetime.datetime.fromisoformat(launched_at)
        except ValueError:
            return 0
    if not isinstance(launched_at, datetime.datetime):
        return 0
    now = utcnow()
    if launched_at.tzinfo is None and now.tzinfo is not None:
        launched_at = launched_at.replace(tzinfo=now.tzinfo)
    return max(0, int((now - launched_at).total_seconds()))


def read_diagnostics(dom: libvirt.virDomain) -> dict[str, Any]:
    """The counters of one domain (blocking libvirt calls: run on the host's connection thread)."""
    state, max_kib, used_kib, num_cpus, _cpu_time = dom.info()
    devices = ET.fromstring(dom.XMLDesc(0)).find("devices")
    disks = [t.get("dev") for t in (devices.findall("disk/target") if devices is not None else [])]
    nics = [(i.find("target"), i.find("mac")) for i in (devices.findall("interface") if devices is not None else [])]
    cpus: list[dict[str, Any]] = []
    try:
        for vcpu in dom.vcpus()[0]:  # (number, state, cpu time ns, real cpu)
            cpus.append({"id": int(vcpu[0]), "time": int(vcpu[2]), "utilisation": None})
    except libvirt.libvirtError as exc:  # not offered by every hypervisor (nor on a paused QEMU, at times)
        LOG.debug("vcpu times of %s: %s", dom.UUIDString(), exc)
    disk_details = []
    for dev in disks:
        try:
            rd_req, rd_bytes, wr_req, wr_bytes, errs = dom.blockStats(dev)
        except libvirt.libvirtError:
            continue  # an empty CD-ROM has no statistics
        disk_details.append({"read_bytes": rd_bytes, "read_requests": rd_req, "write_bytes": wr_bytes,
                             "write_requests": wr_req, "errors_count": max(errs, 0)})
    nic_details = []
    for target, mac in nics:
        dev = target.get("dev") if target is not None else None
        if not dev:
            continue
        try:
            rx_b, rx_p, rx_e, rx_d, tx_b, tx_p, tx_e, tx_d = dom.interfaceStats(dev)
        except libvirt.libvirtError:
            continue
        nic_details.append({"mac_address": mac.get("address") if mac is not None else None,
                            "rx_octets": rx_b, "rx_errors": rx_e, "rx_drop": rx_d, "rx_packets": rx_p,
                            "rx_rate": None, "tx_octets": tx_b, "tx_errors": tx_e, "tx_drop": tx_d,
                            "tx_packets": tx_p, "tx_rate": None})
    return {"state": _STATES.get(state, "pending"), "num_cpus": num_cpus, "cpu_details": cpus,
            "num_disks": len(disks), "disk_details": disk_details, "num_nics": len(nics),
            "nic_details": nic_details,
            "memory_details": {"maximum": max_kib // 1024, "used": used_kib // 1024}}


class DiagnosticsMixin:
    """Part of the libvirt driver (mixed into ``LibvirtDriver``)."""

    async def get_instance_diagnostics(self: LibvirtDriver, instance: dict[str, Any]) -> dict[str, Any]:
        counters = await self.host.call(lambda conn: read_diagnostics(self._domain(conn, instance)))
        return {**counters, "driver": "libvirt", "hypervisor": self.virt_type, "hypervisor_os": "linux",
                "uptime": _uptime(instance.get("launched_at")),
                "config_drive": bool(instance.get("config_drive"))}

    async def trigger_crash_dump(self: LibvirtDriver, instance: dict[str, Any]) -> None:
        """An NMI into the guest (``virsh inject-nmi``): its kernel panics or dumps as it is set up to."""
        def inject(conn: libvirt.virConnect) -> None:
            try:
                self._domain(conn, instance).injectNMI(0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:  # the event's "not supported" fault
                    raise NotImplementedError("the hypervisor cannot inject an NMI") from None
                raise

        await self.host.call(inject)
        LOG.info("NMI injected into instance %s", instance["uuid"])
