"""Failed builds through the REST API: what is rescheduled, what is not, deletes mid-build, auto-disable.

The fake driver's failure injection drives each path: hosts that fail every build (``fail_hosts``), an image
every host refuses (``fake_fail_permanently``, not reschedulable), and slow build steps to delete during.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from tests.functional.helpers import boot, upload_image, wait_for_status, wait_gone

BUILD = "compute__do_build_and_run_instance"
V = "2.62"


def _cloud(tmp_path_factory: pytest.TempPathFactory, name: str, conf: str) -> Cloud:
    return start_cloud(tmp_path_factory.mktemp(name), extra_conf=conf)


def _allocations(cloud: Cloud, uuid: str | None = None) -> int:
    with sqlite3.connect(Path(cloud.state_path) / "stratus.sqlite") as db:
        if uuid is None:
            return int(db.execute("select count(*) from allocations").fetchone()[0])
        return int(db.execute("select count(*) from allocations where consumer_id = ?", (uuid,)).fetchone()[0])


def _build_events(client: httpx.Client, server_id: str) -> list[dict[str, Any]]:
    """The create action's compute build events, oldest first."""
    actions = client.get(f"/servers/{server_id}/os-instance-actions").json()["instanceActions"]
    create = next(a for a in actions if a["action"] == "create")
    events = client.get(f"/servers/{server_id}/os-instance-actions/{create['request_id']}").json()[
        "instanceAction"]["events"]
    return sorted((e for e in events if e["event"] == BUILD), key=lambda e: e["start_time"])


