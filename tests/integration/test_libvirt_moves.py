"""Moves of a real guest between two libvirt compute hosts on this machine (tests/integration/libvirt_pair.py: a
libvirtd each, with its own host UUID and its own instances_path; no shared file system): resize with a bigger
disk, revert and confirm, a refused and a failed move, cold migration of a stopped server, rescue with a rescue
image, shelve and unshelve on the other host, and evacuation from a host whose service is forced down.

One test guest (TCG) makes the whole journey, test after test, in file order, so that the module boots it once:
each test starts from where the one before left it. After every move the checks read libvirt on both hosts (the
domain runs on the destination and is gone from the source), the guest's serial console (through
os-getConsoleOutput: a new boot marker, and what it mounted as its root disk), the disk files, and the
allocations straight from the database (no leak on either host, the migration holding the source during a
resize).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from stratus.network.dataplane import names as netns_names
from stratus.network.dataplane import netns as nsutil
from tests.functional.helpers import boot, wait_for_status, wait_gone
from tests.integration.guest import BOOTED, CMDLINE, GuestImages, upload_disk, upload_guest
from tests.integration.guest import wait as wait_for
from tests.integration.libvirt_pair import LibvirtPair

pytestmark = pytest.mark.integration
libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (scripts/libvirt.sh install .venv)")
VERSION = "2.56"
GiB = 1024**3
SMALL = {"name": "moves.small", "ram": 256, "vcpus": 1, "disk": 1}
BIG = {"name": "moves.big", "ram": 320, "vcpus": 1, "disk": 2}


@dataclasses.dataclass
class Journey:
    """The travelling guest and what the tests know of it."""

    pair: LibvirtPair
    api: httpx.Client
    images: GuestImages
    rescue_image: str
    unbootable_rescue_image: str  # its machine type is one QEMU does not have
    flavors: dict[str, str]  # name → id
    server_id: str = ""

    # --- reading the world -------------------------------------------------------------------------------------
    def server(self) -> dict[str, Any]:
        resp = self.api.get(f"/servers/{self.server_id}")
        assert resp.status_code == 200, resp.text
        return dict(resp.json()["server"])

    def host(self) -> str:
        return str(self.server()["OS-EXT-SRV-ATTR:host"])

    def console(self) -> str:
        resp = self.api.post(f"/servers/{self.server_id}/action", json={"os-getConsoleOutput": {}})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["output"])

    def wait_booted(self, markers: int) -> str:
        """The console once it has ``markers`` boot markers; returns it. The guest read its own uuid from its
        config drive in that boot: the drive is attached wherever it runs."""
        console = str(wait_for(f"boot marker {markers}",
                               lambda: (c := self.console()).count(BOOTED) >= markers and c, timeout=180))
        assert console.rsplit("STRATUS-METADATA: ", 1)[1].startswith(self.server_id), console[-2000:]
        return console

    def allocations(self) -> dict[str, dict[str, dict[str, int]]]:
        """consumer → provider (host) → resource class → used, for every allocation of the cloud."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for consumer, provider, rc, used in self.pair.cluster.sql(
                "select a.consumer_id, p.name, a.resource_class, a.used from allocations a "
                "join resource_providers p on p.id = a.resource_provider_id"):
            out.setdefault(consumer, {}).setdefault(provider, {})[rc] = used
        return out

    def migration(self) -> dict[str, Any]:
        """The server's latest migration record."""
        rows = self.pair.cluster.sql("select uuid, status, migration_type, source_compute, dest_compute "
                                     "from migrations where instance_uuid = $1 order by id desc limit 1",
                                     self.server_id)
        uuid, status, kind, source, dest = rows[0]
        return {"uuid": uuid, "status": status, "type": kind, "source": source, "dest": dest}

    # --- acting ------------------------------------------------------------------------------------------------
    def action(self, body: dict[str, Any], status: int = 202) -> httpx.Response:
        resp = self.api.post(f"/servers/{self.server_id}/action", json=body)
        assert resp.status_code == status, resp.text
        return resp

    def settle(self, statuses: set[str], timeout: float = 180) -> dict[str, Any]:
        server = wait_for_status(self.api, self.server_id, statuses | {"ERROR"}, timeout=timeout)
        assert server["status"] in statuses, server
        wait_for("no task", lambda: self.server()["OS-EXT-STS:task_state"] is None, timeout=60)
        return self.server()

    def service(self, host: str) -> dict[str, Any]:
        found = self.api.get("/os-services", params={"binary": "nova-compute", "host": host}).json()["services"]
        return dict(found[0])

    def set_service(self, host: str, body: dict[str, Any]) -> None:
        resp = self.api.put(f"/os-services/{self.service(host)['id']}", json=body)
        assert resp.status_code == 200, resp.text


