"""The pure parts of the libvirt live migration: the destination's domain XML, the disks a block migration
copies, and Nova's data size and downtime steps. The migration itself runs on two real libvirtds in
tests/integration/test_libvirt_live_migration.py."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

from stratus.virt.libvirt import config
from stratus.virt.libvirt.live_migration import GiB, data_gb, dest_xml, downtime_steps, local_disks, on_this_machine

UUID = "6f1a2b1c-0d4e-4f5a-9b8c-7d6e5f4a3b2c"
SRC = f"/srv/a/instances/{UUID}"
DST = f"/srv/b/instances/{UUID}"


def _domain_xml(rbd: bool = False) -> str:
    root = config.Disk(path=f"{SRC}/disk", driver_format="qcow2", target_dev="vda")
    if rbd:
        root = config.Disk(path=f"vms/{UUID}_disk", driver_format="raw", target_dev="vda",
                           network=config.NetworkSource("rbd", f"vms/{UUID}_disk", (("127.0.0.1", "6789"),),
                                                        None, None))
    guest = config.GuestConfig(
        uuid=UUID, name="instance-00000001", virt_type="qemu", memory_mb=256, vcpus=1,
        disks=[root, config.Disk(path=f"{SRC}/disk.local", driver_format="qcow2", target_dev="vdb"),
               config.Disk(path=f"{SRC}/disk.config", driver_format="raw", target_dev="hdd", bus="ide",
                           device="cdrom", readonly=True)],
        console_log=f"{SRC}/console.log", host="compute-a", kernel=f"{SRC}/kernel", ramdisk=f"{SRC}/ramdisk",
        metadata={"display_name": "web", "flavor": {"name": "m1.tiny", "memory": 256}})
    xml = guest.to_xml()
    # libvirt's live XML shows the qcow2 backing chain, with the source's base
    dom = ET.fromstring(xml)
    chain = ET.SubElement(dom.find("devices/disk"), "backingStore", type="file")
    ET.SubElement(chain, "source", file="/srv/a/instances/_base/abc")
    return ET.tostring(dom, encoding="unicode")


def test_dest_xml_moves_every_path_and_the_owner() -> None:
    out = dest_xml(_domain_xml(), SRC, DST, "compute-b")
    assert SRC not in out and "/srv/a/" not in out  # the backing chain of the source's base is gone too
    dom = ET.fromstring(out)
    assert [d.find("source").get("file") for d in dom.iter("disk")] == [f"{DST}/disk", f"{DST}/disk.local",
                                                                         f"{DST}/disk.config"]
    assert dom.find("devices/disk/backingStore") is None
    assert dom.findtext("os/kernel") == f"{DST}/kernel" and dom.findtext("os/initrd") == f"{DST}/ramdisk"
    assert dom.find("devices/serial/log").get("file") == f"{DST}/console.log"
    assert dom.findtext(f"metadata/{{{config.NOVA_NS}}}instance/{{{config.NOVA_NS}}}host") == "compute-b"
    assert dom.findtext("uuid") == UUID


def test_dest_xml_leaves_other_paths() -> None:
    """A shared instance directory (the same path on both hosts) and an RBD disk are left as they are."""
    xml = _domain_xml(rbd=True)
    same = ET.fromstring(dest_xml(xml, SRC, SRC, "compute-b"))
    assert same.find("devices/serial/log").get("file") == f"{SRC}/console.log"
    rbd = same.find("devices/disk/source")
    assert rbd.get("protocol") == "rbd" and rbd.get("name") == f"vms/{UUID}_disk"
    # a directory whose name merely starts like the source's is not the source's
    other = f"{SRC}-other/disk"
    assert dest_xml(xml.replace(f"{SRC}/disk.local", other), SRC, DST, "b").count(other) == 1


def test_local_disks_are_the_writable_files() -> None:
    assert local_disks(_domain_xml()) == [("vda", f"{SRC}/disk"), ("vdb", f"{SRC}/disk.local")]
    assert local_disks(_domain_xml(rbd=True)) == [("vdb", f"{SRC}/disk.local")]


def test_data_gb_as_nova() -> None:
    assert data_gb(256, []) == 2.0  # RAM counts at least 2 GiB
    assert data_gb(4096, [GiB // 2, 3 * GiB]) == 4 + 2 + 3  # so does each disk


def test_downtime_steps_as_nova() -> None:
    steps = list(downtime_steps(500, 10, 75, 2.0))
    assert len(steps) == 11
    assert steps[0] == (0, 50) and steps[-1] == (1500, 500)  # 75 s per GiB apart, up to the full downtime
    assert [t for t, _ in steps] == sorted(t for t, _ in steps)
    assert all(a[1] < b[1] for a, b in itertools.pairwise(steps))


def test_destinations_on_this_machine() -> None:
    """A destination libvirtd reached over a unix socket is on this machine: QEMU's stream goes to loopback."""
    assert on_this_machine("qemu+unix:///system?socket=/tmp/lvp/lvb/run/libvirt-sock")
    assert on_this_machine("qemu:///system")
    assert not on_this_machine("qemu+tcp://compute-b/system")
    assert not on_this_machine("qemu+ssh://root@10.0.0.2/system")
