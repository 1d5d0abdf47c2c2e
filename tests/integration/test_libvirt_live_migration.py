"""Live migration of a real guest between two libvirt compute hosts on this machine (two private libvirtds,
tests/integration/libvirt_pair.py): peer to peer, with a qcow2 block migration and on RBD shared storage.

The test guest boots with ``stratus.tick`` on its command line and prints ``STRATUS-TICK: <n>`` once a second,
n counting from 1 at boot: across a live migration the destination's console (os-getConsoleOutput, answered by
the destination) goes on from where the source's stopped, with no boot in between. Each check reads libvirt's
own view of both daemons (where the domain runs, its disks), the instance's files on both hosts, and the
allocation table next to what the API says.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.helpers import wait_for_status, wait_gone
from tests.integration.conftest import CephCluster, private_broker
from tests.integration.guest import CMDLINE, GuestImages, upload_guest

pytestmark = pytest.mark.integration
libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (scripts/libvirt.sh install .venv)")

from tests.integration.guest import wait as wait_for  # noqa: E402
from tests.integration.libvirt_pair import LibvirtPair  # noqa: E402
from tests.integration.libvirt_pair import libvirt_pair as start_pair  # noqa: E402

TICK = re.compile(r"STRATUS-TICK: (\d+)")
TICK_CMDLINE = f"{CMDLINE} stratus.tick"
VERSION = "2.30"  # block_migration "auto" (2.25), abort (2.24), force_complete (2.22), pre-checks answered (< 2.34)


def ticks(text: str) -> list[int]:
    return [int(n) for n in TICK.findall(text)]


class Mover:
    """One pair's API, as the tests drive it."""

    def __init__(self, pair: LibvirtPair, images: GuestImages, flavor: str) -> None:
        self.pair, self.images, self.flavor = pair, images, flavor
        self.api = pair.client(VERSION)

    def boot(self, name: str) -> tuple[str, str]:
        """A ticking guest, ACTIVE with a few ticks on its console; (server id, its host)."""
        with self.pair.client("2.37") as boot:  # networks: none
            resp = boot.post("/servers", json={"server": {"name": name, "imageRef": self.images.disk_id,
                                                          "flavorRef": self.flavor, "networks": "none"}})
        assert resp.status_code == 202, resp.text
        server_id = str(resp.json()["server"]["id"])
        server = wait_for_status(self.api, server_id, {"ACTIVE", "ERROR"}, timeout=180)
        assert server["status"] == "ACTIVE", server
        wait_for("the guest's ticks", lambda: len(ticks(self.console(server_id))) >= 5, timeout=180)
        return server_id, str(server["OS-EXT-SRV-ATTR:host"])

    def console(self, server_id: str) -> str:
        resp = self.api.post(f"/servers/{server_id}/action", json={"os-getConsoleOutput": {"length": None}})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["output"])

    def live_migrate(self, server_id: str, host: str, block_migration: Any = "auto") -> dict[str, Any]:
        resp = self.api.post(f"/servers/{server_id}/action",
                             json={"os-migrateLive": {"host": host, "block_migration": block_migration}})
        assert resp.status_code == 202, resp.text
        return self.migration(server_id)

    def migration(self, server_id: str) -> dict[str, Any]:
        found = self.api.get("/os-migrations", params={"instance_uuid": server_id}).json()["migrations"]
        assert found, "no migration record"
        return dict(max(found, key=lambda m: m["id"]))

    def settle(self, server_id: str, statuses: tuple[str, ...], timeout: float = 180) -> dict[str, Any]:
        """Wait until the server's latest migration is in one of ``statuses`` and the server has no task."""
        def done() -> dict[str, Any] | None:
            migration = self.migration(server_id)
            server = self.api.get(f"/servers/{server_id}").json()["server"]
            return migration if migration["status"] in statuses and server["OS-EXT-STS:task_state"] is None \
                else None

        return dict(wait_for(f"migration {statuses}", done, timeout=timeout))

    def delete(self, server_id: str) -> None:
        assert self.api.delete(f"/servers/{server_id}").status_code == 204
        wait_gone(self.api, server_id, timeout=120)

    def check_moved(self, server_id: str, source: str, dest: str, last_tick: int) -> None:
        """The guest runs on ``dest`` only, its console there goes on from ``last_tick`` without a boot, and
        only its own claim on ``dest`` is left."""
        server = self.api.get(f"/servers/{server_id}").json()["server"]
        assert server["status"] == "ACTIVE" and server["OS-EXT-SRV-ATTR:host"] == dest, server
        assert self.pair.where(server_id) == [dest]
        assert server_id in self.pair.host(dest).running()
        output = wait_for("ticks on the destination",
                          lambda: (o := self.console(server_id)) and len(ticks(o)) >= 3 and o, timeout=60)
        seen = ticks(output)
        assert seen[0] > last_tick, (last_tick, seen[:5])  # the guest's own count went on: it never rebooted
        assert seen == list(range(seen[0], seen[0] + len(seen))), seen  # one a second, none lost on this console
        assert "STRATUS-CMDLINE" not in output
        assert not (self.pair.host(source).instances_path / server_id).exists()  # the source's files are gone
        assert self.pair.cluster.allocation_problems() == []
        (migration_uuid,), = self.pair.cluster.sql("select uuid from migrations where id = $1",
                                                   self.migration(server_id)["id"])
        rows = self.pair.cluster.sql(
            "select rp.name, a.consumer_id from allocations a join resource_providers rp "
            "on rp.id = a.resource_provider_id where a.consumer_id in ($1, $2)", server_id, migration_uuid)
        assert {name for name, _ in rows} == {dest} and {c for _, c in rows} == {server_id}, rows


