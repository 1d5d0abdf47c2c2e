"""Resize, confirm, revert and cold migration through the REST API on the fake driver's simulated hosts.

What each test checks beyond the status: where the server is (``OS-EXT-SRV-ATTR:host``), its flavor, its
migration record and, read straight from the database, every allocation (placement's model: during a move the
instance holds the destination, its migration the source; after it only the instance holds anything).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tempest.lib.api_schema.response.compute.v2_57 import servers as schema_257
from tempest.lib.api_schema.response.compute.v2_71 import servers as schema_271
from tempest.lib.api_schema.response.compute.v2_75 import servers as schema_275
from tempest.lib.api_schema.response.compute.v2_100 import servers as schema_2100

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from tests.functional.helpers import boot, check_schema, fault, upload_image, wait_for_status, wait_gone

V = "2.56"


@pytest.fixture(scope="module")
def cloud4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    cloud = start_cloud(tmp_path_factory.mktemp("moves"), extra_conf="[fake_driver]\nhost_count = 4\n")
    try:
        yield cloud
    finally:
        stop_cloud(cloud)


def _db(cloud: Cloud) -> sqlite3.Connection:
    return sqlite3.connect(Path(cloud.state_path) / "stratus.sqlite")


def allocations(cloud: Cloud) -> dict[str, dict[str, dict[str, int]]]:
    """consumer → provider name → resource class → used, for every allocation."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    with _db(cloud) as db:
        for consumer, provider, rc, used in db.execute(
                "select a.consumer_id, p.name, a.resource_class, a.used from allocations a "
                "join resource_providers p on p.id = a.resource_provider_id"):
            out.setdefault(consumer, {}).setdefault(provider, {})[rc] = used
    return out


def migrations(cloud: Cloud, server_id: str) -> list[dict[str, Any]]:
    with _db(cloud) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("select * from migrations where instance_uuid = ? order by id",
                                            (server_id,))]


def resources(vcpus: int, ram: int, disk: int) -> dict[str, int]:
    return {"VCPU": vcpus, "MEMORY_MB": ram, "DISK_GB": disk}


def wait_migration(cloud: Cloud, server_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        last = migrations(cloud, server_id)[-1]
        if last["status"] == status:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"migration of {server_id} stayed {last['status']}")
        time.sleep(0.05)


def flavor(client: httpx.Client, vcpus: int, ram: int, disk: int, **extra_specs: str) -> str:
    flavor_id = uuid.uuid4().hex[:8]
    resp = client.post("/flavors", json={"flavor": {"name": f"f-{flavor_id}", "id": flavor_id, "vcpus": vcpus,
                                                    "ram": ram, "disk": disk}})
    assert resp.status_code == 200, resp.text
    if extra_specs:
        resp = client.post(f"/flavors/{flavor_id}/os-extra_specs", json={"extra_specs": extra_specs})
        assert resp.status_code == 200, resp.text
    return flavor_id


@pytest.fixture(scope="module")
def image_id(cloud4: Cloud) -> str:
    with cloud4.image_client() as image:
        return str(upload_image(image)["id"])


def active_server(client: httpx.Client, image: str, flavor_ref: str = "42", **extra: Any) -> dict[str, Any]:
    version = client.headers.get("OpenStack-API-Version", "compute 2.1").split()[-1]
    if tuple(int(p) for p in version.split(".")) >= (2, 37):
        extra.setdefault("networks", "none")
    resp = boot(client, image, flavor=flavor_ref, **extra)
    assert resp.status_code == 202, resp.text
    return wait_for_status(client, resp.json()["server"]["id"], {"ACTIVE"})


def act(client: httpx.Client, server_id: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/servers/{server_id}/action", json=body)


HOST = "OS-EXT-SRV-ATTR:host"


def test_resize_confirm_moves_the_claims(cloud4: Cloud, image_id: str) -> None:
    with cloud4.client(version=V) as c:
        server = active_server(c, image_id)
        sid, source = server["id"], server[HOST]
        assert server["OS-DCF:diskConfig"] == "MANUAL"
        resp = act(c, sid, {"resize": {"flavorRef": "84", "OS-DCF:diskConfig": "AUTO"}})
        assert resp.status_code == 202, resp.text
        resized = wait_for_status(c, sid, {"VERIFY_RESIZE"})
        assert resized["OS-DCF:diskConfig"] == "AUTO"
        dest = resized[HOST]
        assert dest != source
        assert resized["flavor"]["original_name"] == "m1.micro"
        migration = migrations(cloud4, sid)[-1]
        assert (migration["status"], migration["migration_type"]) == ("finished", "resize")
        assert (migration["source_compute"], migration["dest_compute"]) == (source, dest)
        held = allocations(cloud4)
        assert held[sid] == {dest: resources(1, 192, 1)}
        assert held[migration["uuid"]] == {source: resources(1, 128, 1)}
        # a server waiting for its confirm refuses another move and a power action, as Nova's does
        msg = fault(act(c, sid, {"resize": {"flavorRef": "1"}}), 409, "conflictingRequest")
        assert msg == f"Cannot 'resize' instance {sid} while it is in vm_state resized"
        msg = fault(act(c, sid, {"os-stop": None}), 409, "conflictingRequest")
        assert msg == f"Cannot 'stop' instance {sid} while it is in vm_state resized"

        resp = act(c, sid, {"confirmResize": None})
        assert resp.status_code == 204, resp.text
        server = wait_for_status(c, sid, {"ACTIVE"})
        assert server[HOST] == dest
        assert wait_migration(cloud4, sid, "confirmed")["id"] == migration["id"]
        held = allocations(cloud4)
        assert held[sid] == {dest: resources(1, 192, 1)} and migration["uuid"] not in held
        # confirmed once: a second confirm is Nova's 409 for an active server
        msg = fault(act(c, sid, {"confirmResize": None}), 409, "conflictingRequest")
        assert msg == f"Cannot 'confirmResize' instance {sid} while it is in vm_state active"
        actions = [a["action"] for a in c.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]]
        assert actions[:2] == ["confirmResize", "resize"]
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)
        assert sid not in allocations(cloud4)


