"""The pure parts of the libvirt live migration: the destination's domain XML, the disks a block migration
copies, and Nova's data size and downtime steps. The migration itself runs on two real libvirtds in
tests/integration/test_libvirt_live_migration.py."""

from __future__ import annotations

import asyncio
import itertools
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from stratus import conf as conf_mod
from stratus.virt.driver import LiveMigrationControl
from stratus.virt.libvirt import config, live_migration
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


# --- the monitor, on libvirt's test driver (its domain "test" runs; no migration job: the copy is a future that
# ends when the test says) --------------------------------------------------------------------------------------
libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")
from stratus.virt.libvirt.driver import LibvirtDriver  # noqa: E402


def _driver(tmp_path: Path, **libvirt_opts: object) -> LibvirtDriver:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "libvirt": {"virt_type": "qemu", "connection_uri": "test:///default",
                                                **libvirt_opts}})
    return LibvirtDriver(conf, "a")


async def _watch(driver: LibvirtDriver, control: LiveMigrationControl, seconds: float) -> tuple[Any, int]:
    """The monitor over a copy that runs for ``seconds``; (its outcome, the domain's libvirt state after)."""
    dom = driver.host.get_connection().lookupByName("test")
    if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:  # test:///default's state is the process's: one test paused it
        dom.resume()
    copy: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    watching = asyncio.ensure_future(driver._monitor({"uuid": dom.UUIDString()}, copy, control, 2.0, False,
                                                     "test:///default"))
    await asyncio.sleep(seconds)
    copy.set_result(None)
    return await watching, int(dom.state()[0])


async def test_the_completion_timeout_aborts(tmp_path: Path) -> None:
    """1 s per GiB of 2 GiB: past 2 s the timeout's action, abort, is taken (the guest left running)."""
    outcome, state = await _watch(_driver(tmp_path, live_migration_completion_timeout=1), LiveMigrationControl(),
                                  3.0)
    assert outcome.timed_out and outcome.aborted and not outcome.paused
    assert state == libvirt.VIR_DOMAIN_RUNNING


async def test_the_completion_timeout_forces_completion(tmp_path: Path) -> None:
    outcome, state = await _watch(_driver(tmp_path, live_migration_completion_timeout=1,
                                          live_migration_timeout_action="force_complete"), LiveMigrationControl(), 3.0)
    assert outcome.timed_out and outcome.forced and outcome.paused and not outcome.aborted
    assert state == libvirt.VIR_DOMAIN_PAUSED  # paused for the last copy


async def test_no_timeout_before_its_time_and_none_at_zero(tmp_path: Path) -> None:
    for timeout in (800, 0):
        outcome, state = await _watch(_driver(tmp_path, live_migration_completion_timeout=timeout),
                                      LiveMigrationControl(), 1.2)
        assert not (outcome.timed_out or outcome.aborted or outcome.forced)
        assert state == libvirt.VIR_DOMAIN_RUNNING


async def test_the_apis_abort_and_force_complete_reach_the_domain(tmp_path: Path) -> None:
    control = LiveMigrationControl()
    control.force_complete.set()
    outcome, state = await _watch(_driver(tmp_path), control, 1.2)
    assert outcome.forced and outcome.paused and state == libvirt.VIR_DOMAIN_PAUSED
    control = LiveMigrationControl()
    control.abort.set()
    outcome, _ = await _watch(_driver(tmp_path), control, 1.2)
    assert outcome.aborted and not outcome.timed_out


# --- a migration call that never returns: the source decides from where libvirt shows the guest ----------------
def _destination(tmp_path: Path, uuid: str) -> str:
    """A libvirt test driver of its own (the destination) that runs a domain with ``uuid``; its URI."""
    node = tmp_path / "dest.xml"
    node.write_text(f"<node><domain type='test'><name>arrived</name><uuid>{uuid}</uuid><memory>8192</memory>"
                    f"<vcpu>1</vcpu><os><type>hvm</type></os></domain></node>")
    return f"test://{node}"


async def _stuck(driver: LibvirtDriver, control: LiveMigrationControl, dconnuri: str) -> Any:
    """The monitor over a copy that never ends; its outcome (it must give up on the copy by itself)."""
    dom = driver.host.get_connection().lookupByName("test")
    copy: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    return await asyncio.wait_for(driver._monitor({"uuid": dom.UUIDString()}, copy, control, 2.0, False, dconnuri),
                                  timeout=30)


async def test_an_aborted_call_that_never_returns_with_the_guest_still_here_is_aborted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_migration, "STUCK_AFTER", 1.0)
    control = LiveMigrationControl()
    control.abort.set()
    driver = _driver(tmp_path)
    dom = driver.host.get_connection().lookupByName("test")
    if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
        dom.resume()
    outcome = await _stuck(driver, control, _destination(tmp_path, "00000000-0000-0000-0000-00000000beef"))
    assert outcome.aborted and outcome.stuck is False  # the guest runs here, not there: the move did not happen


async def test_a_call_that_never_returns_after_the_guest_left_is_a_completed_move(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The abort came too late: the guest no longer runs here and runs on the destination, so the move is done
    (as Nova, whose failed abort leaves the migration to complete)."""
    monkeypatch.setattr(live_migration, "STUCK_AFTER", 1.0)
    driver = _driver(tmp_path)
    dom = driver.host.get_connection().lookupByName("test")
    control = LiveMigrationControl()
    control.abort.set()
    dom.destroy()
    try:
        outcome = await _stuck(driver, control, _destination(tmp_path, dom.UUIDString()))
    finally:
        dom.create()
    assert outcome.aborted and outcome.stuck is True
