"""The host-side pieces of the libvirt driver's moves that need no libvirtd: where a peer's libvirtd is, the
instance's image from its system metadata, the inbox hand-over, and an overlay put on this host's own base
(real qemu-img on small files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stratus import conf as conf_mod
from stratus.image.backends.base import image_info, qemu_img

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")

from stratus.virt.libvirt import migration  # noqa: E402
from stratus.virt.libvirt.driver import LibvirtDriver  # noqa: E402
from stratus.virt.libvirt.host import peer_uri  # noqa: E402

UUID = "0b8e3c52-6a57-4a4e-8a8e-4d3f0b6a9c11"


def test_peer_uri_is_novas_template() -> None:
    assert peer_uri(None, "h2") == "qemu+tcp://h2/system"
    assert peer_uri("qemu+unix:///system?socket=/tmp/p/%s/run/libvirt-sock", "h2") == \
        "qemu+unix:///system?socket=/tmp/p/h2/run/libvirt-sock"
    assert peer_uri("qemu+tls://%s/system", "b.example") == "qemu+tls://b.example/system"


def test_image_meta_of_the_instance() -> None:
    instance = {"image_ref": "img-1", "system_metadata": {"image_kernel_id": "k", "image_os_command_line": "c",
                                                          "old_vm_state": "active"}}
    assert migration.image_meta_of(instance) == {"id": "img-1", "kernel_id": "k", "os_command_line": "c"}


def test_the_inbox_hands_over_every_file_that_came(tmp_path: Path) -> None:
    inbox, inst = tmp_path / "_inbox", tmp_path / UUID
    inbox.mkdir()
    for name in ("disk", "kernel", "console.log"):
        (inbox / f"{UUID}.{name}").write_text(name)
    (inbox / "other.disk").write_text("another move's")
    assert migration._take_from_inbox(str(inbox), UUID, str(inst)) == ["disk", "kernel", "console.log"]
    assert sorted(p.name for p in inst.iterdir()) == ["console.log", "disk", "kernel"]
    assert [p.name for p in inbox.iterdir()] == ["other.disk"]
    with pytest.raises(migration.ResizeError, match="did not arrive"):
        migration._take_from_inbox(str(inbox), UUID, str(inst))


async def test_an_overlay_from_another_host_is_put_on_this_hosts_base(tmp_path: Path) -> None:
    """The disk names the source's ``_base/swap_8``; here it is backed by this host's own, made for it."""
    source_base = tmp_path / "a" / "_base" / "swap_8"
    source_base.parent.mkdir(parents=True)
    source_base.touch()
    os.truncate(source_base, 8 * 1024**2)
    disk = tmp_path / "disk.swap"
    await qemu_img("create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(source_base), str(disk))
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path), "instances_path": str(tmp_path / "b")},
                                    "libvirt": {"virt_type": "qemu", "connection_uri": "test:///default"}})
    driver = LibvirtDriver(conf, "b")
    await driver._rebase_here({"uuid": UUID, "image_ref": "img-1"}, str(disk), await image_info(str(disk)))
    own = tmp_path / "b" / "_base" / "swap_8"
    assert (await image_info(str(disk)))["backing-filename"] == str(own) and own.stat().st_size == 8 * 1024**2

    unknown = tmp_path / "a" / "_base" / "something-else"
    unknown.write_bytes(b"\0" * 512)
    await qemu_img("rebase", "-q", "-u", "-f", "qcow2", "-F", "raw", "-b", str(unknown), str(disk))
    with pytest.raises(migration.ResizeError, match="cannot make"):
        await driver._rebase_here({"uuid": UUID, "image_ref": "img-1"}, str(disk), await image_info(str(disk)))


async def test_an_unprepared_destination_is_refused_before_the_guest_stops(tmp_path: Path) -> None:
    """On libvirt's test driver (in process): the destination has no inbox pool, so the move is refused and the
    guest (the test driver's running domain) never stopped."""
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "libvirt": {"virt_type": "qemu", "connection_uri": "test:///default",
                                                "live_migration_uri": "test:///default"}})
    driver = LibvirtDriver(conf, "a")
    conn = libvirt.open("test:///default")
    dom = conn.lookupByName("test")
    instance = {"uuid": dom.UUIDString(), "name": "test", "root_gb": 1}
    try:
        with pytest.raises(migration.ResizeError, match="has no storage pool stratus-inbox-b"):
            await driver.migrate_disk_and_power_off(instance, "b", {"root_gb": 1}, 5, 1)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        with pytest.raises(migration.ResizeError, match="cannot be reached"):
            driver.conf.set_override("live_migration_uri", "qemu+unix:///system?socket=/nonexistent", "libvirt")
            await driver.migrate_disk_and_power_off(instance, "b", {"root_gb": 1}, 5, 1)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    finally:
        driver.host.close()
        conn.close()


async def test_the_cache_manager_keeps_the_bases_of_kept_and_rescue_disks(tmp_path: Path) -> None:
    """No instance row of this host names the image of a ``<uuid>_resize`` kept for a revert, nor a rescue image:
    their bases stay because a disk under instances_path stands on them; a base nothing stands on goes."""
    from stratus.virt.libvirt import files

    base = tmp_path / "instances" / "_base"
    base.mkdir(parents=True)
    for name in ("kept-base", "rescue-base", "unused-base"):
        (base / name).write_bytes(b"\0" * 4096)
    kept, rescued = tmp_path / "instances" / f"{UUID}_resize", tmp_path / "instances" / "other-uuid"
    kept.mkdir()
    rescued.mkdir()
    await qemu_img("create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base / "kept-base"), str(kept / "disk"))
    await qemu_img("create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base / "rescue-base"),
                   str(rescued / "disk.rescue"))
    (rescued / "console.log").write_text("not a disk")
    assert files.backing_names(str(tmp_path / "instances")) == {"kept-base", "rescue-base"}

    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "libvirt": {"virt_type": "qemu", "connection_uri": "test:///default"},
                                    "image_cache": {"remove_unused_original_minimum_age_seconds": 0}})
    driver = LibvirtDriver(conf, "a")
    from stratus.image.cache import ImageCache

    driver.cache = ImageCache(str(base), images=None)  # type: ignore[arg-type]
    assert await driver.manage_image_cache([]) == ["unused-base"]
    assert sorted(p.name for p in base.iterdir()) == ["kept-base", "rescue-base"]


async def test_the_destination_makes_its_inbox_and_drops_old_litter(tmp_path: Path) -> None:
    """prep_resize on libvirt's test driver: the inbox pool runs on instances_path/_inbox; a file left there a day
    ago (an upload whose source died) goes, one of a move in flight stays."""
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "libvirt": {"virt_type": "qemu", "connection_uri": "test:///default"}})
    driver = LibvirtDriver(conf, "inbox-host")
    inbox = tmp_path / "instances" / "_inbox"
    inbox.mkdir(parents=True)
    old, fresh = inbox / "dead.disk", inbox / f"{UUID}.disk"
    old.write_text("left by a source that died")
    fresh.write_text("arriving")
    os.utime(old, (0, 0))
    try:
        await driver.prepare_migration_destination({"uuid": UUID}, {})
        await driver.prepare_migration_destination({"uuid": UUID}, {})  # again: the pool is there already
        pool = driver.host.get_connection().storagePoolLookupByName("stratus-inbox-inbox-host")
        assert pool.isActive() and f"<path>{inbox}</path>" in pool.XMLDesc(0)
        assert [p.name for p in inbox.iterdir()] == [fresh.name]
    finally:
        driver.host.close()