def test_revert_gives_the_source_back(cloud4: Cloud, image_id: str) -> None:
    with cloud4.client(version=V) as c:
        server = active_server(c, image_id)
        sid, source = server["id"], server[HOST]
        assert act(c, sid, {"resize": {"flavorRef": "1"}}).status_code == 202
        resized = wait_for_status(c, sid, {"VERIFY_RESIZE"})
        assert resized["flavor"]["original_name"] == "m1.tiny"
        resp = act(c, sid, {"revertResize": None})
        assert resp.status_code == 202, resp.text
        server = wait_for_status(c, sid, {"ACTIVE"})
        assert server[HOST] == source and server["flavor"]["original_name"] == "m1.nano"
        migration = wait_migration(cloud4, sid, "reverted")
        held = allocations(cloud4)
        assert held[sid] == {source: resources(1, 128, 1)} and migration["uuid"] not in held
        events = c.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]
        revert = next(a for a in events if a["action"] == "revertResize")
        detail = c.get(f"/servers/{sid}/os-instance-actions/{revert['request_id']}").json()["instanceAction"]
        assert {e["event"] for e in detail["events"]} == {"compute_revert_resize", "compute_finish_revert_resize"}
        assert all(e["result"] == "Success" for e in detail["events"])
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)


def test_cold_migrate_and_named_host(cloud4: Cloud, image_id: str) -> None:
    with cloud4.client(version=V) as c:
        server = active_server(c, image_id)
        sid, source = server["id"], server[HOST]
        assert act(c, sid, {"migrate": None}).status_code == 202
        moved = wait_for_status(c, sid, {"VERIFY_RESIZE"})
        assert moved[HOST] != source and moved["flavor"]["original_name"] == "m1.nano"
        assert migrations(cloud4, sid)[-1]["migration_type"] == "migration"
        assert act(c, sid, {"confirmResize": None}).status_code == 204
        server = wait_for_status(c, sid, {"ACTIVE"})

        here = server[HOST]
        target = next(h for h in (f"compute-{i}" for i in range(1, 5)) if h != here)
        assert act(c, sid, {"migrate": {"host": target}}).status_code == 202
        assert wait_for_status(c, sid, {"VERIFY_RESIZE"})[HOST] == target
        assert act(c, sid, {"revertResize": None}).status_code == 202
        assert wait_for_status(c, sid, {"ACTIVE"})[HOST] == here

        assert fault(act(c, sid, {"migrate": {"host": here}}), 400, "badRequest") == (
            "Cannot migrate to the host where the server exists.")
        assert fault(act(c, sid, {"migrate": {"host": "nowhere"}}), 400, "badRequest") == (
            "Compute host nowhere could not be found.")
        with cloud4.client(version="2.55") as old:  # before 2.56 the body is not read: the scheduler chooses
            assert act(old, sid, {"migrate": {"host": here, "anything": 1}}).status_code == 202
        assert wait_for_status(c, sid, {"VERIFY_RESIZE"})[HOST] != here
        assert act(c, sid, {"revertResize": None}).status_code == 202
        assert wait_for_status(c, sid, {"ACTIVE"})[HOST] == here
        with cloud4.client(token="member:demo", version=V) as member:
            assert member.get(f"/servers/{sid}").status_code == 404  # another project's server
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)


def test_resize_refusals(cloud4: Cloud, image_id: str) -> None:
    with cloud4.client(version=V) as c:
        sid = active_server(c, image_id)["id"]
        before = allocations(cloud4)[sid]
        assert fault(act(c, sid, {"resize": {"flavorRef": "42"}}), 400, "badRequest") == (
            "Resize requires a flavor change.")
        assert fault(act(c, sid, {"resize": {"flavorRef": "nope"}}), 400, "badRequest") == (
            "Unable to locate requested flavor.")
        fault(act(c, sid, {"resize": {}}), 400, "badRequest")
        assert fault(act(c, sid, {"confirmResize": None}), 409, "conflictingRequest") == (
            f"Cannot 'confirmResize' instance {sid} while it is in vm_state active")
        assert fault(act(c, sid, {"revertResize": None}), 409, "conflictingRequest") == (
            f"Cannot 'revertResize' instance {sid} while it is in vm_state active")
        # nothing was changed by the refused requests
        assert allocations(cloud4)[sid] == before and migrations(cloud4, sid) == []
        assert c.get(f"/servers/{sid}").json()["server"]["status"] == "ACTIVE"
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)


def test_policy_non_admin(cloud4: Cloud, image_id: str) -> None:
    with cloud4.client(token="alice:demo", version=V) as c:
        sid = active_server(c, image_id)["id"]
        assert fault(act(c, sid, {"migrate": None}), 403, "forbidden") == (
            "Policy doesn't allow os_compute_api:os-migrate-server:migrate to be performed.")
        assert act(c, sid, {"resize": {"flavorRef": "84"}}).status_code == 202  # the owner may resize
        wait_for_status(c, sid, {"VERIFY_RESIZE"})
        assert act(c, sid, {"confirmResize": None}).status_code == 204
        wait_for_status(c, sid, {"ACTIVE"})
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)


def test_failed_destination_reverts_with_nothing_leaked(cloud4: Cloud, image_id: str) -> None:
    with cloud4.client(version=V) as c:
        every_host = ",".join(f"compute-{i}" for i in range(1, 5))
        broken = flavor(c, 1, 256, 1, **{"fake:fail_finish_on_hosts": every_host})
        server = active_server(c, image_id)
        sid, source = server["id"], server[HOST]
        assert act(c, sid, {"resize": {"flavorRef": broken}}).status_code == 202
        migration = wait_migration(cloud4, sid, "error")
        server = wait_for_status(c, sid, {"ACTIVE"})
        deadline = time.monotonic() + 10
        while server["OS-EXT-STS:task_state"] is not None and time.monotonic() < deadline:
            time.sleep(0.05)
            server = c.get(f"/servers/{sid}").json()["server"]
        assert server[HOST] == source and server["flavor"]["original_name"] == "m1.nano"
        assert server["OS-EXT-STS:task_state"] is None and server["OS-EXT-STS:power_state"] == 1
        held = allocations(cloud4)
        assert held[sid] == {source: resources(1, 128, 1)} and migration["uuid"] not in held
        resize = next(a for a in c.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]
                      if a["action"] == "resize")
        events = {e["event"]: e["result"] for e in c.get(
            f"/servers/{sid}/os-instance-actions/{resize['request_id']}").json()["instanceAction"]["events"]}
        assert events["compute_finish_resize"] == "Error"
        assert events["compute_finish_revert_resize"] == "Success"
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)


