"""Images and root disks on real Ceph: Glance-style RBD stores, ``images_type = rbd``, clones, no-download.

Two single-node clusters run (scripts/ceph.sh): A is the compute host's cluster, B "a Ceph that is not this
host's". The embedded image service has three stores: ``local`` (files), ``ceph`` (pool ``images`` of A) and
``foreign`` (pool ``images`` of B). Every check reads Ceph itself (librbd's own view: which image is a clone of
what) next to what the API says; one guest boots to its console marker from an RBD disk.
"""

from __future__ import annotations

import os
import sqlite3
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from tests.functional.helpers import boot, wait_for_status, wait_gone
from tests.integration.conftest import CephCluster
from tests.integration.guest import BOOTED, GuestImages, raw_disk, upload_disk, upload_guest

pytestmark = pytest.mark.integration
libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (scripts/libvirt.sh install .venv)")
rados = pytest.importorskip("rados", reason="the rados module is not importable (scripts/ceph.sh install .venv)")
rbd = pytest.importorskip("rbd", reason="the rbd module is not importable (scripts/ceph.sh install .venv)")


def _conf(uri: str, a: CephCluster, b: CephCluster, extra: str = "") -> str:
    return textwrap.dedent(f"""
        [DEFAULT]
        compute_driver = libvirt.LibvirtDriver
        shutdown_timeout = 0
        update_resources_interval = 1
        reserved_host_memory_mb = 256
        [libvirt]
        connection_uri = {uri}
        virt_type = qemu
        images_type = rbd
        images_rbd_pool = vms
        images_rbd_ceph_conf = {a.conf}
        [image_store]
        enabled_backends = local:file, ceph:rbd, foreign:rbd
        default_backend = local
        show_multiple_locations = true
        [ceph]
        rbd_store_pool = images
        rbd_store_ceph_conf = {a.conf}
        [foreign]
        rbd_store_pool = images
        rbd_store_ceph_conf = {b.conf}
        """) + textwrap.dedent(extra)


class Ceph:
    """Read-only looks into one cluster with librbd itself."""

    def __init__(self, cluster: CephCluster) -> None:
        self.fsid = cluster.fsid
        self.client = rados.Rados(conffile=str(cluster.conf))
        self.client.connect()

    def list(self, pool: str) -> set[str]:
        with self.client.open_ioctx(pool) as ioctx:
            return set(rbd.RBD().list(ioctx))

    def parent(self, pool: str, name: str) -> tuple[str, str, str] | None:
        with self.client.open_ioctx(pool) as ioctx, rbd.Image(ioctx, name, read_only=True) as image:
            try:
                spec = image.get_parent_image_spec()
            except rbd.ImageNotFound:
                return None
            return spec["pool_name"], spec["image_name"], spec["snap_name"]

    def size(self, pool: str, name: str) -> int:
        with self.client.open_ioctx(pool) as ioctx, rbd.Image(ioctx, name, read_only=True) as image:
            return int(image.size())


@pytest.fixture(scope="module")
def ceph(ceph_clusters: tuple[CephCluster, CephCluster]) -> Iterator[tuple[Ceph, Ceph]]:
    a, b = Ceph(ceph_clusters[0]), Ceph(ceph_clusters[1])
    yield a, b
    a.client.shutdown()
    b.client.shutdown()


@pytest.fixture(scope="module")
def flavor_body() -> dict[str, Any]:
    return {"flavor": {"name": "guest.tiny", "ram": 256, "vcpus": 1, "disk": 1}}


class RbdCloud:
    def __init__(self, cloud: Cloud, guest: GuestImages, images: dict[str, str], flavor: str) -> None:
        self.cloud, self.guest, self.images, self.flavor = cloud, guest, images, flavor

    def api(self) -> httpx.Client:
        return self.cloud.client(version="2.64")


def _start(tmp: Path, conf: str, test_guest: Path, flavor_body: dict[str, Any]) -> RbdCloud:
    cloud = start_cloud(tmp, conf)
    try:
        raw = raw_disk(test_guest)
        with cloud.image_client() as client:
            guest = upload_guest(client, test_guest)
            images = {store: upload_disk(client, guest, raw, f"raw-{store}", store=store)
                      for store in ("local", "ceph", "foreign")}
        with cloud.client(version="2.64") as api:
            resp = api.post("/flavors", json=flavor_body)
            assert resp.status_code == 200, resp.text
            flavor = str(resp.json()["flavor"]["id"])
    except BaseException:
        stop_cloud(cloud)
        raise
    return RbdCloud(cloud, guest, images, flavor)