def _flavor(pair: LibvirtPair) -> str:
    with pair.client(VERSION) as api:
        name = f"lm-{time.monotonic_ns()}"
        resp = api.post("/flavors", json={"flavor": {"name": name, "ram": 256, "vcpus": 1, "disk": 1}})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["flavor"]["id"])


def _upload(pair: LibvirtPair, test_guest: Path) -> GuestImages:
    with pair.image_client() as client:
        return upload_guest(client, test_guest, name="lm-tick", cmdline=TICK_CMDLINE)


# --- qcow2 on each host's own disk: a block migration --------------------------------------------------------
@pytest.fixture(scope="module")
def files(libvirt_pair: LibvirtPair, test_guest: Path) -> Mover:
    return Mover(libvirt_pair, _upload(libvirt_pair, test_guest), _flavor(libvirt_pair))


def test_block_migration_keeps_the_guest_running(files: Mover) -> None:
    server_id, source = files.boot("lm-block")
    dest = files.pair.other(source).name
    try:
        last = ticks(files.console(server_id))[-1]
        started = files.live_migrate(server_id, dest)  # auto: the hosts share no storage, so a block migration
        assert started["migration_type"] == "live-migration"
        migration = files.settle(server_id, ("completed", "error", "cancelled"))
        assert migration["status"] == "completed", (migration, files.pair.cluster.logs(4000))
        assert migration["source_compute"] == source and migration["dest_compute"] == dest
        files.check_moved(server_id, source, dest, last)
        # the root disk was copied into a qcow2 of the destination's own, on the destination's cached base
        disk = files.pair.host(dest).domain_xml(server_id).find("devices/disk")
        path = Path(str(disk.find("source").get("file")))
        assert path == files.pair.host(dest).instances_path / server_id / "disk"
        assert disk.find("driver").get("type") == "qcow2" and path.exists()

        # a non-block migration off local disks is refused before anything moves
        resp = files.api.post(f"/servers/{server_id}/action",
                              json={"os-migrateLive": {"host": source, "block_migration": False}})
        assert resp.status_code == 400 and "is not on shared storage" in resp.text, resp.text
        assert files.pair.where(server_id) == [dest]
    finally:
        files.delete(server_id)


# --- RBD: shared block storage, no copy of the disk; abort and force-complete --------------------------------
@pytest.fixture(scope="module")
def shared(postgres_url: str, ceph_clusters: tuple[CephCluster, CephCluster], test_guest: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mover]:
    """A pair of its own whose hosts keep root disks in the same RBD pool (the session's Ceph cluster A, as
    test_rbd's); its migrations are slowed to 10 MiB/s so that one is caught running well before its switch-over (abort,
    force-complete). It has a broker of its own: oslo.messaging's queues are named by topic alone
    (``conductor``, ``compute.<host>``), so two clouds on one broker's vhost would take each other's messages
    while the session's pair runs too."""
    ceph = ceph_clusters[0]
    conf = textwrap.dedent(f"""
        [libvirt]
        images_type = rbd
        images_rbd_pool = vms
        images_rbd_ceph_conf = {ceph.conf}
        live_migration_bandwidth = 10
        """)
    with private_broker("lmmq-") as broker, start_pair(broker, postgres_url, tmp_path_factory.mktemp("lm-rbd"),
                                                       conf=conf) as pair:
        yield Mover(pair, _upload(pair, test_guest), _flavor(pair))