def _services(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {s["host"]: s for s in client.get("/os-services", params={"binary": "nova-compute"}).json()["services"]}


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """compute-1 fails every build; two reschedulable failures in a row disable a host."""
    cloud = _cloud(tmp_path_factory, "autodisable", """
        [fake_driver]
        host_count = 2
        fail_hosts = compute-1
        [compute]
        consecutive_build_service_disable_threshold = 2
        """)
    try:
        yield cloud
    finally:
        stop_cloud(cloud)


def test_a_failure_no_host_can_fix_is_not_rescheduled(two_hosts: Cloud) -> None:
    with two_hosts.image_client() as img:
        image = upload_image(img, fake_fail_permanently="true")
    with two_hosts.client(version=V) as admin:
        server_id = boot(admin, image["id"], networks="none").json()["server"]["id"]
        got = wait_for_status(admin, server_id, {"ERROR"})
        assert got["fault"]["message"].startswith(f"Build of instance {server_id} aborted: Image {image['id']} "
                                                  "is unacceptable")
        builds = _build_events(admin, server_id)
        assert len(builds) == 1 and builds[0]["result"] == "Error"
        assert _allocations(two_hosts, server_id) == 0
        # the image's fault, not the host's: nothing counts towards disabling it
        assert {s["status"] for s in _services(admin).values()} == {"enabled"}
        assert admin.delete(f"/servers/{server_id}").status_code == 204
        wait_gone(admin, server_id)


def test_repeated_build_failures_disable_the_host(two_hosts: Cloud) -> None:
    with two_hosts.image_client() as img:
        image = upload_image(img)
    with two_hosts.client(version=V) as admin:
        failed = []
        for _ in range(2):  # forced onto the failing host: no alternates, so each ends in ERROR there
            server_id = boot(admin, image["id"], networks="none",
                             availability_zone="nova:compute-1").json()["server"]["id"]
            assert wait_for_status(admin, server_id, {"ERROR"})["status"] == "ERROR"
            failed.append(server_id)
        services = _services(admin)
        assert services["compute-1"]["status"] == "disabled"
        assert services["compute-1"]["disabled_reason"] == "Auto-disabled due to 2 build failures"
        assert services["compute-2"]["status"] == "enabled"
        # the scheduler heard at once: a normal boot goes to the working host
        ok = boot(admin, image["id"], networks="none").json()["server"]["id"]
        active = wait_for_status(admin, ok, {"ACTIVE", "ERROR"})
        assert active["status"] == "ACTIVE" and active["OS-EXT-SRV-ATTR:host"] == "compute-2"
        for server_id in [*failed, ok]:
            admin.delete(f"/servers/{server_id}")
        for server_id in [*failed, ok]:
            wait_gone(admin, server_id)
        admin.put(f"/os-services/{services['compute-1']['id']}", json={"status": "enabled"})
        assert _allocations(two_hosts) == 0


def test_conductor_asks_the_scheduler_again_when_alternates_run_out(tmp_path_factory: pytest.TempPathFactory
                                                                    ) -> None:
    """compute-3 is disabled when the server is scheduled (so it is no alternate) and enabled while the build
    fails on compute-1 and compute-2: the third attempt, allowed by max_attempts = 3, finds it."""
    cloud = _cloud(tmp_path_factory, "reask", """
        [fake_driver]
        host_count = 3
        fail_hosts = compute-1,compute-2
        spawn_time = 0.7
        [scheduler]
        max_attempts = 3
        """)
    try:
        with cloud.image_client() as img:
            image = upload_image(img)
        with cloud.client(version=V) as admin:
            third = _services(admin)["compute-3"]["id"]
            assert admin.put(f"/os-services/{third}", json={"status": "disabled"}).status_code == 200
            server_id = boot(admin, image["id"], networks="none").json()["server"]["id"]
            deadline = time.monotonic() + 10
            while not admin.get(f"/servers/{server_id}").json()["server"].get("OS-EXT-SRV-ATTR:host"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert admin.put(f"/os-services/{third}", json={"status": "enabled"}).status_code == 200
            active = wait_for_status(admin, server_id, {"ACTIVE", "ERROR"}, timeout=30)
            assert active["status"] == "ACTIVE", active.get("fault")
            assert active["OS-EXT-SRV-ATTR:host"] == "compute-3"
            builds = _build_events(admin, server_id)
            assert [(e["host"], e["result"]) for e in builds] == [
                ("compute-1", "Error"), ("compute-2", "Error"), ("compute-3", "Success")]
    finally:
        stop_cloud(cloud)


@pytest.fixture(scope="module")
def slow_steps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    cloud = _cloud(tmp_path_factory, "slowsteps", """
        [fake_driver]
        network_time = 1.5
        block_device_time = 1.5
        spawn_time = 1.5
        """)
    try:
        yield cloud
    finally:
        stop_cloud(cloud)


@pytest.mark.parametrize("step", ["networking", "block_device_mapping", "spawning"])
def test_delete_during_each_build_step_wins(slow_steps: Cloud, step: str) -> None:
    with slow_steps.image_client() as img:
        image = upload_image(img)
    with slow_steps.client(version=V) as admin:
        server_id = boot(admin, image["id"], networks="none").json()["server"]["id"]
        deadline = time.monotonic() + 10
        while admin.get(f"/servers/{server_id}").json()["server"]["OS-EXT-STS:task_state"] != step:
            assert time.monotonic() < deadline, f"never saw task_state {step}"
            time.sleep(0.01)
        assert admin.delete(f"/servers/{server_id}").status_code == 204
        wait_gone(admin, server_id, timeout=15)
        assert _allocations(slow_steps, server_id) == 0
        time.sleep(2)  # whatever step was under way has finished by now, and must not have revived anything
        assert admin.get(f"/servers/{server_id}").status_code == 404
        assert _allocations(slow_steps, server_id) == 0
        hypervisors = admin.get("/os-hypervisors/detail").json()["hypervisors"]
        assert sum(h["running_vms"] for h in hypervisors) == 0
        builds = [e for e in _build_events(admin, server_id) if e["result"] == "Success"]
        assert builds == []  # the build never completed


def test_a_success_resets_the_failure_count(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One host failing every second build never reaches two failures in a row: it stays enabled."""
    cloud = _cloud(tmp_path_factory, "reset", """
        [fake_driver]
        host_count = 1
        fail_every_nth_build = 2
        [compute]
        consecutive_build_service_disable_threshold = 2
        [scheduler]
        max_attempts = 1
        """)
    try:
        with cloud.image_client() as img:
            image = upload_image(img)
        with cloud.client(version=V) as admin:
            statuses = []
            for _ in range(4):
                server_id = boot(admin, image["id"], networks="none").json()["server"]["id"]
                statuses.append(wait_for_status(admin, server_id, {"ACTIVE", "ERROR"})["status"])
            assert statuses == ["ACTIVE", "ERROR", "ACTIVE", "ERROR"]
            assert {s["status"] for s in _services(admin).values()} == {"enabled"}
    finally:
        stop_cloud(cloud)