def test_refusing_destinations_reschedule_to_an_alternate(cloud4: Cloud, image_id: str) -> None:
    with cloud4.client(version=V) as c:
        # compute-4 is the least free host (the RAM weigher ranks it last); compute-2 and compute-3 refuse
        fillers = [active_server(c, image_id, "2", availability_zone="nova:compute-4")["id"] for _ in range(2)]
        picky = flavor(c, 1, 256, 1, **{"fake:fail_on_hosts": "compute-2,compute-3"})
        sid = active_server(c, image_id, availability_zone="nova:compute-1")["id"]
        assert act(c, sid, {"resize": {"flavorRef": picky}}).status_code == 202
        server = wait_for_status(c, sid, {"VERIFY_RESIZE"})
        assert server[HOST] == "compute-4"
        resize = next(a for a in c.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]
                      if a["action"] == "resize")
        events = c.get(f"/servers/{sid}/os-instance-actions/{resize['request_id']}").json()["instanceAction"]
        preps = sorted(e["result"] for e in events["events"] if e["event"] == "compute_prep_resize")
        assert preps == ["Error", "Error", "Success"]
        held = allocations(cloud4)
        assert held[sid] == {"compute-4": resources(1, 256, 1)}
        assert held[migrations(cloud4, sid)[-1]["uuid"]] == {"compute-1": resources(1, 128, 1)}
        assert act(c, sid, {"revertResize": None}).status_code == 202
        assert wait_for_status(c, sid, {"ACTIVE"})[HOST] == "compute-1"
        assert allocations(cloud4)[sid] == {"compute-1": resources(1, 128, 1)}

        # every destination refusing: the resize ends cleanly, the server as it was with a fault
        nowhere = flavor(c, 1, 256, 1, **{"fake:fail_on_hosts": "compute-2,compute-3,compute-4"})
        assert act(c, sid, {"resize": {"flavorRef": nowhere}}).status_code == 202
        migration = wait_migration(cloud4, sid, "error")
        server = wait_for_status(c, sid, {"ACTIVE"})
        assert server[HOST] == "compute-1" and server["flavor"]["original_name"] == "m1.nano"
        held = allocations(cloud4)
        assert held[sid] == {"compute-1": resources(1, 128, 1)} and migration["uuid"] not in held
        for server_id in [sid, *fillers]:
            c.delete(f"/servers/{server_id}")
        for server_id in [sid, *fillers]:
            wait_gone(c, server_id)


def test_delete_while_waiting_for_confirm(cloud4: Cloud, image_id: str) -> None:
    with cloud4.client(version=V) as c:
        sid = active_server(c, image_id)["id"]
        assert act(c, sid, {"resize": {"flavorRef": "84"}}).status_code == 202
        wait_for_status(c, sid, {"VERIFY_RESIZE"})
        migration = migrations(cloud4, sid)[-1]
        assert c.delete(f"/servers/{sid}").status_code == 204
        wait_gone(c, sid)
        held = allocations(cloud4)
        assert sid not in held and migration["uuid"] not in held
        assert migrations(cloud4, sid)[-1]["status"] == "confirmed"


@pytest.fixture(scope="module")
def one_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    cloud = start_cloud(tmp_path_factory.mktemp("samehost"), extra_conf="""
        [DEFAULT]
        allow_resize_to_same_host = true
        shelved_offload_time = -1
        [api]
        enable_instance_password = false
        [fake_driver]
        host_count = 1
        """)
    try:
        yield cloud
    finally:
        stop_cloud(cloud)


def test_resize_to_same_host(one_host: Cloud) -> None:
    with one_host.image_client() as image:
        image_ref = str(upload_image(image)["id"])
    with one_host.client(version=V) as c:
        created = boot(c, image_ref, flavor="42", networks="none")
        assert created.status_code == 202 and "adminPass" not in created.json()["server"]  # the option is off
        sid = wait_for_status(c, created.json()["server"]["id"], {"ACTIVE"})["id"]
        # a cold migration never goes to the server's own host
        assert fault(act(c, sid, {"migrate": None}), 400, "badRequest").startswith(
            "No valid host was found. No valid host found for cold migrate")
        assert migrations(one_host, sid)[-1]["status"] == "error"
        assert allocations(one_host)[sid] == {"compute-1": resources(1, 128, 1)}
        assert c.get(f"/servers/{sid}").json()["server"]["status"] == "ACTIVE"

        assert act(c, sid, {"resize": {"flavorRef": "84"}}).status_code == 202
        assert wait_for_status(c, sid, {"VERIFY_RESIZE"})[HOST] == "compute-1"
        migration = migrations(one_host, sid)[-1]
        held = allocations(one_host)
        assert held[sid] == {"compute-1": resources(1, 192, 1)}
        assert held[migration["uuid"]] == {"compute-1": resources(1, 128, 1)}
        assert act(c, sid, {"revertResize": None}).status_code == 202
        server = wait_for_status(c, sid, {"ACTIVE"})
        assert server["flavor"]["original_name"] == "m1.nano" and server["OS-EXT-STS:power_state"] == 1
        assert allocations(one_host) == {sid: {"compute-1": resources(1, 128, 1)}}


@pytest.fixture(scope="module")
def auto_confirm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    cloud = start_cloud(tmp_path_factory.mktemp("autoconfirm"), extra_conf="""
        [DEFAULT]
        resize_confirm_window = 1
        shelved_offload_time = 1
        shelved_poll_interval = 1
        reclaim_instance_interval = 2
        [fake_driver]
        host_count = 2
        """)
    try:
        yield cloud
    finally:
        stop_cloud(cloud)


def test_resize_confirm_window(auto_confirm: Cloud) -> None:
    with auto_confirm.image_client() as image:
        image_ref = str(upload_image(image)["id"])
    with auto_confirm.client(version=V) as c:
        server = active_server(c, image_ref)
        sid = server["id"]
        assert act(c, sid, {"migrate": None}).status_code == 202
        migration = wait_migration(auto_confirm, sid, "confirmed", timeout=60)
        server = wait_for_status(c, sid, {"ACTIVE"})
        assert server[HOST] == migration["dest_compute"]
        assert allocations(auto_confirm) == {sid: {migration["dest_compute"]: resources(1, 128, 1)}}
        actions = [a["action"] for a in c.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]]
        assert actions[:2] == ["confirmResize", "migrate"]


