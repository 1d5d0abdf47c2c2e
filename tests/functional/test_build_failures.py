"""Failure injection in the fake driver drives Nova's build failure paths through the real API."""

from __future__ import annotations

import datetime
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from tests.functional.helpers import boot, upload_image, wait_for_status, wait_gone


@pytest.fixture(scope="module")
def failing_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """Four hosts, two of which fail every build; three attempts per build."""
    cloud = start_cloud(tmp_path_factory.mktemp("failing"), extra_conf="""
        [fake_driver]
        host_count = 4
        fail_hosts = compute-1,compute-2
        [scheduler]
        max_attempts = 3
        """)
    try:
        yield cloud
    finally:
        stop_cloud(cloud)


def _allocations(cloud: Cloud, uuid: str) -> int:
    db = sqlite3.connect(Path(cloud.state_path) / "stratus.sqlite")
    return int(db.execute("select count(*) from allocations where consumer_id = ?", (uuid,)).fetchone()[0])


def test_failed_builds_reschedule_to_working_hosts(failing_cloud: Cloud) -> None:
    with failing_cloud.image_client() as img:
        image = upload_image(img)
    with failing_cloud.client() as c:
        resp = boot(c, image["id"], name="resched", min_count=6)
        assert resp.status_code == 202, resp.text
        servers = c.get("/servers", params={"name": "^resched-"}).json()["servers"]
        assert len(servers) == 6
        hosts = set()
        for s in servers:
            got = wait_for_status(c, s["id"], {"ACTIVE", "ERROR"})
            assert got["status"] == "ACTIVE", got.get("fault")
            hosts.add(got["OS-EXT-SRV-ATTR:host"])
        assert hosts <= {"compute-3", "compute-4"}
        for s in servers:
            c.delete(f"/servers/{s['id']}")
        for s in servers:
            wait_gone(c, s["id"])
            assert _allocations(failing_cloud, s["id"]) == 0


def test_every_host_failing_ends_in_error_with_nova_fault(failing_cloud: Cloud) -> None:
    """A flavor that names the working hosts as failing too: every attempt fails, the fault says so."""
    with failing_cloud.image_client() as img:
        image = upload_image(img)
    with failing_cloud.client() as admin:
        flavor = admin.post("/flavors", json={"flavor": {"name": "doomed", "ram": 64, "vcpus": 1, "disk": 1}})
        assert flavor.status_code == 200, flavor.text
        fid = flavor.json()["flavor"]["id"]
        resp = admin.post(f"/flavors/{fid}/os-extra_specs",
                          json={"extra_specs": {"fake:fail_on_hosts": "compute-3,compute-4"}})
        assert resp.status_code == 200, resp.text
        server_id = boot(admin, image["id"], flavor=fid).json()["server"]["id"]
        got = wait_for_status(admin, server_id, {"ERROR"})
        assert got["fault"]["message"] == (
            "Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures "
            f"for instance {server_id}.")
        assert got["fault"]["code"] == 500
        # the last underlying error, for admins: whichever failing host came last in the alternates
        assert re.search(r"host compute-\d (is named by the flavor or image to fail|is configured to fail every "
                         r"build)", got["fault"]["details"]), got["fault"]["details"]
        assert _allocations(failing_cloud, server_id) == 0
    with failing_cloud.client(token="admin:admin") as c:
        assert c.delete(f"/servers/{server_id}").status_code == 204
        wait_gone(c, server_id)


def test_fault_details_are_shown_per_novas_rules(cloud: Cloud) -> None:
    """Nova's ``_get_fault``: a code-500 fault's details (its traceback) for admins only; a fault without
    details has no ``details`` key at all, whoever asks (before, an empty string was shown)."""
    with cloud.image_client() as img:
        image = upload_image(img, fake_fail_permanently="true")
    with cloud.client(token="owner:proj-faults", version="2.1") as owner, cloud.client(version="2.1") as admin:
        resp = boot(owner, image["id"])
        assert resp.status_code == 202, resp.text
        server_id = resp.json()["server"]["id"]
        mine = wait_for_status(owner, server_id, {"ERROR"})["fault"]
        assert mine["code"] == 500 and "the flavor or image asks every host to refuse it" in mine["message"]
        assert "details" not in mine
        shown = admin.get(f"/servers/{server_id}").json()["server"]["fault"]
        assert shown["message"] == mine["message"] and "BuildAbortException: Build of instance" in shown["details"]

        db = sqlite3.connect(Path(cloud.state_path) / "stratus.sqlite")
        try:  # the newest fault is the one shown: a 404 without details, as Nova writes it
            db.execute("insert into instance_faults (instance_uuid, code, message, details, host, created_at) "
                       "values (?, 404, 'Image gone could not be found.', '', 'compute-1', ?)",
                       (server_id, datetime.datetime.now(datetime.UTC).replace(tzinfo=None).isoformat(" ")))
            db.commit()
        finally:
            db.close()
        for client in (owner, admin):
            got = client.get(f"/servers/{server_id}").json()["server"]["fault"]
            assert got["message"] == "Image gone could not be found." and got["code"] == 404
            assert "details" not in got
        assert owner.delete(f"/servers/{server_id}").status_code == 204
        wait_gone(owner, server_id)
