"""kill -9 of the all-in-one in the middle of a move, then a start on the same data: the compute hosts' start-up
leaves the server in no move's task_state, its migration record over, the allocations exactly the server's on the
host it is on, and the server can be moved again.

The kill lands exactly in the step each test wants: the fake driver's crash points (``fake.<method>``,
stratus/failpoints.py) at the start of that move step; ``[fake_driver] persist_guests`` keeps the simulated
guests (and a resize's left-behind disks) across the restart, as a real hypervisor keeps its domains.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.local_cloud import Cloud, start_cloud
from tests.functional.helpers import boot, upload_image, wait_for_status

CONF = "[fake_driver]\nhost_count = 2\npersist_guests = true\n"
V = "2.56"
HOST = "OS-EXT-SRV-ATTR:host"
NANO = {"VCPU": 1, "MEMORY_MB": 128, "DISK_GB": 1}  # flavor 42
MICRO = {"VCPU": 1, "MEMORY_MB": 192, "DISK_GB": 1}  # flavor 84


def _rows(cloud: Cloud, query: str, *args: Any) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(Path(cloud.state_path) / "stratus.sqlite")) as db:
        db.row_factory = sqlite3.Row
        return list(db.execute(query, args).fetchall())


def allocations(cloud: Cloud, consumer: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in _rows(cloud, "select p.name, a.resource_class, a.used from allocations a join resource_providers p "
                          "on p.id = a.resource_provider_id where a.consumer_id = ?", consumer):
        out.setdefault(r["name"], {})[r["resource_class"]] = r["used"]
    return out


def migration(cloud: Cloud, server_id: str) -> dict[str, Any]:
    return dict(_rows(cloud, "select * from migrations where instance_uuid = ? order by id desc limit 1",
                      server_id)[0])


def instance(cloud: Cloud, server_id: str) -> dict[str, Any]:
    return dict(_rows(cloud, "select vm_state, task_state, host from instances where uuid = ?", server_id)[0])


def act(client: httpx.Client, server_id: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/servers/{server_id}/action", json=body)


def settled(client: httpx.Client, server_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    """The server once it is in ``status`` with no task_state."""
    deadline = time.monotonic() + timeout
    while True:
        server = client.get(f"/servers/{server_id}").json()["server"]
        if server["status"] == status and server["OS-EXT-STS:task_state"] is None:
            return server
        assert time.monotonic() < deadline, (server["status"], server["OS-EXT-STS:task_state"])
        time.sleep(0.05)


@contextlib.contextmanager
def crashed_mid_move(tmp: Path, failpoint: str, before: Callable[[httpx.Client, str], None],
                     move: Callable[[httpx.Client, str], None]) -> Iterator[tuple[Cloud, str, str]]:
    """A cloud armed to die at ``failpoint``: a server booted, ``before`` done, then ``move`` asked, which kills
    the cloud at that point; yields the cloud started again on the same data, the server and its first host."""
    cloud = start_cloud(tmp, CONF, env={"STRATUS_FAILPOINTS": failpoint})
    try:
        with cloud.image_client() as img:
            image = upload_image(img)["id"]
        with cloud.client(version=V) as c:
            resp = boot(c, image, flavor="42", networks="none")
            assert resp.status_code == 202, resp.text
            server = wait_for_status(c, resp.json()["server"]["id"], {"ACTIVE"})
            sid, source = server["id"], server[HOST]
            before(c, sid)
            with contextlib.suppress(httpx.TransportError):  # the kill may beat the 202 out
                move(c, sid)
        assert cloud.proc.wait(timeout=30) == -9, cloud.log()[-3000:]
    finally:
        if cloud.proc.poll() is None:
            cloud.proc.kill()
            cloud.proc.wait()
    restarted = start_cloud(tmp, CONF)
    try:
        yield restarted, sid, source
    finally:
        restarted.proc.kill()
        restarted.proc.wait()


def _nothing(client: httpx.Client, server_id: str) -> None:
    pass


def _resize(client: httpx.Client, server_id: str) -> None:
    assert act(client, server_id, {"resize": {"flavorRef": "84"}}).status_code == 202


def _resized(client: httpx.Client, server_id: str) -> None:
    _resize(client, server_id)
    wait_for_status(client, server_id, {"VERIFY_RESIZE"})


def _live(client: httpx.Client, server_id: str) -> None:
    body = {"os-migrateLive": {"host": None, "block_migration": "auto"}}
    assert act(client, server_id, body).status_code == 202


def _resize_again(c: httpx.Client, cloud: Cloud, sid: str, at: str) -> None:
    """The server, back on ``at`` after the restart, is resized for real this time."""
    _resize(c, sid)
    server = wait_for_status(c, sid, {"VERIFY_RESIZE"})
    assert server[HOST] != at
    assert act(c, sid, {"confirmResize": None}).status_code == 204
    server = settled(c, sid, "ACTIVE")
    assert server["flavor"]["original_name"] == "m1.micro"
    assert allocations(cloud, sid) == {server[HOST]: MICRO}
    assert migration(cloud, sid)["status"] == "confirmed"


def _assert_back_on_the_source(c: httpx.Client, cloud: Cloud, sid: str, source: str) -> None:
    """A resize undone by the restart: running on its source with its old flavor, the migration in error, and
    only the instance's own claim left, on the source."""
    server = settled(c, sid, "ACTIVE")
    assert server[HOST] == source and server["OS-EXT-STS:power_state"] == 1
    assert server["flavor"]["original_name"] == "m1.nano"
    record = migration(cloud, sid)
    assert record["status"] == "error"
    assert allocations(cloud, sid) == {source: NANO}
    assert allocations(cloud, record["uuid"]) == {}