def test_os_migrations_views_and_filters(cloud4: Cloud, image_id: str) -> None:
    from tempest.lib.api_schema.response.compute.v2_1 import migrations as schema_v21
    from tempest.lib.api_schema.response.compute.v2_23 import migrations as schema_v223
    from tempest.lib.api_schema.response.compute.v2_59 import migrations as schema_v259

    with cloud4.client(version=V) as c:
        sid = active_server(c, image_id)["id"]
        assert act(c, sid, {"resize": {"flavorRef": "84"}}).status_code == 202
        wait_for_status(c, sid, {"VERIFY_RESIZE"})
        assert act(c, sid, {"confirmResize": None}).status_code == 204
        wait_migration(cloud4, sid, "confirmed")
        assert act(c, sid, {"migrate": None}).status_code == 202
        wait_for_status(c, sid, {"VERIFY_RESIZE"})
        mine = migrations(cloud4, sid)
    first, second = mine[-2], mine[-1]
    with cloud4.client(version="2.1") as c:
        body = check_schema(schema_v21.list_migrations, c.get("/os-migrations", params={"instance_uuid": sid}))
        assert [m["id"] for m in body["migrations"]] == [first["id"], second["id"]]  # oldest first before 2.59
        shown = body["migrations"][0]
        assert (shown["status"], shown["source_compute"], shown["dest_compute"]) == (
            "confirmed", first["source_compute"], first["dest_compute"])
        assert shown["old_instance_type_id"] != shown["new_instance_type_id"]
        assert "migration_type" not in shown and "uuid" not in shown
        only = c.get("/os-migrations", params={"instance_uuid": sid, "status": "finished"}).json()["migrations"]
        assert [m["id"] for m in only] == [second["id"]]
        on_host = c.get("/os-migrations", params={"host": first["source_compute"], "instance_uuid": sid})
        assert first["id"] in [m["id"] for m in on_host.json()["migrations"]]
        assert c.get("/os-migrations", params={"whatever": "x"}).status_code == 200  # lenient before 2.59
    with cloud4.client(version="2.23") as c:
        body = check_schema(schema_v223.list_migrations, c.get("/os-migrations", params={"instance_uuid": sid}))
        assert [m["migration_type"] for m in body["migrations"]] == ["resize", "migration"]
    with cloud4.client(version="2.59") as c:
        body = check_schema(schema_v259.list_migrations, c.get("/os-migrations", params={"instance_uuid": sid}))
        assert [m["uuid"] for m in body["migrations"]] == [second["uuid"], first["uuid"]]  # newest first
        body = c.get("/os-migrations", params={"instance_uuid": sid, "limit": 1}).json()
        assert [m["uuid"] for m in body["migrations"]] == [second["uuid"]]
        next_href = body["migrations_links"][0]["href"]
        assert f"marker={second['uuid']}" in next_href
        rest = c.get("/os-migrations", params={"instance_uuid": sid, "limit": 1, "marker": second["uuid"]})
        assert [m["uuid"] for m in rest.json()["migrations"]] == [first["uuid"]]
        assert fault(c.get("/os-migrations", params={"marker": "nope"}), 400, "badRequest") == (
            "Marker nope could not be found.")
        fault(c.get("/os-migrations", params={"whatever": "x"}), 400, "badRequest")
        since = c.get("/os-migrations", params={"changes-since": "2999-01-01T00:00:00Z"}).json()
        assert since["migrations"] == []
    with cloud4.client(token="alice:demo", version="2.59") as c:  # a member, not the project's manager
        assert fault(c.get("/os-migrations"), 403, "forbidden") == (
            "Policy doesn't allow os_compute_api:os-migrations:index to be performed.")
    with cloud4.client(version=V) as c:
        assert act(c, sid, {"confirmResize": None}).status_code == 204
        wait_for_status(c, sid, {"ACTIVE"})
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)


def live(client: httpx.Client, server_id: str, **args: Any) -> httpx.Response:
    return act(client, server_id, {"os-migrateLive": {"host": None, "block_migration": "auto", **args}})


def test_live_migration(cloud4: Cloud, image_id: str) -> None:
    with cloud4.client(version="2.30") as c:
        server = active_server(c, image_id)
        sid, source = server["id"], server[HOST]
        assert live(c, sid).status_code == 202
        migration = wait_migration(cloud4, sid, "completed")
        server = wait_for_status(c, sid, {"ACTIVE"})
        assert server[HOST] == migration["dest_compute"] != source
        assert server["OS-EXT-STS:task_state"] is None and server["OS-EXT-STS:power_state"] == 1
        assert migration["migration_type"] == "live-migration"
        assert allocations(cloud4) .get(migration["uuid"]) is None
        assert allocations(cloud4)[sid] == {server[HOST]: resources(1, 128, 1)}
        actions = c.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]
        assert actions[0]["action"] == "live-migration"
        events = {e["event"]: e["result"] for e in c.get(
            f"/servers/{sid}/os-instance-actions/{actions[0]['request_id']}").json()["instanceAction"]["events"]}
        assert events == dict.fromkeys(("conductor_live_migrate_instance", "compute_check_can_live_migrate_destination",
                                        "compute_pre_live_migration", "compute_live_migration",
                                        "compute_post_live_migration_at_destination"), "Success")

        # a named host, forced past the scheduler (2.30), and a paused server stays paused
        here = server[HOST]
        target = next(h for h in (f"compute-{i}" for i in range(1, 5)) if h != here)
        assert act(c, sid, {"pause": None}).status_code == 202
        wait_for_status(c, sid, {"PAUSED"})
        assert live(c, sid, host=target, force=True).status_code == 202
        wait_migration(cloud4, sid, "completed")
        server = wait_for_status(c, sid, {"PAUSED"})
        assert server[HOST] == target and server["OS-EXT-STS:power_state"] == 3

        # refusals before 2.34 are the request's: the own host, and no disk copy between hosts sharing no storage
        assert fault(live(c, sid, host=target), 400, "badRequest") == (
            f"Unable to migrate instance ({sid}) to current host ({target}).")
        msg = fault(live(c, sid, block_migration=False), 400, "badRequest")
        assert msg.startswith("Migration pre-check error:") and "shared storage" in msg
        assert c.get(f"/servers/{sid}").json()["server"]["status"] == "PAUSED"
        assert allocations(cloud4)[sid] == {target: resources(1, 128, 1)}
        assert [m["status"] for m in migrations(cloud4, sid)][-2:] == ["error", "error"]
        assert fault(live(c, sid, host="nowhere"), 400, "badRequest") == "Compute host nowhere could not be found."
        assert act(c, sid, {"unpause": None}).status_code == 202
        wait_for_status(c, sid, {"ACTIVE"})
        assert act(c, sid, {"os-stop": None}).status_code == 202
        wait_for_status(c, sid, {"SHUTOFF"})
        assert fault(live(c, sid), 409, "conflictingRequest") == (
            f"Cannot 'os-migrateLive' instance {sid} while it is in vm_state stopped")
    with cloud4.client(version="2.34") as c:  # from 2.34 the checks run after the answer
        assert act(c, sid, {"os-start": None}).status_code == 202
        wait_for_status(c, sid, {"ACTIVE"})
        assert live(c, sid, block_migration=False).status_code == 202
        wait_migration(cloud4, sid, "error")
        server = wait_for_status(c, sid, {"ACTIVE"})
        assert server[HOST] == target and allocations(cloud4)[sid] == {target: resources(1, 128, 1)}
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)


