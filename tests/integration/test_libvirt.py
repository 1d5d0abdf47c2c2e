"""Real guests: the libvirt driver booting the test guest under QEMU, driven through the REST API.

Every check reads libvirt's own view of the domain (state, XML, managed save) next to what the API says, and
the guest's serial console, where the test guest prints its markers: ``STRATUS-DISK`` once its root disk is
mounted, ``STRATUS-GUEST-BOOTED`` once it listens for the ACPI power button.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from tests.functional.helpers import boot, wait_for_status, wait_gone
from tests.integration.conftest import SCRIPTS, LibvirtDaemon
from tests.integration.guest import BOOTED, GuestImages, console, upload_guest, wait

pytestmark = pytest.mark.integration
libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (scripts/libvirt.sh install .venv)")


def _conf(uri: str) -> str:
    return f"""
        [DEFAULT]
        compute_driver = libvirt.LibvirtDriver
        shutdown_timeout = 20
        sync_power_state_interval = 2
        update_resources_interval = 1
        running_deleted_instance_poll_interval = 2
        reserved_host_memory_mb = 256
        [libvirt]
        connection_uri = {uri}
        virt_type = qemu
        """


@pytest.fixture(scope="module")
def lv_cloud(libvirt_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    cloud = start_cloud(tmp_path_factory.mktemp("lv-cloud"), _conf(libvirt_uri))
    try:
        yield cloud
    finally:
        stop_cloud(cloud)
        if os.environ.get("STRATUS_SHOW_LOG"):
            print(cloud.log())


@pytest.fixture(scope="module")
def api(lv_cloud: Cloud) -> Iterator[httpx.Client]:
    with lv_cloud.client(version="2.64") as client:
        yield client


@pytest.fixture(scope="module")
def images(lv_cloud: Cloud, test_guest: Path) -> GuestImages:
    with lv_cloud.image_client() as client:
        return upload_guest(client, test_guest)


@pytest.fixture(scope="module")
def flavor(api: httpx.Client) -> str:
    resp = api.post("/flavors", json={"flavor": {"name": "guest.tiny", "ram": 256, "vcpus": 1, "disk": 1}})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["flavor"]["id"])


@pytest.fixture(scope="module")
def conn(libvirt_uri: str) -> Iterator[Any]:
    c = libvirt.open(libvirt_uri)
    yield c
    c.close()




def _markers(api: httpx.Client, server_id: str) -> int:
    return console(api, server_id).count(BOOTED)


def _state(conn: Any, server_id: str) -> int:
    return int(conn.lookupByUUIDString(server_id).state()[0])


def _boot_guest(api: httpx.Client, images: GuestImages, flavor: str, **extra: Any) -> str:
    resp = boot(api, images.disk_id, flavor=flavor, networks="none", **extra)
    assert resp.status_code == 202, resp.text
    server_id = str(resp.json()["server"]["id"])
    server = wait_for_status(api, server_id, {"ACTIVE", "ERROR"}, timeout=120)
    assert server["status"] == "ACTIVE", server
    wait("the boot marker", lambda: _markers(api, server_id) >= 1)
    return server_id


def _action(api: httpx.Client, server_id: str, body: dict[str, Any]) -> None:
    resp = api.post(f"/servers/{server_id}/action", json=body)
    assert resp.status_code == 202, resp.text


def test_boot_to_console_marker(lv_cloud: Cloud, api: httpx.Client, images: GuestImages, flavor: str,
                                conn: Any) -> None:
    sdk = lv_cloud.sdk()
    server = sdk.compute.create_server(name="lv-boot", image_id=images.disk_id, flavor_id=flavor,
                                        networks="none")
    server = sdk.compute.wait_for_server(server, status="ACTIVE", wait=120)
    assert server.power_state == 1 and server.vm_state == "active"
    output = wait("the boot marker", lambda: (o := sdk.compute.get_server_console_output(server)["output"])
                   and BOOTED in o and o)
    assert "STRATUS-DISK: stratus-test-disk" in output  # the root disk from the image is attached and readable
    tail = sdk.compute.get_server_console_output(server, length=3)["output"]
    assert 0 < len(tail.splitlines()) <= 3

    # libvirt's view: a running domain on a qcow2 overlay backed by the host's cached base image
    dom = conn.lookupByUUIDString(server.id)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    xml = dom.XMLDesc(0)
    assert "<type arch=\"x86_64\"" in xml.replace("'", '"') and "type=\"qemu\"" in xml.replace("'", '"')
    disk = lv_cloud.state_path / "instances" / server.id / "disk"
    assert str(disk) in xml
    info = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(disk)], capture_output=True, text=True,
                          check=True).stdout
    assert '"format": "qcow2"' in info and "_base" in info

    # the host's real resources are what os-hypervisors reports
    hyper = api.get("/os-hypervisors/detail").json()["hypervisors"][0]
    assert hyper["hypervisor_type"] == "QEMU" and hyper["vcpus"] == os.cpu_count()
    assert hyper["running_vms"] >= 1

    sdk.compute.delete_server(server)
    wait_gone(api, server.id, timeout=60)
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByUUIDString(server.id)
    assert not (lv_cloud.state_path / "instances" / server.id).exists()  # disk and console log gone


def test_ephemeral_and_swap_disks(lv_cloud: Cloud, api: httpx.Client, images: GuestImages, conn: Any) -> None:
    """A flavor's ephemeral and swap become vdb and vdc, overlays on bases formatted once per host."""
    resp = api.post("/flavors", json={"flavor": {"name": "guest.eph", "ram": 256, "vcpus": 1, "disk": 1,
                                                 "OS-FLV-EXT-DATA:ephemeral": 1, "swap": 64}})
    assert resp.status_code == 200, resp.text
    server_id = _boot_guest(api, images, str(resp.json()["flavor"]["id"]))
    xml = conn.lookupByUUIDString(server_id).XMLDesc(0).replace("'", '"')
    inst = lv_cloud.state_path / "instances" / server_id
    for name, dev in (("disk", "vda"), ("disk.local", "vdb"), ("disk.swap", "vdc")):
        assert f'<source file="{inst / name}"' in xml and f'<target dev="{dev}" bus="virtio"/>' in xml
    assert sorted(p.name for p in (lv_cloud.state_path / "instances" / "_base").iterdir()
                  if not p.name[0].isdigit() and len(p.name) < 40) == ["ephemeral_1_ext4", "swap_64"]
    assert api.delete(f"/servers/{server_id}").status_code == 204
    wait_gone(api, server_id, timeout=60)