def test_a_resize_killed_while_the_source_hands_its_disks_over_is_reverted(tmp_path: Path) -> None:
    with crashed_mid_move(tmp_path, "fake.migrate_disk_and_power_off", _nothing, _resize) as (cloud, sid, source):
        with cloud.client(version=V) as c:
            _assert_back_on_the_source(c, cloud, sid, source)
            events = c.get(f"/servers/{sid}/os-instance-actions/{_request_id(c, sid, 'resize')}").json()
            assert ("compute_resize_instance", "Error") in [(e["event"], e["result"])
                                                            for e in events["instanceAction"]["events"]]
            _resize_again(c, cloud, sid, source)


def test_a_resize_killed_while_the_destination_starts_the_guest_is_reverted_to_the_source(tmp_path: Path
                                                                                       ) -> None:
    with crashed_mid_move(tmp_path, "fake.finish_migration", _nothing, _resize) as (cloud, sid, source):
        with cloud.client(version=V) as c:
            _assert_back_on_the_source(c, cloud, sid, source)
            _resize_again(c, cloud, sid, source)


def test_a_confirm_killed_on_the_source_is_carried_out(tmp_path: Path) -> None:
    def confirm(c: httpx.Client, sid: str) -> None:
        assert act(c, sid, {"confirmResize": None}).status_code == 204

    with crashed_mid_move(tmp_path, "fake.confirm_migration", _resized, confirm) as (cloud, sid, source):
        with cloud.client(version=V) as c:
            server = settled(c, sid, "ACTIVE")
            assert server[HOST] != source and server["flavor"]["original_name"] == "m1.micro"
            deadline = time.monotonic() + 30
            while (record := migration(cloud, sid))["status"] != "confirmed":
                assert time.monotonic() < deadline, record["status"]
                time.sleep(0.05)
            assert allocations(cloud, sid) == {server[HOST]: MICRO}
            assert allocations(cloud, record["uuid"]) == {}
            assert act(c, sid, {"migrate": None}).status_code == 202  # and it moves again
            assert wait_for_status(c, sid, {"VERIFY_RESIZE"})[HOST] == source


def test_a_revert_killed_on_the_source_is_finished(tmp_path: Path) -> None:
    def revert(c: httpx.Client, sid: str) -> None:
        assert act(c, sid, {"revertResize": None}).status_code == 202

    with crashed_mid_move(tmp_path, "fake.finish_revert_migration", _resized, revert) as (cloud, sid, source):
        assert instance(cloud, sid)["task_state"] in ("resize_reverting", None)
        with cloud.client(version=V) as c:
            server = settled(c, sid, "ACTIVE")
            assert server[HOST] == source and server["flavor"]["original_name"] == "m1.nano"
            record = migration(cloud, sid)
            assert record["status"] == "reverted"
            assert allocations(cloud, sid) == {source: NANO}
            assert allocations(cloud, record["uuid"]) == {}
            _resize_again(c, cloud, sid, source)


def test_a_live_migration_killed_while_it_copies_is_rolled_back(tmp_path: Path) -> None:
    with crashed_mid_move(tmp_path, "fake.live_migration", _nothing, _live) as (cloud, sid, source):
        with cloud.client(version=V) as c:
            server = settled(c, sid, "ACTIVE")
            assert server[HOST] == source and server["OS-EXT-STS:power_state"] == 1
            record = migration(cloud, sid)
            assert (record["migration_type"], record["status"]) == ("live-migration", "error")
            assert allocations(cloud, sid) == {source: NANO}
            assert allocations(cloud, record["uuid"]) == {}
            _live(c, sid)  # and it moves again
            deadline = time.monotonic() + 30
            while migration(cloud, sid)["status"] != "completed":
                assert time.monotonic() < deadline, migration(cloud, sid)["status"]
                time.sleep(0.05)
            server = settled(c, sid, "ACTIVE")
            assert server[HOST] != source
            assert allocations(cloud, sid) == {server[HOST]: NANO}