def test_live_migration_abort_and_force_complete(cloud4: Cloud, image_id: str) -> None:
    with cloud4.client(version="2.59") as c:
        slow = flavor(c, 1, 128, 1, **{"fake:live_migration_time": "30"})
        server = active_server(c, image_id, slow)
        sid, source = server["id"], server[HOST]
        assert live(c, sid).status_code == 202
        migration = wait_migration(cloud4, sid, "running")
        listed = c.get(f"/servers/{sid}/migrations").json()["migrations"]
        assert [(m["id"], m["status"], m["server_uuid"], m["uuid"]) for m in listed] == [
            (migration["id"], "running", sid, migration["uuid"])]
        assert listed[0]["memory_total_bytes"] == 128 * 1024 * 1024
        shown = c.get(f"/servers/{sid}/migrations/{migration['id']}").json()["migration"]
        assert shown["source_compute"] == source
        # the copy's progress reaches the record while it runs (the source writes it once a second)
        deadline = time.monotonic() + 10
        while shown["memory_processed_bytes"] == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            shown = c.get(f"/servers/{sid}/migrations/{migration['id']}").json()["migration"]
        assert 0 < shown["memory_processed_bytes"] < shown["memory_total_bytes"], shown
        assert shown["memory_remaining_bytes"] == shown["memory_total_bytes"] - shown["memory_processed_bytes"]
        msg = fault(act(c, sid, {"resize": {"flavorRef": "84"}}), 409, "conflictingRequest")
        assert msg == f"Cannot 'resize' instance {sid} while it is in task_state migrating"
        assert c.delete(f"/servers/{sid}/migrations/{migration['id']}").status_code == 202
        assert wait_migration(cloud4, sid, "cancelled")["id"] == migration["id"]
        server = wait_for_status(c, sid, {"ACTIVE"})
        deadline = time.monotonic() + 10
        while server["OS-EXT-STS:task_state"] is not None and time.monotonic() < deadline:
            time.sleep(0.05)
            server = c.get(f"/servers/{sid}").json()["server"]
        assert server[HOST] == source and server["OS-EXT-STS:task_state"] is None
        assert allocations(cloud4)[sid] == {source: resources(1, 128, 1)}
        assert migration["uuid"] not in allocations(cloud4)
        assert c.get(f"/servers/{sid}/migrations").json()["migrations"] == []
        assert fault(c.get(f"/servers/{sid}/migrations/{migration['id']}"), 404, "itemNotFound") == (
            f"Live migration {migration['id']} for server {sid} is not in progress.")
        assert fault(c.delete(f"/servers/{sid}/migrations/{migration['id']}"), 409, "conflictingRequest") == (
            f"Cannot 'abort live migration' instance {sid} while it is in task_state None")

        started = time.monotonic()
        assert live(c, sid).status_code == 202
        migration = wait_migration(cloud4, sid, "running")
        resp = c.post(f"/servers/{sid}/migrations/{migration['id']}/action", json={"force_complete": None})
        assert resp.status_code == 202, resp.text
        wait_migration(cloud4, sid, "completed")
        assert time.monotonic() - started < 25  # finished when forced, not after its 30 s
        assert wait_for_status(c, sid, {"ACTIVE"})[HOST] != source
        assert fault(c.post(f"/servers/{sid}/migrations/{migration['id']}/action", json={"force_complete": None}),
                     409, "conflictingRequest").startswith(f"Cannot 'force_complete' instance {sid}")
    with cloud4.client(version="2.22") as old:
        assert old.get(f"/servers/{sid}/migrations").status_code == 404  # listed from 2.23
    with cloud4.client(version="2.59") as c:
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)


def _force_down(client: httpx.Client, host: str, down: bool) -> None:
    service = next(s for s in client.get("/os-services", params={"binary": "nova-compute"}).json()["services"]
                   if s["host"] == host)
    resp = client.put(f"/os-services/{service['id']}", json={"forced_down": down})
    assert resp.status_code == 200, resp.text


def test_evacuate_from_a_host_that_is_down(tmp_path: Path) -> None:
    conf = "[fake_driver]\nhost_count = 4\n"
    cloud = start_cloud(tmp_path, extra_conf=conf)
    try:
        evacuated = _evacuate_story(cloud)
    finally:
        stop_cloud(cloud)
    # the sources start again: each drops what its evacuations left (guest, usage), the records are completed
    restarted = start_cloud(tmp_path, extra_conf=conf)
    try:
        deadline = time.monotonic() + 30
        for server_id, record in evacuated:
            while next(m for m in migrations(restarted, server_id) if m["id"] == record["id"])["status"] != "completed":
                assert time.monotonic() < deadline, migrations(restarted, server_id)
                time.sleep(0.1)
            assert record["uuid"] not in allocations(restarted)
        with restarted.client(version="2.53") as admin:
            for host in ("compute-2", "compute-4"):
                _force_down(admin, host, False)
    finally:
        stop_cloud(restarted)