def test_lifecycle(lv_cloud: Cloud, api: httpx.Client, images: GuestImages, flavor: str, conn: Any) -> None:
    server_id = _boot_guest(api, images, flavor)

    # diagnostics (2.48's form) are the domain's own counters; a crash dump is an NMI the guest's kernel reports
    with lv_cloud.client(version="2.48") as v248:
        diag = v248.get(f"/servers/{server_id}/diagnostics").json()
    assert diag["state"] == "running" and diag["driver"] == "libvirt" and diag["hypervisor"] == "qemu", diag
    assert diag["num_cpus"] == 1 == len(diag["cpu_details"]) and diag["cpu_details"][0]["time"] > 0
    assert diag["memory_details"]["maximum"] == 256 and diag["num_disks"] >= 1
    assert diag["disk_details"][0]["read_bytes"] > 0  # the guest read its root disk while booting
    assert "NMI received" not in console(api, server_id)
    _action(api, server_id, {"trigger_crash_dump": None})
    wait("the guest's NMI message", lambda: "NMI received" in console(api, server_id))

    _action(api, server_id, {"os-stop": None})  # ACPI shutdown: the guest's acpid powers it off
    server = wait_for_status(api, server_id, {"SHUTOFF", "ERROR"}, timeout=60)
    assert server["status"] == "SHUTOFF" and server["OS-EXT-STS:power_state"] == 4
    assert _state(conn, server_id) == libvirt.VIR_DOMAIN_SHUTOFF

    _action(api, server_id, {"os-start": None})
    wait_for_status(api, server_id, {"ACTIVE"}, timeout=60)
    assert _state(conn, server_id) == libvirt.VIR_DOMAIN_RUNNING
    wait("a second boot marker", lambda: _markers(api, server_id) >= 2)  # the console log is appended to

    _action(api, server_id, {"reboot": {"type": "SOFT"}})
    wait("the soft reboot", lambda: _markers(api, server_id) >= 3)
    assert wait_for_status(api, server_id, {"ACTIVE"}, timeout=60)["OS-EXT-STS:task_state"] is None

    _action(api, server_id, {"reboot": {"type": "HARD"}})
    wait("the hard reboot", lambda: _markers(api, server_id) >= 4)
    wait_for_status(api, server_id, {"ACTIVE"}, timeout=60)

    _action(api, server_id, {"pause": None})
    server = wait_for_status(api, server_id, {"PAUSED"}, timeout=60)
    assert server["OS-EXT-STS:power_state"] == 3 and _state(conn, server_id) == libvirt.VIR_DOMAIN_PAUSED
    _action(api, server_id, {"unpause": None})
    wait_for_status(api, server_id, {"ACTIVE"}, timeout=60)
    assert _state(conn, server_id) == libvirt.VIR_DOMAIN_RUNNING

    _action(api, server_id, {"suspend": None})  # memory saved to disk: the domain is off, with a managed save
    server = wait_for_status(api, server_id, {"SUSPENDED"}, timeout=60)
    dom = conn.lookupByUUIDString(server_id)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF and dom.hasManagedSaveImage()
    markers = _markers(api, server_id)
    _action(api, server_id, {"resume": None})
    wait_for_status(api, server_id, {"ACTIVE"}, timeout=60)
    assert _state(conn, server_id) == libvirt.VIR_DOMAIN_RUNNING and not dom.hasManagedSaveImage()
    assert _markers(api, server_id) == markers  # restored, not rebooted

    actions = [a["action"] for a in api.get(f"/servers/{server_id}/os-instance-actions").json()["instanceActions"]]
    assert set(actions) >= {"create", "stop", "start", "reboot", "pause", "unpause", "suspend", "resume"}

    assert api.delete(f"/servers/{server_id}").status_code == 204
    wait_gone(api, server_id, timeout=60)
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByUUIDString(server_id)


