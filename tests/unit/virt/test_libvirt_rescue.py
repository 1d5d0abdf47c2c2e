"""The rescue guest keeps the NICs of the guest it rescues (its definition has no network info of its own)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")

from stratus.virt.libvirt import config as guest_config  # noqa: E402
from stratus.virt.libvirt.rescue import with_interfaces  # noqa: E402

ORIGINAL = """<domain type='qemu'><name>instance-1</name><devices>
  <disk type='file' device='disk'><source file='/i/disk'/><target dev='vda' bus='virtio'/></disk>
  <interface type='bridge'><mac address='fa:16:3e:00:00:01'/><source bridge='brq1'/><model type='virtio'/></interface>
  <interface type='bridge'><mac address='fa:16:3e:00:00:02'/><source bridge='brq2'/><model type='virtio'/></interface>
</devices></domain>"""


def test_the_rescue_definition_has_the_guests_interfaces() -> None:
    guest = guest_config.GuestConfig(
        uuid="u", name="instance-1", virt_type="qemu", memory_mb=64, vcpus=1, console_log="/i/console.log",
        disks=[guest_config.Disk(path="/i/disk.rescue", driver_format="qcow2", target_dev="vda"),
               guest_config.Disk(path="/i/disk", driver_format="qcow2", target_dev="vdb")])
    dom = ET.fromstring(with_interfaces(guest.to_xml(), ORIGINAL))
    macs = [nic.find("mac").get("address") for nic in dom.iter("interface")]  # type: ignore[union-attr]
    assert macs == ["fa:16:3e:00:00:01", "fa:16:3e:00:00:02"]
    assert [d.find("source").get("file") for d in dom.iter("disk")] == ["/i/disk.rescue", "/i/disk"]  # type: ignore[union-attr]