def _evacuate_story(cloud: Cloud) -> list[tuple[str, dict[str, Any]]]:
    with cloud.image_client() as image:
        image_ref = str(upload_image(image)["id"])
    with cloud.client(version="2.29") as c:
        server = active_server(c, image_ref, availability_zone="nova:compute-2")
        sid = server["id"]
        assert fault(act(c, sid, {"evacuate": {}}), 400, "badRequest") == (
            "Compute service of compute-2 is still in use.")
        with cloud.client(version="2.53") as admin:
            _force_down(admin, "compute-2", True)
        assert fault(act(c, sid, {"evacuate": {"host": "compute-2"}}), 400, "badRequest") == (
            "The target host can't be the same one.")
        assert fault(act(c, sid, {"evacuate": {"host": "nowhere"}}), 404, "itemNotFound") == (
            "Compute host nowhere not found.")
        with cloud.client(token="alice:demo", version="2.29") as member:
            fault(act(member, sid, {"evacuate": {}}), 404, "itemNotFound")  # not the member's server
        resp = act(c, sid, {"evacuate": {"host": "compute-3", "force": True}})
        assert resp.status_code == 200 and not resp.content, resp.text
        migration = wait_migration(cloud, sid, "done")
        server = wait_for_status(c, sid, {"ACTIVE"})
        assert server[HOST] == "compute-3" and migration["migration_type"] == "evacuation"
        held = allocations(cloud)
        # the source is down: its usage stays, held by the evacuation, until it starts again
        assert held[sid] == {"compute-3": resources(1, 128, 1)}
        assert held[migration["uuid"]] == {"compute-2": resources(1, 128, 1)}
        actions = [a["action"] for a in c.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]]
        assert actions[0] == "evacuate"

        # before 2.14: onSharedStorage is required, the new password is in the answer
        other = active_server(c, image_ref, availability_zone="nova:compute-4")["id"]
        with cloud.client(version="2.53") as admin:
            _force_down(admin, "compute-4", True)
        with cloud.client(version="2.13") as old:
            fault(act(old, other, {"evacuate": {}}), 400, "badRequest")
            assert fault(act(old, other, {"evacuate": {"onSharedStorage": True, "adminPass": "x"}}), 400,
                         "badRequest") == "admin password can't be changed on existing disk"
            resp = act(old, other, {"evacuate": {"onSharedStorage": False}})
            assert resp.status_code == 200 and len(resp.json()["adminPass"]) == 12, resp.text
        other_migration = wait_migration(cloud, other, "done")
        assert wait_for_status(c, other, {"ACTIVE"})[HOST] not in ("compute-2", "compute-4")
        # on "shared storage" the simulated hosts do not have: the evacuation fails, the server in ERROR
        with cloud.client(version="2.53") as admin:
            _force_down(admin, "compute-3", True)
        with cloud.client(version="2.13") as old:
            assert act(old, sid, {"evacuate": {"onSharedStorage": True}}).status_code == 200
        wait_migration(cloud, sid, "failed")
        server = wait_for_status(c, sid, {"ERROR"})
        assert server[HOST] == "compute-3"
        assert allocations(cloud)[sid] == {"compute-3": resources(1, 128, 1)}
        with cloud.client(version="2.53") as admin:
            _force_down(admin, "compute-3", False)
            service = next(s for s in admin.get("/os-services", params={"host": "compute-2"}).json()["services"])
            assert admin.put(f"/os-services/{service['id']}", json={"forced_down": False}).status_code == 400

    return [(sid, migration), (other, other_migration)]


def _image_status(cloud: Cloud, image_id: str) -> int:
    with cloud.image_client() as image:
        return image.get(f"/v2/images/{image_id}").status_code


def test_shelve_offloads_at_once_and_unshelve_schedules_anew(cloud4: Cloud, image_id: str) -> None:
    with cloud4.client(version=V) as c:
        server = active_server(c, image_id)
        sid = server["id"]
        assert act(c, sid, {"shelve": None}).status_code == 202
        server = wait_for_status(c, sid, {"SHELVED_OFFLOADED"})
        assert server[HOST] is None and sid not in allocations(cloud4)
        with cloud4.image_client() as image:
            shelved = [i for i in image.get("/v2/images").json()["images"]
                       if i["name"] == f"{server['name']}-shelved"]
        assert len(shelved) == 1 and shelved[0]["status"] == "active"
        assert fault(act(c, sid, {"os-start": None}), 409, "conflictingRequest") == (
            f"Instance {sid} is not ready")  # Nova checks the host first for start
        assert fault(act(c, sid, {"shelve": None}), 409, "conflictingRequest") == (
            f"Cannot 'shelve' instance {sid} while it is in vm_state shelved_offloaded")
        assert act(c, sid, {"unshelve": None}).status_code == 202
        server = wait_for_status(c, sid, {"ACTIVE"})
        assert server[HOST] is not None
        assert allocations(cloud4)[sid] == {server[HOST]: resources(1, 128, 1)}
        deadline = time.monotonic() + 10
        while _image_status(cloud4, shelved[0]["id"]) != 404:  # the snapshot goes once unshelved
            assert time.monotonic() < deadline
            time.sleep(0.1)
        names = [a["action"] for a in c.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]]
        assert names[:2] == ["unshelve", "shelve"]
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)


def test_shelve_kept_then_offloaded_on_request(one_host: Cloud) -> None:
    with one_host.image_client() as image:
        image_ref = str(upload_image(image)["id"])
    with one_host.client(version=V) as c:
        sid = active_server(c, image_ref)["id"]
        for server_id in [s["id"] for s in c.get("/servers").json()["servers"] if s["id"] != sid]:
            c.delete(f"/servers/{server_id}")
        assert act(c, sid, {"shelve": None}).status_code == 202
        server = wait_for_status(c, sid, {"SHELVED"})  # shelved_offload_time = -1: never offloaded by itself
        assert server[HOST] == "compute-1" and server["OS-EXT-STS:power_state"] == 4
        assert allocations(one_host)[sid] == {"compute-1": resources(1, 128, 1)}
        assert act(c, sid, {"unshelve": None}).status_code == 202  # on its host, its guest started again
        server = wait_for_status(c, sid, {"ACTIVE"})
        assert server["OS-EXT-STS:power_state"] == 1
        assert act(c, sid, {"shelve": None}).status_code == 202
        wait_for_status(c, sid, {"SHELVED"})
        with one_host.client(token="alice:demo", version=V) as member:
            mine = active_server(member, image_ref)["id"]
            assert act(member, mine, {"shelve": None}).status_code == 202
            wait_for_status(member, mine, {"SHELVED"})
            assert fault(act(member, mine, {"shelveOffload": None}), 403, "forbidden") == (
                "Policy doesn't allow os_compute_api:os-shelve:shelve_offload to be performed.")
            member.delete(f"/servers/{mine}")
            wait_gone(member, mine)
        assert act(c, sid, {"shelveOffload": None}).status_code == 202
        server = wait_for_status(c, sid, {"SHELVED_OFFLOADED"})
        assert server[HOST] is None and sid not in allocations(one_host)
        assert act(c, sid, {"unshelve": None}).status_code == 202
        assert wait_for_status(c, sid, {"ACTIVE"})[HOST] == "compute-1"
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)


def test_shelved_offload_time(auto_confirm: Cloud) -> None:
    with auto_confirm.image_client() as image:
        image_ref = str(upload_image(image)["id"])
    with auto_confirm.client(version=V) as c:
        sid = active_server(c, image_ref)["id"]
        assert act(c, sid, {"shelve": None}).status_code == 202
        wait_for_status(c, sid, {"SHELVED"})
        server = wait_for_status(c, sid, {"SHELVED_OFFLOADED"}, timeout=30)  # by the periodic task
        assert server[HOST] is None and sid not in allocations(auto_confirm)
        names = [a["action"] for a in c.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]]
        assert names[0] == "shelve"  # the offload is the service's, under no user action
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)