def test_snapshot_boots_as_a_new_server(lv_cloud: Cloud, images: GuestImages, flavor: str) -> None:
    """createImage copies the running guest's disk (base folded in) into a qcow2 image that inherits the kernel,
    ramdisk and command line: a server booted from it reaches the marker and reads the same disk."""
    with lv_cloud.client(version="2.45") as api:
        server_id = _boot_guest(api, images, flavor)
        resp = api.post(f"/servers/{server_id}/action", json={"createImage": {"name": "guest-snap"}})
        assert resp.status_code == 202, resp.text
        image_id = resp.json()["image_id"]
        with lv_cloud.image_client() as client:
            image = wait("the snapshot", lambda: (i := client.get(f"/v2/images/{image_id}").json())
                          and i["status"] == "active" and i, timeout=120)
        assert image["disk_format"] == "qcow2" and image["kernel_id"] == images.kernel_id
        server = wait_for_status(api, server_id, {"ACTIVE"}, timeout=60)
        assert server["OS-EXT-STS:task_state"] is None and server["OS-EXT-STS:power_state"] == 1
    with lv_cloud.client(version="2.64") as api:
        copy = _boot_guest(api, GuestImages(images.kernel_id, images.ramdisk_id, image_id, b""), flavor)
        assert "STRATUS-DISK: stratus-test-disk" in console(api, copy)
        for sid in (server_id, copy):
            assert api.delete(f"/servers/{sid}").status_code == 204
            wait_gone(api, sid, timeout=60)


def test_guest_that_powers_itself_off_ends_stopped(api: httpx.Client, images: GuestImages, flavor: str,
                                                   conn: Any) -> None:
    server_id = _boot_guest(api, images, flavor)
    conn.lookupByUUIDString(server_id).shutdown()  # the guest's own poweroff, as far as the cloud can tell
    server = wait_for_status(api, server_id, {"SHUTOFF"}, timeout=60)
    assert server["OS-EXT-STS:vm_state"] == "stopped" and server["OS-EXT-STS:power_state"] == 4

    # a domain removed behind the cloud's back is noticed: power state NOSTATE
    dom = conn.lookupByUUIDString(server_id)
    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    wait("the vanished domain", lambda: api.get(f"/servers/{server_id}").json()["server"][
        "OS-EXT-STS:power_state"] == 0, timeout=30)
    assert api.delete(f"/servers/{server_id}").status_code == 204
    wait_gone(api, server_id, timeout=60)