def test_a_live_migration_killed_after_the_hand_over_is_finished_on_the_destination(tmp_path: Path) -> None:
    with crashed_mid_move(tmp_path, "fake.post_live_migration_at_destination", _nothing, _live) as (
            cloud, sid, source):
        with cloud.client(version=V) as c:
            server = settled(c, sid, "ACTIVE")
            assert server[HOST] != source and server["OS-EXT-STS:power_state"] == 1
            record = migration(cloud, sid)
            assert record["status"] == "completed"
            assert allocations(cloud, sid) == {server[HOST]: NANO}
            assert allocations(cloud, record["uuid"]) == {}
            _live(c, sid)  # and it moves again, back
            deadline = time.monotonic() + 30
            while (again := migration(cloud, sid))["id"] == record["id"] or again["status"] != "completed":
                assert time.monotonic() < deadline, again["status"]
                time.sleep(0.05)
            assert settled(c, sid, "ACTIVE")[HOST] == source


def test_a_shelve_killed_during_its_snapshot_is_undone(tmp_path: Path) -> None:
    def shelve(c: httpx.Client, sid: str) -> None:
        assert act(c, sid, {"shelve": None}).status_code == 202

    with crashed_mid_move(tmp_path, "fake.snapshot", _nothing, shelve) as (cloud, sid, source):
        with cloud.client(version=V) as c:
            server = settled(c, sid, "ACTIVE")
            assert server[HOST] == source and server["OS-EXT-STS:power_state"] == 1
            assert allocations(cloud, sid) == {source: NANO}
        with cloud.image_client() as img:
            names = [i["name"] for i in img.get("/v2/images").json()["images"]]
        assert f"{server['name']}-shelved" not in names  # the queued image of the snapshot that never came
        with cloud.client(version=V) as c:
            shelve(c, sid)  # and it shelves again
            settled(c, sid, "SHELVED_OFFLOADED")
            assert allocations(cloud, sid) == {}


def test_an_offload_killed_while_it_destroys_the_guest_is_carried_out(tmp_path: Path) -> None:
    def shelve(c: httpx.Client, sid: str) -> None:
        assert act(c, sid, {"shelve": None}).status_code == 202

    with crashed_mid_move(tmp_path, "fake.destroy", _nothing, shelve) as (cloud, sid, _):
        with cloud.client(version=V) as c:
            server = settled(c, sid, "SHELVED_OFFLOADED")
            assert server[HOST] is None
            assert allocations(cloud, sid) == {}
            assert act(c, sid, {"unshelve": None}).status_code == 202  # and it comes back
            server = settled(c, sid, "ACTIVE")
            assert allocations(cloud, sid) == {server[HOST]: NANO}


def test_an_unshelve_killed_while_it_spawns_leaves_the_server_offloaded(tmp_path: Path) -> None:
    """Not ERROR (Nova's interrupted build): offloaded, no host, no claim, and it can be unshelved again."""
    cloud = start_cloud(tmp_path, CONF)
    try:
        with cloud.image_client() as img:
            image = upload_image(img)["id"]
        with cloud.client(version=V) as c:
            sid = boot(c, image, flavor="42", networks="none").json()["server"]["id"]
            wait_for_status(c, sid, {"ACTIVE"})
            assert act(c, sid, {"shelve": None}).status_code == 202
            settled(c, sid, "SHELVED_OFFLOADED")
    finally:
        cloud.proc.kill()
        cloud.proc.wait()
    cloud = start_cloud(tmp_path, CONF, env={"STRATUS_FAILPOINTS": "fake.spawn"})  # armed only now
    with cloud.client(version=V) as c, contextlib.suppress(httpx.TransportError):
        assert act(c, sid, {"unshelve": None}).status_code == 202
    assert cloud.proc.wait(timeout=30) == -9, cloud.log()[-3000:]
    assert instance(cloud, sid)["task_state"] == "spawning"
    cloud = start_cloud(tmp_path, CONF)
    try:
        with cloud.client(version=V) as c:
            server = settled(c, sid, "SHELVED_OFFLOADED")
            assert server[HOST] is None
            assert allocations(cloud, sid) == {}
            assert act(c, sid, {"unshelve": None}).status_code == 202
            server = settled(c, sid, "ACTIVE")
            assert allocations(cloud, sid) == {server[HOST]: NANO}
    finally:
        cloud.proc.kill()
        cloud.proc.wait()


def _request_id(client: httpx.Client, server_id: str, action: str) -> str:
    found = client.get(f"/servers/{server_id}/os-instance-actions").json()["instanceActions"]
    return str(next(a["request_id"] for a in found if a["action"] == action))


@pytest.fixture(autouse=True)
def _no_stray_failpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """The restarted cloud must not inherit a crash point from the test runner's environment."""
    monkeypatch.delenv("STRATUS_FAILPOINTS", raising=False)