def test_rebuild_in_place(cloud4: Cloud, image_id: str) -> None:
    with cloud4.image_client() as image:
        other = upload_image(image, name="other")["id"]
        big = upload_image(image, min_disk=50)["id"]
    with cloud4.client(version="2.57") as c:
        keypair = c.post("/os-keypairs", json={"keypair": {"name": f"k-{uuid.uuid4().hex[:6]}"}}).json()["keypair"]
        server = active_server(c, image_id)
        sid, here = server["id"], server[HOST]
        before = allocations(cloud4)[sid]
        resp = act(c, sid, {"rebuild": {"imageRef": other, "name": "rebuilt", "metadata": {"k": "v"},
                                        "key_name": keypair["name"], "user_data": "aGVsbG8=",
                                        "adminPass": "s3cret", "preserve_ephemeral": False}})
        assert resp.status_code == 202, resp.text
        body = resp.json()["server"]
        assert body["id"] == sid and body["adminPass"] == "s3cret" and body["image"]["id"] == other
        check_schema(schema_257.rebuild_server_with_admin_pass, resp)  # key_name 2.54, user_data 2.57
        assert (body["key_name"], body["user_data"]) == (keypair["name"], "aGVsbG8=")
        assert "OS-EXT-SRV-ATTR:user_data" not in body
        server = wait_for_status(c, sid, {"ACTIVE"})
        assert (server["name"], server["metadata"], server["key_name"], server[HOST]) == (
            "rebuilt", {"k": "v"}, keypair["name"], here)
        assert server["image"]["id"] == other and allocations(cloud4)[sid] == before
        events = c.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]
        assert events[0]["action"] == "rebuild"
        # a stopped server is rebuilt stopped
        assert act(c, sid, {"os-stop": None}).status_code == 202
        wait_for_status(c, sid, {"SHUTOFF"})
        assert act(c, sid, {"rebuild": {"imageRef": image_id}}).status_code == 202
        server = wait_for_status(c, sid, {"SHUTOFF"})
        deadline = time.monotonic() + 10
        while server["OS-EXT-STS:task_state"] is not None and time.monotonic() < deadline:
            time.sleep(0.05)
            server = c.get(f"/servers/{sid}").json()["server"]
        assert server["image"]["id"] == image_id and server["OS-EXT-STS:task_state"] is None
        # refusals change nothing
        assert fault(act(c, sid, {"rebuild": {"imageRef": str(uuid.uuid4())}}), 400, "badRequest") == (
            "Cannot find image for rebuild")
        assert fault(act(c, sid, {"rebuild": {"imageRef": big}}), 400, "badRequest") == (
            "Flavor's disk is too small for requested image.")
        assert fault(act(c, sid, {"rebuild": {"imageRef": image_id, "key_name": "nope"}}), 400, "badRequest") == (
            "Invalid key_name provided.")
        fault(act(c, sid, {"rebuild": {"imageRef": image_id, "personality": []}}), 400, "badRequest")
        assert c.get(f"/servers/{sid}").json()["server"]["image"]["id"] == image_id
        assert act(c, sid, {"shelve": None}).status_code == 202
        wait_for_status(c, sid, {"SHELVED_OFFLOADED"})
        assert fault(act(c, sid, {"rebuild": {"imageRef": image_id}}), 409, "conflictingRequest") == (
            f"Cannot 'rebuild' instance {sid} while it is in vm_state shelved_offloaded")
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)
    # from 2.71 the server's groups, from 2.75 the whole server body (an admin's too, user_data as user_data)
    for version, schema in (("2.71", schema_271.rebuild_server_with_admin_pass),
                            ("2.75", schema_275.rebuild_server_with_admin_pass),
                            ("2.100", schema_2100.rebuild_server_with_admin_pass)):
        with cloud4.client(version=version) as c:
            server = active_server(c, image_id)
            body = check_schema(schema, act(c, server["id"], {"rebuild": {"imageRef": image_id}}))["server"]
            assert body["server_groups"] == [] and body["user_data"] is None, version
            wait_for_status(c, server["id"], {"ACTIVE"})
            c.delete(f"/servers/{server['id']}")
            wait_gone(c, server["id"])


def test_reset_state_and_crash_dump(cloud4: Cloud, image_id: str) -> None:
    with cloud4.client(version="2.17") as c:
        sid = active_server(c, image_id)["id"]
        assert act(c, sid, {"trigger_crash_dump": None}).status_code == 202
        deadline = time.monotonic() + 10
        while "NMI received" not in c.post(f"/servers/{sid}/action",
                                           json={"os-getConsoleOutput": {"length": 5}}).json()["output"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert act(c, sid, {"os-resetState": {"state": "error"}}).status_code == 202
        assert c.get(f"/servers/{sid}").json()["server"]["status"] == "ERROR"
        fault(act(c, sid, {"os-resetState": {"state": "paused"}}), 400, "badRequest")
        assert act(c, sid, {"os-resetState": {"state": "active"}}).status_code == 202
        assert c.get(f"/servers/{sid}").json()["server"]["status"] == "ACTIVE"
        names = [a["action"] for a in c.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]]
        assert names[:3] == ["resetState", "resetState", "trigger_crash_dump"]
        with cloud4.client(version="2.16") as old:
            assert fault(act(old, sid, {"trigger_crash_dump": None}), 404, "itemNotFound") == (
                "The resource could not be found.")
        assert act(c, sid, {"os-stop": None}).status_code == 202
        wait_for_status(c, sid, {"SHUTOFF"})
        assert fault(act(c, sid, {"trigger_crash_dump": None}), 409, "conflictingRequest") == (
            f"Cannot 'trigger_crash_dump' instance {sid} while it is in vm_state stopped")
    with cloud4.client(token="alice:demo", version="2.17") as member:
        mine = active_server(member, image_id)["id"]
        assert fault(act(member, mine, {"os-resetState": {"state": "error"}}), 403, "forbidden") == (
            "Policy doesn't allow os_compute_api:os-admin-actions:reset_state to be performed.")
        member.delete(f"/servers/{mine}")
        wait_gone(member, mine)
    with cloud4.client(version="2.17") as c:
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)