@pytest.fixture(scope="module")
def rbd_cloud(libvirt_uri: str, ceph_clusters: tuple[CephCluster, CephCluster], test_guest: Path,
              tmp_path_factory: pytest.TempPathFactory, flavor_body: dict[str, Any]) -> Iterator[RbdCloud]:
    """Downloading allowed, no store named for copies."""
    started = _start(tmp_path_factory.mktemp("rbd-cloud"), _conf(libvirt_uri, *ceph_clusters), test_guest,
                     flavor_body)
    yield started
    stop_cloud(started.cloud)
    if os.environ.get("STRATUS_SHOW_LOG"):
        print(started.cloud.log())


def _boot(api: httpx.Client, image_id: str, flavor: str, status: str = "ACTIVE", **extra: Any) -> dict[str, Any]:
    resp = boot(api, image_id, flavor=flavor, networks="none", **extra)
    assert resp.status_code == 202, resp.text
    server = wait_for_status(api, resp.json()["server"]["id"], {"ACTIVE", "ERROR"}, timeout=120)
    assert server["status"] == status, server
    return server


def _delete(api: httpx.Client, server_id: str) -> None:
    assert api.delete(f"/servers/{server_id}").status_code == 204
    wait_gone(api, server_id, timeout=60)


def _console(api: httpx.Client, server_id: str) -> str:
    resp = api.post(f"/servers/{server_id}/action", json={"os-getConsoleOutput": {}})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["output"])


def test_image_in_the_same_cluster_is_cloned_and_the_guest_boots(rbd_cloud: RbdCloud, ceph: tuple[Ceph, Ceph],
                                                                  libvirt_uri: str) -> None:
    a, _b = ceph
    image_id = rbd_cloud.images["ceph"]
    with rbd_cloud.cloud.image_client() as client:
        image = client.get(f"/v2/images/{image_id}").json()
    assert image["stores"] == "ceph"
    assert image["locations"] == [{"url": f"rbd://{a.fsid}/images/{image_id}/snap", "metadata": {"store": "ceph"}}]
    with rbd_cloud.api() as api:
        server = _boot(api, image_id, rbd_cloud.flavor)
        disk = f"{server['id']}_disk"
        assert a.parent("vms", disk) == ("images", image_id, "snap")  # copy-on-write: no byte copied
        assert a.size("vms", disk) == 1 << 30  # grown to the flavor's disk
        conn = libvirt.open(libvirt_uri)
        try:
            xml = conn.lookupByUUIDString(server["id"]).XMLDesc(0)
        finally:
            conn.close()
        assert f"protocol='rbd' name='vms/{disk}'" in xml or f'protocol="rbd" name="vms/{disk}"' in xml
        deadline = 180
        end = time.monotonic() + deadline
        while BOOTED not in (out := _console(api, server["id"])):
            assert time.monotonic() < end, f"no boot marker within {deadline}s:\n{out[-2000:]}"
            time.sleep(0.5)
        assert "STRATUS-DISK" in out  # the guest mounted its root disk: the RBD clone
        _delete(api, server["id"])
    assert disk not in a.list("vms")  # nothing orphaned in Ceph


def test_image_elsewhere_is_imported_once_per_cluster_then_cloned(rbd_cloud: RbdCloud,
                                                                   ceph: tuple[Ceph, Ceph]) -> None:
    """An image in the file store and one in another cluster: downloaded, imported once as a cached base,
    and every instance (two at once here, then one more) is a clone of that base."""
    a, b = ceph
    b_before = b.list("vms")
    with rbd_cloud.api() as api:
        for store in ("local", "foreign"):
            image_id = rbd_cloud.images[store]
            resp = boot(api, image_id, flavor=rbd_cloud.flavor, networks="none", min_count=2)
            assert resp.status_code == 202, resp.text
            servers = api.get("/servers", params={"image": image_id}).json()["servers"]
            assert len(servers) == 2
            for s in servers:
                assert wait_for_status(api, s["id"], {"ACTIVE", "ERROR"}, timeout=120)["status"] == "ACTIVE"
            third = _boot(api, image_id, rbd_cloud.flavor)
            ids = [s["id"] for s in servers] + [third["id"]]
            bases = {n for n in a.list("vms") if n.startswith(f"_base_{image_id}")}
            assert bases == {f"_base_{image_id}"}  # one import, no leftovers
            for server_id in ids:
                assert a.parent("vms", f"{server_id}_disk") == ("vms", f"_base_{image_id}", "snap")
            for server_id in ids:
                _delete(api, server_id)
            assert not {f"{i}_disk" for i in ids} & a.list("vms")
    assert b.list("vms") == b_before  # the other cluster is only read