def resources(flavor: dict[str, Any]) -> dict[str, int]:
    return {"VCPU": flavor["vcpus"], "MEMORY_MB": flavor["ram"], "DISK_GB": flavor["disk"]}


def disk_info(path: Path) -> dict[str, Any]:
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return dict(orjson.loads(out))


def disk_sources(xml: ET.Element) -> dict[str, str]:
    """target dev → source file of the domain's disks."""
    out = {}
    for disk in xml.iter("disk"):
        target, source = disk.find("target"), disk.find("source")
        if target is not None and source is not None:
            out[target.get("dev", "")] = source.get("file", "")
    return out


def _rescue_disk(tmp: Path) -> bytes:
    """A root disk like the test guest's that says ``stratus-rescue-disk`` (qcow2)."""
    content = tmp / "rescue-root"
    content.mkdir()
    (content / "stratus-disk").write_text("stratus-rescue-disk")
    raw, qcow2 = tmp / "rescue.raw", tmp / "rescue.qcow2"
    subprocess.run(["truncate", "-s", "16M", str(raw)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "rescue", "-d", str(content), str(raw)], check=True)
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True)
    return qcow2.read_bytes()


@pytest.fixture(scope="module")
def journey(libvirt_pair: LibvirtPair, test_guest: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Journey]:
    pair = libvirt_pair
    images = pair.upload_test_guest(test_guest)
    with pair.image_client() as client:
        rescue_disk = _rescue_disk(tmp_path_factory.mktemp("rescue"))
        rescue_image = upload_disk(client, images, rescue_disk, "moves-rescue", disk_format="qcow2")
        created = client.post("/v2/images", json={
            "name": "moves-rescue-unbootable", "disk_format": "qcow2", "container_format": "bare",
            "visibility": "public", "kernel_id": images.kernel_id, "ramdisk_id": images.ramdisk_id,
            "os_command_line": CMDLINE, "hw_machine_type": "stratus-no-such-machine"})
        assert created.status_code == 201, created.text
        unbootable = str(created.json()["id"])
        put = client.put(f"/v2/images/{unbootable}/file", content=rescue_disk,
                         headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 204, put.text
    with pair.client(VERSION) as api:
        flavors = {}
        for spec in (SMALL, BIG):
            resp = api.post("/flavors", json={"flavor": spec})
            assert resp.status_code == 200, resp.text
            flavors[spec["name"]] = str(resp.json()["flavor"]["id"])
        trip = Journey(pair=pair, api=api, images=images, rescue_image=rescue_image,
                       unbootable_rescue_image=unbootable, flavors=flavors)
        try:
            yield trip
        finally:  # the pair as it was found: no server, both services up and enabled
            if trip.server_id:
                api.delete(f"/servers/{trip.server_id}")
                wait_gone(api, trip.server_id, timeout=120)
            for host in pair.hosts:
                service = trip.service(host.name)
                if service["forced_down"] or service["status"] != "enabled":
                    trip.set_service(host.name, {"forced_down": False, "status": "enabled"})
            for spec in (SMALL, BIG):
                api.delete(f"/flavors/{flavors[spec['name']]}")
            pair.wait_services_up()


def test_the_pair_is_two_libvirt_hosts(libvirt_pair: LibvirtPair) -> None:
    """Two daemons libvirt tells apart (host UUIDs), two hypervisors up, two instance directories."""
    a, b = libvirt_pair.hosts
    uuids = []
    for host in (a, b):
        with host.connect() as conn:
            uuids.append(ET.fromstring(conn.getCapabilities()).findtext("host/uuid"))
    assert uuids == [a.host_uuid, b.host_uuid] and uuids[0] != uuids[1]
    hypervisors = libvirt_pair.cluster.api.get("/os-hypervisors/detail").json()["hypervisors"]
    assert sorted(h["hypervisor_hostname"] for h in hypervisors) == sorted([a.name, b.name])
    assert all(h["hypervisor_type"] == "QEMU" and h["state"] == "up" for h in hypervisors)
    assert a.instances_path != b.instances_path


def _where(trip: Journey) -> tuple[str, str]:
    """The guest's host and the other one."""
    here = trip.host()
    return here, trip.pair.other(here).name


def _assert_runs_only_on(trip: Journey, host: str) -> None:
    pair = trip.pair
    assert trip.server_id in pair.host(host).running(), f"not running on {host}: {pair.host(host).domains()}"
    assert trip.server_id not in pair.other(host).domains(), f"still defined on {pair.other(host).name}"


def _assert_only_own_claim(trip: Journey, host: str, flavor: dict[str, Any]) -> None:
    """The server holds its flavor on its host, and nothing else in the cloud holds anything."""
    assert trip.allocations() == {trip.server_id: {host: resources(flavor)}}


def test_boot(journey: Journey) -> None:
    resp = boot(journey.api, journey.images.disk_id, flavor=journey.flavors[SMALL["name"]], networks="none",
                name="traveller", config_drive=True)
    assert resp.status_code == 202, resp.text
    journey.server_id = str(resp.json()["server"]["id"])
    journey.settle({"ACTIVE"}, timeout=120)
    assert "STRATUS-DISK: stratus-test-disk" in journey.wait_booted(1)
    source, _ = _where(journey)
    _assert_runs_only_on(journey, source)
    _assert_only_own_claim(journey, source, SMALL)


def test_resize_to_a_bigger_disk_then_revert(journey: Journey) -> None:
    source, dest = _where(journey)
    pair = journey.pair
    journey.action({"resize": {"flavorRef": journey.flavors[BIG["name"]]}})
    server = journey.settle({"VERIFY_RESIZE"})
    assert server["OS-EXT-SRV-ATTR:host"] == dest and server["flavor"]["original_name"] == BIG["name"]
    _assert_runs_only_on(journey, dest)
    # the files came over (the console log too: it has the boot on the source), the guest booted again there
    console = journey.wait_booted(2)
    assert console.count("STRATUS-DISK: stratus-test-disk") >= 2
    disk = pair.host(dest).instances_path / journey.server_id / "disk"
    info = disk_info(disk)
    assert info["virtual-size"] == BIG["disk"] * GiB  # grown to the new flavor's disk
    assert info["backing-filename"].startswith(str(pair.host(dest).instances_path / "_base"))  # its own base
    xml = pair.host(dest).domain_xml(journey.server_id)
    assert xml.findtext("memory") == str(BIG["ram"] * 1024)
    assert disk_sources(xml)["vda"] == str(disk)
    # the source keeps the guest's files for a revert; the migration holds its usage there
    assert (pair.host(source).instances_path / f"{journey.server_id}_resize" / "disk").exists()
    migration = journey.migration()
    assert (migration["status"], migration["type"], migration["source"], migration["dest"]) == \
        ("finished", "resize", source, dest)
    assert journey.allocations() == {journey.server_id: {dest: resources(BIG)},
                                     migration["uuid"]: {source: resources(SMALL)}}

    journey.action({"revertResize": None})
    server = journey.settle({"ACTIVE"})
    assert server["OS-EXT-SRV-ATTR:host"] == source and server["flavor"]["original_name"] == SMALL["name"]
    _assert_runs_only_on(journey, source)
    journey.wait_booted(2)  # the source's own console log: the first boot, then the revert's
    assert disk_info(pair.host(source).instances_path / journey.server_id / "disk")["virtual-size"] == GiB
    assert pair.host(source).domain_xml(journey.server_id).findtext("memory") == str(SMALL["ram"] * 1024)
    assert not (pair.host(source).instances_path / f"{journey.server_id}_resize").exists()
    # nothing of the guest is left on the destination
    assert not (pair.host(dest).instances_path / journey.server_id).exists()
    inbox = pair.host(dest).instances_path / "_inbox"
    assert not [p.name for p in inbox.iterdir() if p.name.startswith(journey.server_id)]
    assert journey.migration()["status"] == "reverted"
    _assert_only_own_claim(journey, source, SMALL)


def test_resize_then_confirm(journey: Journey) -> None:
    source, dest = _where(journey)
    pair = journey.pair
    markers = journey.console().count(BOOTED)
    journey.action({"resize": {"flavorRef": journey.flavors[BIG["name"]]}})
    journey.settle({"VERIFY_RESIZE"})
    journey.action({"confirmResize": None}, status=204)
    server = journey.settle({"ACTIVE"})
    assert server["OS-EXT-SRV-ATTR:host"] == dest and server["flavor"]["original_name"] == BIG["name"]
    _assert_runs_only_on(journey, dest)
    journey.wait_booted(markers + 1)
    assert not (pair.host(source).instances_path / f"{journey.server_id}_resize").exists()
    assert not (pair.host(source).instances_path / journey.server_id).exists()
    assert journey.migration()["status"] == "confirmed"
    _assert_only_own_claim(journey, dest, BIG)


def test_a_resize_down_is_refused_before_the_guest_stops(journey: Journey) -> None:
    """A smaller root disk cannot be made from the guest's: the source refuses before powering it off (Nova's
    ResizeError), the server stays where it was, running, with the fault and its own claim only."""
    host, _ = _where(journey)
    markers = journey.console().count(BOOTED)
    journey.action({"resize": {"flavorRef": journey.flavors[SMALL["name"]]}})
    wait_for("the move to fail", lambda: journey.migration()["status"] == "error", timeout=60)
    server = journey.settle({"ACTIVE"})
    assert server["OS-EXT-SRV-ATTR:host"] == host and server["flavor"]["original_name"] == BIG["name"]
    fault = journey.pair.cluster.sql("select message from instance_faults where instance_uuid = $1 "
                                     "order by created_at desc limit 1", journey.server_id)
    assert fault == [("Resize error: Unable to resize disk down.",)]
    _assert_runs_only_on(journey, host)
    assert journey.console().count(BOOTED) == markers  # it never stopped
    _assert_only_own_claim(journey, host, BIG)


def test_a_transfer_that_fails_puts_the_guest_back(journey: Journey) -> None:
    """The destination's libvirtd cannot make the disk's volume (a directory is in the way in its inbox): the
    source deletes what it sent, takes its files back and starts the guest again; the destination's claim goes."""
    source, dest = _where(journey)
    pair = journey.pair
    blocker = pair.host(dest).instances_path / "_inbox" / f"{journey.server_id}.disk"
    (blocker / "in-the-way").mkdir(parents=True)
    markers = journey.console().count(BOOTED)
    try:
        journey.action({"migrate": None})
        wait_for("the move to fail", lambda: journey.migration()["status"] == "error", timeout=90)
        server = journey.settle({"ACTIVE"})
    finally:
        (blocker / "in-the-way").rmdir()
        blocker.rmdir()
    assert server["OS-EXT-SRV-ATTR:host"] == source
    fault = journey.pair.cluster.sql("select message from instance_faults where instance_uuid = $1 "
                                     "order by created_at desc limit 1", journey.server_id)
    assert fault[0][0].startswith(f"Resize error: sending the disks to {dest} failed"), fault
    _assert_runs_only_on(journey, source)
    journey.wait_booted(markers + 1)  # powered off for the transfer, started again
    assert (pair.host(source).instances_path / journey.server_id / "disk").exists()
    assert not (pair.host(source).instances_path / f"{journey.server_id}_resize").exists()
    assert not list((pair.host(dest).instances_path / "_inbox").iterdir())
    _assert_only_own_claim(journey, source, BIG)


def test_cold_migrate_a_stopped_server_then_confirm(journey: Journey) -> None:
    """A stopped server moves stopped: its guest is defined on the destination and left off, the confirm leaves it
    SHUTOFF there, and it starts there."""
    source, dest = _where(journey)
    pair = journey.pair
    journey.action({"os-stop": None})
    journey.settle({"SHUTOFF"})
    markers = journey.console().count(BOOTED)
    journey.action({"migrate": None})
    server = journey.settle({"VERIFY_RESIZE"})
    assert server["OS-EXT-SRV-ATTR:host"] == dest and server["OS-EXT-STS:power_state"] == 4
    assert pair.host(dest).domains().get(journey.server_id) == libvirt.VIR_DOMAIN_SHUTOFF
    assert journey.server_id not in pair.host(source).domains()
    assert journey.migration()["type"] == "migration"
    journey.action({"confirmResize": None}, status=204)
    journey.settle({"SHUTOFF"})
    assert journey.console().count(BOOTED) == markers  # never started on the way
    assert not (pair.host(source).instances_path / f"{journey.server_id}_resize").exists()
    journey.action({"os-start": None})
    journey.settle({"ACTIVE"})
    _assert_runs_only_on(journey, dest)
    journey.wait_booted(markers + 1)
    assert disk_info(pair.host(dest).instances_path / journey.server_id / "disk")["virtual-size"] == BIG["disk"] * GiB
    _assert_only_own_claim(journey, dest, BIG)


def test_a_rescue_the_hypervisor_refuses_puts_the_guest_back(journey: Journey) -> None:
    """libvirt refuses the rescue guest (a machine type QEMU does not have) after the guest was powered off for
    it: the guest is defined as before and started again, its rescue files gone, the server ACTIVE with the
    fault."""
    host, _ = _where(journey)
    pair = journey.pair
    inst = pair.host(host).instances_path / journey.server_id
    before = disk_sources(pair.host(host).domain_xml(journey.server_id))
    markers = journey.console().count(BOOTED)
    faults = "select count(*) from instance_faults where instance_uuid = $1"
    (count,), = journey.pair.cluster.sql(faults, journey.server_id)
    journey.action({"rescue": {"rescue_image_ref": journey.unbootable_rescue_image}}, status=200)
    journey.settle({"ACTIVE"})
    assert journey.pair.cluster.sql(faults, journey.server_id) == [(count + 1,)]  # libvirt's refusal, recorded
    journey.wait_booted(markers + 1)
    _assert_runs_only_on(journey, host)
    assert disk_sources(pair.host(host).domain_xml(journey.server_id)) == before
    assert not (inst / "disk.rescue").exists() and not (inst / "unrescue.xml").exists()


def test_rescue_then_unrescue(journey: Journey) -> None:
    host, _ = _where(journey)
    pair = journey.pair
    inst = pair.host(host).instances_path / journey.server_id
    markers = journey.console().count(BOOTED)
    resp = journey.action({"rescue": {"rescue_image_ref": journey.rescue_image}}, status=200)
    assert resp.json()["adminPass"]
    journey.settle({"RESCUE"})
    console = journey.wait_booted(markers + 1)
    assert console.rsplit("STRATUS-DISK: ", 1)[1].startswith("stratus-rescue-disk")  # it booted the rescue image
    disks = disk_sources(pair.host(host).domain_xml(journey.server_id))
    assert disks == {"vda": str(inst / "disk.rescue"), "vdb": str(inst / "disk"),  # its own disk second
                     "hdd": str(inst / "disk.config")}
    assert journey.server_id in pair.host(host).running()

    journey.action({"unrescue": None})
    journey.settle({"ACTIVE"})
    console = journey.wait_booted(markers + 2)
    assert console.rsplit("STRATUS-DISK: ", 1)[1].startswith("stratus-test-disk")  # its own disk again
    assert disk_sources(pair.host(host).domain_xml(journey.server_id)) == {"vda": str(inst / "disk"),
                                                                           "hdd": str(inst / "disk.config")}
    assert not (inst / "disk.rescue").exists() and not (inst / "unrescue.xml").exists()
    _assert_runs_only_on(journey, host)
    _assert_only_own_claim(journey, host, BIG)


def test_shelve_then_unshelve_on_the_other_host(journey: Journey) -> None:
    source, dest = _where(journey)
    pair = journey.pair
    journey.action({"shelve": None})
    server = journey.settle({"SHELVED_OFFLOADED"})
    assert server["OS-EXT-SRV-ATTR:host"] is None
    assert journey.server_id not in pair.host(source).domains()
    assert not (pair.host(source).instances_path / journey.server_id).exists()
    with pair.image_client() as images:
        shelved = [i for i in images.get("/v2/images").json()["images"] if i["name"] == "traveller-shelved"]
    assert len(shelved) == 1 and shelved[0]["status"] == "active"
    assert journey.allocations() == {}  # offloaded: no claim anywhere

    journey.set_service(source, {"status": "disabled"})  # the scheduler's only choice is the other host
    try:
        journey.action({"unshelve": None})
        server = journey.settle({"ACTIVE"})
    finally:
        journey.set_service(source, {"status": "enabled"})
    assert server["OS-EXT-SRV-ATTR:host"] == dest
    _assert_runs_only_on(journey, dest)
    assert "STRATUS-DISK: stratus-test-disk" in journey.wait_booted(1)  # booted from the snapshot of its disk
    with pair.image_client() as images:
        assert images.get(f"/v2/images/{shelved[0]['id']}").status_code == 404  # the snapshot went
    _assert_only_own_claim(journey, dest, BIG)


def test_evacuate_from_a_host_forced_down(journey: Journey) -> None:
    source, dest = _where(journey)
    pair = journey.pair
    journey.set_service(source, {"forced_down": True})
    journey.action({"evacuate": {}}, status=200)
    server = journey.settle({"ACTIVE"})
    assert server["OS-EXT-SRV-ATTR:host"] == dest
    assert journey.server_id in pair.host(dest).running()
    assert "STRATUS-DISK: stratus-test-disk" in journey.wait_booted(1)  # rebuilt from the image there
    migration = journey.migration()
    assert (migration["type"], migration["status"]) == ("evacuation", "done")
    # the source's usage stays with the migration until the source comes back
    assert journey.allocations() == {journey.server_id: {dest: resources(BIG)},
                                     migration["uuid"]: {source: resources(BIG)}}

    pair.restart_compute(source, wait_up=False)  # at its start it destroys what is left of the evacuated guest
    wait_for("the evacuated guest gone from the source",
             lambda: journey.server_id not in pair.host(source).domains(), timeout=60)
    wait_for("the migration completed", lambda: journey.migration()["status"] == "completed", timeout=60)
    assert not (pair.host(source).instances_path / journey.server_id).exists()
    journey.set_service(source, {"forced_down": False})
    _assert_runs_only_on(journey, dest)
    _assert_only_own_claim(journey, dest, BIG)


def test_delete_leaves_nothing(journey: Journey) -> None:
    pair = journey.pair
    assert journey.api.delete(f"/servers/{journey.server_id}").status_code == 204
    wait_gone(journey.api, journey.server_id, timeout=120)
    for host in pair.hosts:
        assert journey.server_id not in host.domains()
        inbox = host.instances_path / "_inbox"
        left = [p.name for p in [*host.instances_path.iterdir(), *(inbox.iterdir() if inbox.exists() else [])]
                if p.name.startswith(journey.server_id)]
        assert not left, f"left on {host.name}: {left}"  # no instance directory, _resize or inbox file
    assert journey.allocations() == {}
    journey.server_id = ""


def test_resize_grows_the_ephemeral_disk_and_refuses_a_smaller_one(journey: Journey) -> None:
    """A guest with an ephemeral disk (``disk.local``) resized to a flavor with a bigger one: the disk arrives on
    the destination grown to the new size (Nova's finish_migration resizes the root and a single ephemeral
    disk); a resize back to the smaller ephemeral is refused before the guest stops, as a smaller root is."""
    pair, api = journey.pair, journey.api
    specs = [{"name": "moves.eph1", "ram": 256, "vcpus": 1, "disk": 1, "OS-FLV-EXT-DATA:ephemeral": 1},
             {"name": "moves.eph2", "ram": 256, "vcpus": 1, "disk": 1, "OS-FLV-EXT-DATA:ephemeral": 2}]
    flavors = []
    for spec in specs:
        resp = api.post("/flavors", json={"flavor": spec})
        assert resp.status_code == 200, resp.text
        flavors.append(str(resp.json()["flavor"]["id"]))
    try:
        resp = boot(api, journey.images.disk_id, flavor=flavors[0], networks="none", name="ephemeral")
        assert resp.status_code == 202, resp.text
        journey.server_id = str(resp.json()["server"]["id"])
        source = journey.settle({"ACTIVE"}, timeout=120)["OS-EXT-SRV-ATTR:host"]
        local = pair.host(source).instances_path / journey.server_id / "disk.local"
        assert disk_info(local)["virtual-size"] == GiB
        journey.action({"resize": {"flavorRef": flavors[1]}})
        server = journey.settle({"VERIFY_RESIZE"})
        dest = server["OS-EXT-SRV-ATTR:host"]
        assert dest != source
        local = pair.host(dest).instances_path / journey.server_id / "disk.local"
        assert disk_info(local)["virtual-size"] == 2 * GiB  # grown to the new flavor's ephemeral disk
        assert disk_sources(pair.host(dest).domain_xml(journey.server_id))["vdb"] == str(local)
        journey.action({"confirmResize": None}, status=204)
        journey.settle({"ACTIVE"})

        journey.action({"resize": {"flavorRef": flavors[0]}})  # same root, smaller ephemeral
        wait_for("the move to fail", lambda: journey.migration()["status"] == "error", timeout=60)
        server = journey.settle({"ACTIVE"})
        assert server["OS-EXT-SRV-ATTR:host"] == dest and server["flavor"]["original_name"] == "moves.eph2"
        fault = pair.cluster.sql("select message from instance_faults where instance_uuid = $1 "
                                 "order by created_at desc limit 1", journey.server_id)
        assert fault == [("Resize error: Unable to resize disk down.",)]
        assert disk_info(local)["virtual-size"] == 2 * GiB
        _assert_runs_only_on(journey, dest)
    finally:
        if journey.server_id:
            api.delete(f"/servers/{journey.server_id}")
            wait_gone(api, journey.server_id, timeout=120)
            journey.server_id = ""
        for flavor in flavors:
            api.delete(f"/flavors/{flavor}")


# --- a guest with a NIC on the real data plane: live and cold migration keep its network -----------------------
NET_CIDR, GATEWAY, GUEST_ADDRESS = "10.79.0.0/24", "10.79.0.1", "10.79.0.10"


@pytest.fixture(scope="module")
def networked(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LibvirtPair]:
    """A pair of its own with the network data plane (tests/integration/libvirt_pair.py, ``netns``: each libvirtd
    in its host's namespace, a Linux bridge agent per host, a DHCP agent on a network node of its own, so that no
    compute host has the network's bridge before one of its guests needs it), on a broker of its own."""
    if os.geteuid() != 0:
        pytest.skip("the network data plane needs root (network namespaces, nftables, dnsmasq)")
    from tests.integration.conftest import private_broker
    from tests.integration.dataplane_env import require_root_tools
    from tests.integration.libvirt_pair import libvirt_pair as start_pair

    require_root_tools()
    with private_broker("lvnmq-") as broker, start_pair(broker, postgres_url, tmp_path_factory.mktemp("lv-net"),
                                                       netns=True) as pair:
        yield pair


def _ping_from(namespace: str, address: str, seconds: float = 30) -> bool:
    """Whether ``address`` answers a ping from ``namespace`` within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        ping = nsutil.run(namespace, ["busybox", "ping", "-c", "1", "-W", "1", address], check=False, timeout=30)
        if ping.returncode == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def _reach(console: str, address: str) -> str | None:
    """What the guest last said of ``address`` (``ok`` or ``fail``; it prints each change, ``stratus.watch``)."""
    found = re.findall(rf"STRATUS-REACH: {re.escape(address)} (ok|fail)\b", console)
    return found[-1] if found else None


def test_a_guest_with_a_nic_keeps_its_network_across_live_and_cold_migration(networked: LibvirtPair,
                                                                              test_guest: Path) -> None:
    """A guest on a port of a VXLAN network (DHCP on the network node) moves from host A to B live, then back to A
    cold: after each move its port is bound to its new host (``binding:host_id``) and ACTIVE, the guest still
    reaches the DHCP server's address (its own ``stratus.watch`` report) and answers a ping from the DHCP
    namespace. The live migration needs the destination's bridge made before the guest arrives (QEMU's incoming
    tap goes on it): nothing else makes it there, since the port is bound to the source until the end."""
    pair = networked
    a, b = pair.hosts
    timings: dict[str, float] = {}
    with pair.network_client() as net, pair.client("2.56") as api:
        network = net.post("/networks", json={"network": {"name": "moves-net"}})
        assert network.status_code == 201, network.text
        net_id = network.json()["network"]["id"]
        subnet = net.post("/subnets", json={"subnet": {"network_id": net_id, "cidr": NET_CIDR, "ip_version": 4,
                                                       "gateway_ip": GATEWAY}})
        assert subnet.status_code == 201, subnet.text
        subnet_id = subnet.json()["subnet"]["id"]
        # the network node's DHCP agent makes its port (Neutron's create_dhcp_port): its address is the one the
        # guest watches
        dhcp_port = wait_for("the DHCP port", lambda: net.get("/ports", params={
            "network_id": net_id, "device_owner": "network:dhcp"}).json()["ports"], timeout=60)[0]
        dhcp_address = dhcp_port["fixed_ips"][0]["ip_address"]
        with pair.image_client() as client:
            images = upload_guest(client, test_guest, name="moves-nic",
                                  cmdline=f"{CMDLINE} stratus.tick stratus.watch={dhcp_address}")
        group = net.post("/security-groups", json={"security_group": {"name": "moves-icmp"}})
        assert group.status_code == 201, group.text
        group_id = group.json()["security_group"]["id"]
        rule = net.post("/security-group-rules", json={"security_group_rule": {
            "security_group_id": group_id, "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
            "remote_ip_prefix": NET_CIDR}})
        assert rule.status_code == 201, rule.text
        port = net.post("/ports", json={"port": {"network_id": net_id, "security_groups": [group_id],
                                                 "fixed_ips": [{"subnet_id": subnet_id,
                                                                "ip_address": GUEST_ADDRESS}]}})
        assert port.status_code == 201, port.text
        port_id = port.json()["port"]["id"]
        flavor = api.post("/flavors", json={"flavor": {"name": "moves.nic", "ram": 256, "vcpus": 1, "disk": 1}})
        assert flavor.status_code == 200, flavor.text
        flavor_id = flavor.json()["flavor"]["id"]
        server_id = ""

        def console() -> str:
            resp = api.post(f"/servers/{server_id}/action", json={"os-getConsoleOutput": {"length": None}})
            assert resp.status_code == 200, resp.text
            return str(resp.json()["output"])

        def server() -> dict[str, Any]:
            return dict(api.get(f"/servers/{server_id}").json()["server"])

        def ticks() -> list[int]:
            return [int(n) for n in re.findall(r"STRATUS-TICK: (\d+)", console())]

        def check_network(host: str) -> None:
            """The port is ``host``'s and ACTIVE, the DHCP namespace reaches the guest, and the guest, a few of
            its pings later, last found the DHCP address answering."""
            wait_for(f"the port bound to {host}", lambda: (p := net.get(f"/ports/{port_id}").json()["port"])
                     ["binding:host_id"] == host and p["status"] == "ACTIVE", timeout=60)
            assert _ping_from(netns_names.dhcp_namespace(net_id), GUEST_ADDRESS), f"no answer from the guest on {host}"
            now = ticks()[-1]
            wait_for("a few more pings of the guest", lambda: ticks()[-1] >= now + 4, timeout=60, interval=1)
            # it prints each change (a live migration's destination console starts empty: no line, no change)
            wait_for("the guest reaching the DHCP address",
                     lambda: _reach(console(), dhcp_address) != "fail", timeout=60, interval=1)

        try:
            resp = boot(api, images.disk_id, flavor=flavor_id, name="nic-traveller", networks=[{"port": port_id}],
                        availability_zone=f"nova:{a.name}")
            assert resp.status_code == 202, resp.text
            server_id = str(resp.json()["server"]["id"])
            assert wait_for_status(api, server_id, {"ACTIVE", "ERROR"}, timeout=180)["status"] == "ACTIVE"
            assert server()["OS-EXT-SRV-ATTR:host"] == a.name
            text = wait_for("the guest's lease", lambda: (c := console()) and f"STRATUS-IP: eth0 {GUEST_ADDRESS}/24"
                            in c and c, timeout=240, interval=1)
            assert text.count(BOOTED) <= 1
            wait_for("the guest's first answer from the DHCP address",
                     lambda: _reach(console(), dhcp_address) == "ok", timeout=120, interval=1)
            check_network(a.name)

            # live: the guest keeps running (its tick goes on), its NIC comes up on B's bridge
            started, last_tick = time.monotonic(), ticks()[-1]
            resp = api.post(f"/servers/{server_id}/action",
                            json={"os-migrateLive": {"host": b.name, "block_migration": "auto"}})
            assert resp.status_code == 202, resp.text
            wait_for("the live migration", lambda: server()["OS-EXT-STS:task_state"] is None, timeout=240,
                     interval=0.5)
            timings["live migration"] = time.monotonic() - started
            found = api.get("/os-migrations", params={"instance_uuid": server_id}).json()["migrations"]
            assert max(found, key=lambda m: m["id"])["status"] == "completed", (found, pair.cluster.logs(4000))
            assert server()["OS-EXT-SRV-ATTR:host"] == b.name
            assert pair.where(server_id) == [b.name] and server()["status"] == "ACTIVE"
            check_network(b.name)
            after = ticks()  # the destination's console: what the guest printed since it arrived
            assert after and after[0] > last_tick and "STRATUS-CMDLINE" not in console()  # it never rebooted

            # cold, back to A: the guest boots again there and takes its lease again
            mark, started = len(console()), time.monotonic()
            resp = api.post(f"/servers/{server_id}/action", json={"migrate": {"host": a.name}})
            assert resp.status_code == 202, resp.text
            wait_for("VERIFY_RESIZE", lambda: server()["status"] in ("VERIFY_RESIZE", "ERROR"), timeout=240)
            assert server()["status"] == "VERIFY_RESIZE", pair.cluster.logs(4000)
            resp = api.post(f"/servers/{server_id}/action", json={"confirmResize": None})
            assert resp.status_code == 204, resp.text
            wait_for("ACTIVE", lambda: server()["status"] == "ACTIVE" and server()["OS-EXT-STS:task_state"] is None,
                     timeout=120)
            timings["cold migration + confirm"] = time.monotonic() - started
            assert pair.where(server_id) == [a.name]
            wait_for("the lease after the move", lambda: f"STRATUS-IP: eth0 {GUEST_ADDRESS}/24" in console()[mark:],
                     timeout=240, interval=1)
            wait_for("the rebooted guest's first answer from the DHCP address",
                     lambda: _reach(console()[mark:], dhcp_address) == "ok", timeout=120, interval=1)
            check_network(a.name)
            print("\nmoves of a guest with a NIC: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
        finally:
            if server_id:
                api.delete(f"/servers/{server_id}")
                wait_gone(api, server_id, timeout=120)
            net.delete(f"/ports/{port_id}")
            net.delete(f"/networks/{net_id}")
            net.delete(f"/security-groups/{group_id}")
            api.delete(f"/flavors/{flavor_id}")