def test_rescue_password_and_diagnostics(cloud4: Cloud, image_id: str) -> None:
    from tempest.lib.api_schema.response.compute.v2_48 import servers as schema_v248

    with cloud4.client(version="2.48") as c:
        server = active_server(c, image_id)
        sid = server["id"]
        diag = check_schema(schema_v248.show_server_diagnostics, c.get(f"/servers/{sid}/diagnostics"))
        assert (diag["state"], diag["num_cpus"], diag["memory_details"]["maximum"]) == ("running", 1, 128)
        with cloud4.client(version="2.47") as old:
            legacy = old.get(f"/servers/{sid}/diagnostics").json()
            assert legacy["memory"] == 128 * 1024 and "cpu0_time" in legacy
        assert act(c, sid, {"changePassword": {"adminPass": "n3w"}}).status_code == 202
        assert c.get(f"/servers/{sid}").json()["server"]["OS-EXT-STS:task_state"] is None

        resp = act(c, sid, {"rescue": {"adminPass": "r3scue"}})
        assert resp.status_code == 200 and resp.json() == {"adminPass": "r3scue"}, resp.text
        wait_for_status(c, sid, {"RESCUE"})
        for action, name in (({"reboot": {"type": "HARD"}}, "reboot"), ({"rebuild": {"imageRef": image_id}}, "rebuild"),
                             ({"rescue": None}, "rescue")):
            assert fault(act(c, sid, action), 409, "conflictingRequest") == (
                f"Cannot '{name}' instance {sid} while it is in vm_state rescued")
        assert fault(act(c, sid, {"changePassword": {"adminPass": "x"}}), 409, "conflictingRequest") == (
            f"Cannot 'changePassword' instance {sid} while it is in vm_state rescued")
        assert act(c, sid, {"unrescue": None}).status_code == 202
        wait_for_status(c, sid, {"ACTIVE"})
        assert fault(act(c, sid, {"unrescue": None}), 409, "conflictingRequest") == (
            f"Cannot 'unrescue' instance {sid} while it is in vm_state active")
        assert fault(act(c, sid, {"rescue": {"rescue_image_ref": str(uuid.uuid4())}}), 400, "badRequest").endswith(
            "could not be found.")
        with cloud4.image_client() as image:
            rescue_image = upload_image(image, name="rescue")["id"]
        assert act(c, sid, {"rescue": {"rescue_image_ref": rescue_image}}).status_code == 200
        wait_for_status(c, sid, {"RESCUE"})
        out = act(c, sid, {"os-getConsoleOutput": {"length": 10}}).json()["output"]
        assert f"booting rescue image {rescue_image}" in out
        assert act(c, sid, {"unrescue": None}).status_code == 202
        wait_for_status(c, sid, {"ACTIVE"})
        names = [a["action"] for a in c.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]]
        assert names[:5] == ["unrescue", "rescue", "unrescue", "rescue", "changePassword"]
    with cloud4.client(token="alice:demo", version="2.48") as member:
        mine = active_server(member, image_id)["id"]
        assert fault(member.get(f"/servers/{mine}/diagnostics"), 403, "forbidden") == (
            "Policy doesn't allow os_compute_api:os-server-diagnostics to be performed.")
        member.delete(f"/servers/{mine}")
        wait_gone(member, mine)
    with cloud4.client(version="2.48") as c:
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)


def test_soft_delete_restore_force_delete_and_reclaim(auto_confirm: Cloud) -> None:
    with auto_confirm.image_client() as image:
        image_ref = str(upload_image(image)["id"])
    with auto_confirm.client(version=V) as c:
        server = active_server(c, image_ref)
        sid, host = server["id"], server[HOST]
        assert c.delete(f"/servers/{sid}").status_code == 204
        server = wait_for_status(c, sid, {"SOFT_DELETED"})
        assert server["OS-EXT-STS:power_state"] == 4
        assert allocations(auto_confirm)[sid] == {host: resources(1, 128, 1)}  # the claim is kept
        assert act(c, sid, {"restore": None}).status_code == 202
        assert wait_for_status(c, sid, {"ACTIVE"})["OS-EXT-STS:power_state"] == 1
        assert fault(act(c, sid, {"restore": None}), 409, "conflictingRequest") == (
            f"Cannot 'restore' instance {sid} while it is in vm_state active")
        assert c.delete(f"/servers/{sid}").status_code == 204
        wait_for_status(c, sid, {"SOFT_DELETED"})
        assert act(c, sid, {"forceDelete": None}).status_code == 202
        wait_gone(c, sid)
        assert sid not in allocations(auto_confirm)

        other = active_server(c, image_ref)["id"]
        assert c.delete(f"/servers/{other}").status_code == 204
        wait_for_status(c, other, {"SOFT_DELETED"})
        wait_gone(c, other, timeout=30)  # reclaimed by the host's periodic task after 2 s
        assert other not in allocations(auto_confirm)


def test_create_backup_rotates(cloud4: Cloud, image_id: str) -> None:
    with cloud4.client(version="2.45") as c:
        sid = active_server(c, image_id)["id"]
        made = []
        for index in range(3):
            resp = act(c, sid, {"createBackup": {"name": f"b{index}", "backup_type": "daily", "rotation": 2}})
            assert resp.status_code == 202, resp.text
            made.append(resp.json()["image_id"])
            deadline = time.monotonic() + 15
            while c.get(f"/servers/{sid}").json()["server"]["OS-EXT-STS:task_state"] is not None:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        with cloud4.image_client() as image:
            deadline = time.monotonic() + 15
            while image.get(f"/v2/images/{made[0]}").status_code != 404:  # rotated out: only the newest 2 stay
                assert time.monotonic() < deadline
                time.sleep(0.1)
            kept = image.get(f"/v2/images/{made[2]}").json()
            assert (kept["image_type"], kept["backup_type"], kept["instance_uuid"]) == ("backup", "daily", sid)
            assert image.get(f"/v2/images/{made[1]}").status_code == 200
        fault(act(c, sid, {"createBackup": {"name": "x", "backup_type": "daily", "rotation": -1}}), 400,
              "badRequest")
        with cloud4.client(version="2.44") as old:
            resp = act(old, sid, {"createBackup": {"name": "w", "backup_type": "weekly", "rotation": 1}})
            assert resp.status_code == 202 and "/images/" in resp.headers["location"], resp.text
        names = [a["action"] for a in c.get(f"/servers/{sid}/os-instance-actions").json()["instanceActions"]]
        assert names[0] == "createBackup"
        c.delete(f"/servers/{sid}")
        wait_gone(c, sid)