def test_deleting_an_image_with_clones_is_refused(rbd_cloud: RbdCloud, ceph: tuple[Ceph, Ceph],
                                                  test_guest: Path) -> None:
    a, _b = ceph
    with rbd_cloud.cloud.image_client() as client:
        extra = upload_disk(client, rbd_cloud.guest, raw_disk(test_guest), "raw-ceph-2", store="ceph")
        with rbd_cloud.api() as api:
            server = _boot(api, extra, rbd_cloud.flavor)
            resp = client.delete(f"/v2/images/{extra}", headers={"Accept": "application/json"})
            assert resp.status_code == 409, resp.text
            assert "in use" in resp.json()["message"]
            assert client.get(f"/v2/images/{extra}").json()["status"] == "active"  # nothing lost
            _delete(api, server["id"])
        assert client.delete(f"/v2/images/{extra}").status_code == 204
    assert extra not in a.list("images")


def test_snapshot_of_an_rbd_disk_stays_in_ceph(rbd_cloud: RbdCloud, ceph: tuple[Ceph, Ceph]) -> None:
    """createImage of an instance cloned from the ceph store: Nova's direct snapshot (clone, flatten, protect
    in the store's pool; the image service only records the location), then a boot from it is a clone."""
    a, _b = ceph
    with rbd_cloud.api() as api:
        server = _boot(api, rbd_cloud.images["ceph"], rbd_cloud.flavor)
        resp = api.post(f"/servers/{server['id']}/action", json={"createImage": {"name": "snap-of-rbd"}})
        assert resp.status_code == 202, resp.text
        snap_id = resp.json()["image_id"]
        with rbd_cloud.cloud.image_client() as client:
            end = time.monotonic() + 60
            while (image := client.get(f"/v2/images/{snap_id}").json())["status"] != "active":
                assert time.monotonic() < end, image
                time.sleep(0.2)
        assert image["disk_format"] == "raw" and image["stores"] == "ceph"
        assert image["locations"][0]["url"] == f"rbd://{a.fsid}/images/{snap_id}/snap"
        assert a.parent("images", snap_id) is None  # flattened: independent of the instance's disk
        assert a.size("images", snap_id) == 1 << 30
        assert not [n for n in a.list("vms") if "snapshot" in n]
        second = _boot(api, snap_id, rbd_cloud.flavor)
        assert a.parent("vms", f"{second['id']}_disk") == ("images", snap_id, "snap")
        _delete(api, second["id"])
        _delete(api, server["id"])


def _allocations(cloud: Cloud, uuid: str) -> int:
    db = sqlite3.connect(Path(cloud.state_path) / "stratus.sqlite")
    try:
        return int(db.execute("select count(*) from allocations where consumer_id = ?", (uuid,)).fetchone()[0])
    finally:
        db.close()


