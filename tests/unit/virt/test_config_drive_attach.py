"""Config drives at the drivers: the libvirt driver writes disk.config and attaches it as an IDE CD-ROM; the
fake driver records it (and writes the ISO only when asked); destroy removes it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from stratus import conf as conf_mod
from stratus.metadata import configdrive
from stratus.virt.driver import ConfigDrive
from stratus.virt.fake import FakeDriver

UUID = "6f1a2b1c-0d4e-4f5a-9b8c-7d6e5f4a3b2c"
DRIVE = ConfigDrive(files=(("openstack/latest/meta_data.json", b'{"uuid": "%s"}' % UUID.encode()),))
INSTANCE = {"uuid": UUID, "id": 1, "name": "instance-00000001", "vcpus": 1, "memory_mb": 64, "flavor": {}}


@pytest.mark.parametrize("machine, bus, dev", [(None, "ide", "hdd"), ("pc", "ide", "hdd"), ("q35", "sata", "sda")])
async def test_libvirt_attaches_a_readonly_cdrom(tmp_path: Path, machine: str | None, bus: str, dev: str) -> None:
    pytest.importorskip("libvirt", reason="libvirt-python is not installed")
    from stratus.virt.libvirt import config
    from stratus.virt.libvirt.driver import LibvirtDriver

    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "libvirt": {"virt_type": "qemu", "connection_uri": "test:///default"}})
    driver = LibvirtDriver(conf, "h")
    guest = config.GuestConfig(uuid=UUID, name="instance-00000001", virt_type="qemu", memory_mb=64, vcpus=1,
                               disks=[config.Disk(path="/i/disk", driver_format="qcow2", target_dev="vda")],
                               console_log="/i/console.log", machine_type=machine)
    await driver._create_config_drive(INSTANCE, guest, DRIVE)
    path = tmp_path / "instances" / UUID / "disk.config"
    assert configdrive.read_drive(str(path)) == ("config-2", dict(DRIVE.files))
    cdrom = [d for d in ET.fromstring(guest.to_xml()).iter("disk") if d.get("device") == "cdrom"]
    assert len(cdrom) == 1
    assert cdrom[0].find("source").get("file") == str(path)  # type: ignore[union-attr]
    assert cdrom[0].find("target").attrib == {"dev": dev, "bus": bus}  # type: ignore[union-attr]
    assert cdrom[0].find("driver").get("type") == "raw"  # type: ignore[union-attr]
    assert cdrom[0].find("readonly") is not None


@pytest.mark.parametrize("write", [False, True])
async def test_fake_records_and_writes_when_asked(tmp_path: Path, write: bool) -> None:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "fake_driver": {"write_config_drive": write}})
    driver = FakeDriver(conf, "h")
    await driver.spawn(INSTANCE, {}, network_info=[], config_drive=DRIVE)
    assert driver.config_drives[UUID] == DRIVE
    path = tmp_path / "instances" / UUID / "disk.config"
    assert path.exists() == write
    if write:
        assert configdrive.read_drive(str(path))[1] == dict(DRIVE.files)
    assert "config drive config-2: 1 files" in (await driver.get_console_output(INSTANCE)).decode()
    await driver.destroy(INSTANCE, network_info=[])
    assert UUID not in driver.config_drives and not path.exists()