def _incoming_qemu(server_id: str) -> int | None:
    """The pid of the QEMU that receives the server's guest (``-incoming``), if one runs."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-incoming" in args and any(server_id.encode() in a for a in args):
            return int(entry)
    return None


def _rbd_source(host_xml: Any) -> str:
    source = host_xml.find("devices/disk/source")
    assert source is not None and source.get("protocol") == "rbd", host_xml
    return str(source.get("name"))


def test_rbd_live_migration_abort_force_complete_and_timeout(shared: Mover) -> None:
    server_id, source = shared.boot("lm-rbd")
    dest = shared.pair.other(source).name
    disk = _rbd_source(shared.pair.host(source).domain_xml(server_id))
    assert disk == f"vms/{server_id}_disk"
    try:
        # abort while the copy runs: the guest never stops on its source, the migration is cancelled. The
        # destination's QEMU is frozen meanwhile (SIGSTOP), so that the copy cannot reach its switch-over before
        # the abort lands, however loaded the machine is (an abort during the switch-over may complete the move)
        shared.live_migrate(server_id, dest)
        running = wait_for("a running migration", lambda: (m := shared.migration(server_id))["status"] == "running"
                           and m, timeout=60)
        # frozen once memory flows (the destination's libvirtd is done setting its QEMU up: frozen before, it
        # would wait for it in the migration's prepare phase, which no abort ends)
        wait_for("the memory copy under way", lambda: shared.api.get(
            f"/servers/{server_id}/migrations/{running['id']}").json()["migration"]["memory_processed_bytes"],
            timeout=60, interval=0.1)
        incoming = _incoming_qemu(server_id)
        assert incoming is not None
        os.kill(incoming, signal.SIGSTOP)
        try:
            resp = shared.api.delete(f"/servers/{server_id}/migrations/{running['id']}")
            assert resp.status_code == 202, resp.text
            assert shared.settle(server_id, ("cancelled", "error", "completed"))["status"] == "cancelled"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(incoming, signal.SIGCONT)
        # the destination's libvirtd removes its incoming guest once its QEMU answers again
        wait_for("the incoming guest gone", lambda: shared.pair.where(server_id) == [source], timeout=60)
        assert server_id in shared.pair.host(source).running()
        before = ticks(shared.console(server_id))[-1]
        wait_for("the guest ticking on", lambda: ticks(shared.console(server_id))[-1] > before, timeout=30)
        assert shared.pair.cluster.allocation_problems() == []

        # again, forced to complete: the guest is paused for the last copy and runs again on the destination
        last = ticks(shared.console(server_id))[-1]
        shared.live_migrate(server_id, dest)
        running = wait_for("a running migration", lambda: (m := shared.migration(server_id))["status"] == "running"
                           and m, timeout=60)
        resp = shared.api.post(f"/servers/{server_id}/migrations/{running['id']}/action",
                               json={"force_complete": None})
        assert resp.status_code == 202, resp.text
        migration = shared.settle(server_id, ("completed", "error", "cancelled"))
        assert migration["status"] == "completed", (migration, shared.pair.cluster.logs(4000))
        shared.check_moved(server_id, source, dest, last)
        # the same RBD image, not a copy: nothing of the disk was moved, and the source did not remove it
        assert _rbd_source(shared.pair.host(dest).domain_xml(server_id)) == disk
        assert not (shared.pair.host(dest).instances_path / server_id / "disk").exists()
        assert shared.api.get(f"/servers/{server_id}").json()["server"]["OS-EXT-STS:power_state"] == 1

        # back, from a host whose completion timeout is 1 s per GiB (2 s for this guest, less than the copy
        # takes at 10 MiB/s): the timeout's action, abort, cancels it, the guest still running where it was
        extra = shared.pair.cluster.dir / f"{dest}.conf"
        extra.write_text(extra.read_text() + "live_migration_completion_timeout = 1\n")  # its last section: [libvirt]
        shared.pair.restart_compute(dest)
        shared.live_migrate(server_id, source)
        assert shared.settle(server_id, ("cancelled", "error", "completed"))["status"] == "cancelled"
        assert shared.pair.where(server_id) == [dest] and server_id in shared.pair.host(dest).running()
        assert f"live migration of {server_id} not done after" in shared.pair.cluster.logs(20000)
        assert shared.pair.cluster.allocation_problems() == []
    finally:
        shared.delete(server_id)


def _rbd(ceph: CephCluster, name: str) -> tuple[int, list[str]] | None:
    """(size, snapshot names) of the RBD image ``pool/image``; None when it is not there."""
    from stratus.image import rbd

    pool, image = name.split("/", 1)
    cluster = rbd.Cluster(str(ceph.conf))
    try:
        if not cluster.exists(pool, image):
            return None
        return cluster.size(pool, image), cluster.snapshots(pool, image)
    finally:
        cluster.close()


def test_rbd_resize_revert_and_cold_migration_keep_the_shared_disk(shared: Mover,
                                                                   ceph_clusters: tuple[CephCluster, CephCluster]
                                                                   ) -> None:
    """The root disk is in the pool both hosts use: a resize copies nothing, the destination snapshots the RBD
    image (``nova-resize``, as Nova) and defines the guest on that same image grown to the new flavor's disk (rbd
    resize); a revert rolls the image back to the snapshot (old size again, snapshot gone) and puts the guest back
    on its source; a cold migration snapshots it too and its confirm removes the snapshot, leaving nothing of the
    guest on the source; a server deleted while its move waits for a confirm leaves no image behind."""
    ceph = ceph_clusters[0]
    pair, api = shared.pair, shared.api
    resp = api.post("/flavors", json={"flavor": {"name": f"lm-big-{time.monotonic_ns()}", "ram": 256, "vcpus": 1,
                                                 "disk": 2}})
    assert resp.status_code == 200, resp.text
    big = str(resp.json()["flavor"]["id"])
    server_id, source = shared.boot("lm-rbd-resize")
    deleted = False
    dest = pair.other(source).name
    disk = _rbd_source(pair.host(source).domain_xml(server_id))
    assert _rbd(ceph, disk) == (1024**3, [])

    def action(body: dict[str, Any], status: int = 202) -> None:
        resp = api.post(f"/servers/{server_id}/action", json=body)
        assert resp.status_code == status, resp.text

    def settle(status: str) -> dict[str, Any]:
        server = wait_for_status(api, server_id, {status, "ERROR"}, timeout=180)
        assert server["status"] == status, (server, pair.cluster.logs(4000))
        wait_for("no task", lambda: api.get(f"/servers/{server_id}").json()["server"]["OS-EXT-STS:task_state"]
                 is None, timeout=60)
        return dict(api.get(f"/servers/{server_id}").json()["server"])

    try:
        action({"resize": {"flavorRef": big}})
        server = settle("VERIFY_RESIZE")
        assert server["OS-EXT-SRV-ATTR:host"] == dest
        assert pair.where(server_id) == [dest] and server_id in pair.host(dest).running()
        assert _rbd_source(pair.host(dest).domain_xml(server_id)) == disk  # the same image, not a copy
        # grown to the new flavor's root disk, after a snapshot of it as it was
        assert _rbd(ceph, disk) == (2 * 1024**3, ["nova-resize"])
        assert not (pair.host(dest).instances_path / server_id / "disk").exists()
        assert (pair.host(source).instances_path / f"{server_id}_resize").is_dir()  # kept for a revert
        wait_for("the guest booted on the destination", lambda: ticks(shared.console(server_id)), timeout=120)

        action({"revertResize": None})
        server = settle("ACTIVE")
        assert server["OS-EXT-SRV-ATTR:host"] == source
        assert pair.where(server_id) == [source] and server_id in pair.host(source).running()
        assert _rbd_source(pair.host(source).domain_xml(server_id)) == disk
        assert _rbd(ceph, disk) == (1024**3, [])  # rolled back to the snapshot: the old size, no snapshot left
        assert not (pair.host(dest).instances_path / server_id).exists()
        assert not (pair.host(source).instances_path / f"{server_id}_resize").exists()
        wait_for("the guest booted again on the source", lambda: ticks(shared.console(server_id)), timeout=120)

        action({"migrate": None})
        server = settle("VERIFY_RESIZE")
        assert server["OS-EXT-SRV-ATTR:host"] == dest
        assert _rbd(ceph, disk) == (1024**3, ["nova-resize"])  # same size: snapshotted all the same, as Nova
        action({"confirmResize": None}, status=204)
        server = settle("ACTIVE")
        assert pair.where(server_id) == [dest] and server_id in pair.host(dest).running()
        assert _rbd_source(pair.host(dest).domain_xml(server_id)) == disk
        assert _rbd(ceph, disk) == (1024**3, [])  # the confirm removed the snapshot
        assert not (pair.host(source).instances_path / f"{server_id}_resize").exists()
        assert not (pair.host(source).instances_path / server_id).exists()
        wait_for("the guest ticking on the destination", lambda: ticks(shared.console(server_id)), timeout=120)
        assert pair.cluster.allocation_problems() == []

        action({"migrate": None})  # back to the source, then deleted there before a confirm
        server = settle("VERIFY_RESIZE")
        assert server["OS-EXT-SRV-ATTR:host"] == source
        assert _rbd(ceph, disk) == (1024**3, ["nova-resize"])
        deleted = True
        shared.delete(server_id)
        assert _rbd(ceph, disk) is None  # the image went with its snapshot
        assert pair.where(server_id) == []
        wait_for("the move's source dropped what it kept",
                 lambda: not (pair.host(dest).instances_path / f"{server_id}_resize").exists(), timeout=60)
        assert pair.cluster.allocation_problems() == []
    finally:
        if not deleted:
            shared.delete(server_id)
        api.delete(f"/flavors/{big}")