def test_spawn_failure_is_rescheduled_then_errors_cleanly(api: httpx.Client, images: GuestImages, flavor: str,
                                                          conn: Any, lv_cloud: Cloud) -> None:
    """libvirt refusing the domain (an unknown machine type) is a failure another host could fix: the single
    host's attempt fails, nothing is left behind, and the server ends in ERROR with the reason."""
    with lv_cloud.image_client() as client:
        bad = client.post("/v2/images", json={"name": "bad-machine", "disk_format": "qcow2",
                                                "container_format": "bare", "hw_machine_type": "no-such-machine",
                                                "kernel_id": images.kernel_id, "ramdisk_id": images.ramdisk_id})
        assert bad.status_code == 201, bad.text
        image_id = bad.json()["id"]
        put = client.put(f"/v2/images/{image_id}/file", content=images.disk_bytes,
                         headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 204, put.text
    resp = boot(api, image_id, flavor=flavor, networks="none")
    server_id = resp.json()["server"]["id"]
    server = wait_for_status(api, server_id, {"ERROR"}, timeout=120)
    assert "no-such-machine" in server["fault"]["message"] or "retries" in server["fault"]["message"]
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByUUIDString(server_id)
    assert not (lv_cloud.state_path / "instances" / server_id).exists()
    hyper = api.get("/os-hypervisors/detail").json()["hypervisors"][0]
    assert hyper["running_vms"] == 0 and hyper["vcpus_used"] == 0  # its allocation is gone
    assert api.delete(f"/servers/{server_id}").status_code == 204
    wait_gone(api, server_id, timeout=60)


def test_corrupt_image_data_is_rescheduled_and_never_cached(api: httpx.Client, images: GuestImages, flavor: str,
                                                            lv_cloud: Cloud) -> None:
    """Image data that does not match the image's os_hash_value fails the build in a way another host could
    fix (rescheduled: here, with one host, the retries run out) and leaves no base in the host's cache."""
    with lv_cloud.image_client() as client:
        image_id = _upload_disk_copy(client, images, "corrupt-me")
    (data,) = (lv_cloud.state_path / "images").glob(f"{image_id}.*")
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte, same size
    data.write_bytes(bytes(blob))
    resp = boot(api, image_id, flavor=flavor, networks="none")
    server_id = resp.json()["server"]["id"]
    server = wait_for_status(api, server_id, {"ERROR"}, timeout=120)
    message = server["fault"]["message"]
    # rescheduled (a failure another host could fix); with one host the retries run out at once
    assert message.startswith("Exceeded maximum number of retries"), message
    base = lv_cloud.state_path / "instances" / "_base"
    assert not [p for p in base.iterdir() if p.name.startswith(hashlib.sha1(image_id.encode()).hexdigest())]
    hyper = api.get("/os-hypervisors/detail").json()["hypervisors"][0]
    assert hyper["vcpus_used"] == 0
    assert api.delete(f"/servers/{server_id}").status_code == 204
    wait_gone(api, server_id, timeout=60)


def _upload_disk_copy(client: httpx.Client, images: GuestImages, name: str) -> str:
    created = client.post("/v2/images", json={"name": name, "disk_format": "qcow2", "container_format": "bare",
                                              "kernel_id": images.kernel_id, "ramdisk_id": images.ramdisk_id})
    assert created.status_code == 201, created.text
    image_id = str(created.json()["id"])
    put = client.put(f"/v2/images/{image_id}/file", content=images.disk_bytes,
                     headers={"Content-Type": "application/octet-stream"})
    assert put.status_code == 204, put.text
    return image_id


def test_config_drive_reaches_the_guest(lv_cloud: Cloud, api: httpx.Client, images: GuestImages, flavor: str,
                                        conn: Any) -> None:
    """``--config-drive True`` with a key pair and user data: the guest finds the ``config-2`` CD-ROM and prints
    its own uuid, hostname, key fingerprint and user data line from it; the drive goes with the instance."""
    key = api.post("/os-keypairs", json={"keypair": {"name": f"lv-key-{uuid.uuid4().hex[:6]}"}})
    assert key.status_code == 201, key.text
    keypair = key.json()["keypair"]
    line = f"stratus-user-data-{uuid.uuid4().hex[:8]}"
    server_id = _boot_guest(api, images, flavor, name="lv-md", config_drive=True, key_name=keypair["name"],
                            user_data=base64.b64encode(f"{line}\nsecond line\n".encode()).decode())
    output = console(api, server_id)
    assert f"STRATUS-METADATA: {server_id}" in output
    assert "STRATUS-HOSTNAME: lv-md.novalocal" in output
    assert f"STRATUS-KEY: {keypair['fingerprint']}" in output
    assert f"STRATUS-USERDATA: {line}" in output
    assert api.get(f"/servers/{server_id}").json()["server"]["config_drive"] == "True"
    xml = conn.lookupByUUIDString(server_id).XMLDesc(0).replace("'", '"')
    drive = lv_cloud.state_path / "instances" / server_id / "disk.config"
    assert f'<source file="{drive}"' in xml and '<target dev="hdd" bus="ide"/>' in xml
    assert api.delete(f"/servers/{server_id}").status_code == 204
    wait_gone(api, server_id, timeout=60)
    assert not drive.exists()


def test_no_config_drive_by_default(api: httpx.Client, images: GuestImages, flavor: str) -> None:
    server_id = _boot_guest(api, images, flavor)
    assert "STRATUS-METADATA: none" in console(api, server_id)
    assert api.delete(f"/servers/{server_id}").status_code == 204
    wait_gone(api, server_id, timeout=60)


def test_compute_restart_reconciles(libvirt_uri: str, images: GuestImages, flavor: str, conn: Any,
                                    lv_cloud: Cloud) -> None:
    """Restarting the compute agent double-starts nothing (the running guest keeps its qemu) and orphans
    nothing (a domain of this host whose instance the database does not know is reaped)."""
    with lv_cloud.client(version="2.64") as api:
        server_id = _boot_guest(api, images, flavor)
    dom_id = conn.lookupByUUIDString(server_id).ID()
    orphan_uuid = str(uuid.uuid4())
    template = conn.lookupByUUIDString(server_id).XMLDesc(0)
    orphan_xml = (template.replace(server_id, orphan_uuid)
                  .replace(conn.lookupByUUIDString(server_id).name(), "orphan-guest"))
    # the orphan shares nothing writable with the real guest: give it its own overlay
    disk = str(lv_cloud.state_path / "instances" / server_id / "disk")
    orphan_dir = lv_cloud.state_path / "instances" / orphan_uuid
    orphan_dir.mkdir(parents=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", disk,
                    str(orphan_dir / "disk")], check=True)
    orphan_xml = orphan_xml.replace(f"{server_id}/", f"{orphan_uuid}/")
    conn.defineXML(orphan_xml)

    stop_cloud(lv_cloud)
    restarted = start_cloud(lv_cloud.config_file.parent, _conf(libvirt_uri))
    try:
        with restarted.client(version="2.64") as api:
            server = wait_for_status(api, server_id, {"ACTIVE"}, timeout=30)
            assert server["OS-EXT-STS:power_state"] == 1
            assert conn.lookupByUUIDString(server_id).ID() == dom_id  # the same qemu process: not restarted

            def orphan_gone() -> bool:
                try:
                    conn.lookupByUUIDString(orphan_uuid)
                except libvirt.libvirtError:
                    return True
                return False

            wait("the orphan domain to be reaped", orphan_gone, timeout=30)
            assert api.delete(f"/servers/{server_id}").status_code == 204
            wait_gone(api, server_id, timeout=60)
    finally:
        lv_cloud.proc = restarted.proc  # the module fixture stops whichever process runs now
        lv_cloud.compute_url = restarted.compute_url
        lv_cloud.image_url = restarted.image_url


def test_libvirt_down_disables_the_service_until_it_is_back(libvirt_daemon: LibvirtDaemon, lv_cloud: Cloud
                                                            ) -> None:
    """libvirtd going away is a clear state (the compute service disabled with the reason), not a crash loop;
    the service comes back by itself once libvirtd does."""
    libvirt_dir = str(libvirt_daemon.directory)
    with lv_cloud.client(version="2.64") as api:
        def compute_service() -> dict[str, Any]:
            services = api.get("/os-services", params={"binary": "nova-compute"}).json()["services"]
            return dict(services[0])

        assert compute_service()["status"] == "enabled"
        subprocess.run([str(SCRIPTS / "libvirt.sh"), "stop", libvirt_dir], check=True, timeout=120)
        try:
            svc = wait("the service to disable itself",
                        lambda: (s := compute_service())["status"] == "disabled" and s, timeout=60)
            assert "libvirt" in (svc["disabled_reason"] or "").lower()
            assert lv_cloud.proc.poll() is None  # still running
        finally:
            subprocess.run([str(SCRIPTS / "libvirt.sh"), "start", libvirt_dir], check=True, timeout=300,
                           capture_output=True)
        wait("the service to enable itself again", lambda: compute_service()["status"] == "enabled", timeout=60)