def test_never_download_refuses_at_once(libvirt_uri: str, ceph_clusters: tuple[CephCluster, CephCluster],
                                        test_guest: Path, tmp_path_factory: pytest.TempPathFactory,
                                        flavor_body: dict[str, Any], ceph: tuple[Ceph, Ceph]) -> None:
    """``never_download_image_if_on_rbd``: an image only in the file store fails the build at once with a
    fault saying why: one attempt (no reschedule), no allocation left, nothing written to Ceph. The fault's
    message, all its owner sees, names the image and the host's cluster within its 255 characters; admins see
    why in the details. An image in the host's cluster still boots (a clone)."""
    a, b = ceph
    conf = _conf(libvirt_uri, *ceph_clusters, """
        [workarounds]
        never_download_image_if_on_rbd = true""")
    strict = _start(tmp_path_factory.mktemp("strict-cloud"), conf, test_guest, flavor_body)
    try:
        with strict.api() as api, strict.cloud.client(token="owner:proj-rbd", version="2.64") as owner:
            for store, where in (("local", "its data is in local"), ("foreign", "its data is in foreign")):
                before = (a.list("vms"), a.list("images"), b.list("vms"))
                image_id = strict.images[store]
                server = _boot(owner, image_id, strict.flavor, status="ERROR")
                message = server["fault"]["message"]
                assert len(message) <= 255 and "details" not in server["fault"], server["fault"]
                assert message == (f"Build of instance {server['id']} aborted: Image {image_id} is not clone-able "
                                   f"in Ceph cluster {a.fsid} and [workarounds] never_download_image_if_on_rbd "
                                   "refuses to download it"), message
                details = api.get(f"/servers/{server['id']}").json()["server"]["fault"]["details"]
                assert details.startswith(f"Image {image_id} cannot be cloned in Ceph cluster {a.fsid}: {where}, "
                                          f"not in the Ceph cluster {a.fsid}"), details
                actions = api.get(f"/servers/{server['id']}/os-instance-actions").json()["instanceActions"]
                (create,) = [x for x in actions if x["action"] == "create"]
                events = api.get(f"/servers/{server['id']}/os-instance-actions/{create['request_id']}"
                                 ).json()["instanceAction"]["events"]
                builds = [e for e in events if e["event"] == "compute__do_build_and_run_instance"]
                assert len(builds) == 1 and builds[0]["result"] == "Error", events  # not rescheduled
                assert _allocations(strict.cloud, server["id"]) == 0
                assert (a.list("vms"), a.list("images"), b.list("vms")) == before  # nothing written to Ceph
                _delete(api, server["id"])
            ok = _boot(api, strict.images["ceph"], strict.flavor)
            assert a.parent("vms", f"{ok['id']}_disk") == ("images", strict.images["ceph"], "snap")
            _delete(api, ok["id"])
    finally:
        stop_cloud(strict.cloud)


def test_copy_image_to_the_hosts_store_then_clone(libvirt_uri: str, ceph_clusters: tuple[CephCluster, CephCluster],
                                                  test_guest: Path, tmp_path_factory: pytest.TempPathFactory,
                                                  flavor_body: dict[str, Any], ceph: tuple[Ceph, Ceph]) -> None:
    """``images_rbd_glance_store_name``: the image service copies the file-store image into the host's
    cluster (copy-image import), the image gains the store, and the disk is a clone of that copy: the host
    downloads nothing, even with never_download_image_if_on_rbd set. With the default poll interval (15 s) the
    server is ACTIVE as soon as the copy is done (before, the first look came 15 s after asking).

    A qcow2 image is not copied: no clone could be made of the copy (clones need raw), so the build goes on
    to the next way at once (here, the refusal) and Ceph holds no copy of it."""
    a, _b = ceph
    conf = _conf(libvirt_uri, *ceph_clusters, """
        [workarounds]
        never_download_image_if_on_rbd = true
        [libvirt]
        images_rbd_glance_store_name = ceph
        images_rbd_glance_copy_timeout = 60""")
    copier = _start(tmp_path_factory.mktemp("copy-cloud"), conf, test_guest, flavor_body)
    try:
        image_id = copier.images["local"]
        with copier.api() as api, copier.cloud.image_client() as client:
            started = time.monotonic()
            server = _boot(api, image_id, copier.flavor)
            took = time.monotonic() - started
            print(f"\ncopy-image path: time-to-ACTIVE {took:.2f} s (64 MiB raw image)")
            assert took < 10, took  # the copy takes ~3 s; one 15 s poll made it ~16 s
            image = client.get(f"/v2/images/{image_id}").json()
            assert image["stores"] == "local,ceph"
            assert not image.get("os_glance_importing_to_stores") and not image.get("os_glance_failed_import")
            assert a.parent("vms", f"{server['id']}_disk") == ("images", image_id, "snap")
            assert f"_base_{image_id}" not in a.list("vms")
            _delete(api, server["id"])

            qcow2 = copier.guest.disk_id
            before = a.list("images")
            started = time.monotonic()
            refused = _boot(api, qcow2, copier.flavor, status="ERROR")
            took = time.monotonic() - started
            print(f"copy-image path, qcow2 image: refused after {took:.2f} s, not copied")
            assert took < 10, took
            assert "never_download_image_if_on_rbd" in refused["fault"]["message"], refused["fault"]
            assert "disk_format is qcow2" in refused["fault"]["details"], refused["fault"]
            image = client.get(f"/v2/images/{qcow2}").json()
            assert image["stores"] == "local", image  # not copied: stored once
            assert not image.get("os_glance_importing_to_stores") and not image.get("os_glance_failed_import")
            assert a.list("images") == before
            _delete(api, refused["id"])
    finally:
        stop_cloud(copier.cloud)
