"""Host aggregates through the REST API of a running all-in-one: CRUD, hosts, metadata and zone rules (2.1, 2.41).

Every test removes what it creates: an aggregate with a zone changes where other tests' servers may land.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from tempest.lib.api_schema.response.compute.v2_1 import aggregates as schema_21
from tempest.lib.api_schema.response.compute.v2_41 import aggregates as schema_241

from tests.conftest import Cloud
from tests.functional.helpers import boot, check_schema, fault, upload_image, wait_for_status, wait_gone


def unique(prefix: str = "agg") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def compute_hosts(cloud: Cloud) -> list[str]:
    with sqlite3.connect(cloud.state_path / "stratus.sqlite") as db:
        return [h for (h,) in db.execute("SELECT host FROM services WHERE binary = 'nova-compute' ORDER BY host")]


def idle_hosts(cloud: Cloud) -> list[str]:
    """Compute hosts with no live instance: their zone may change."""
    with sqlite3.connect(cloud.state_path / "stratus.sqlite") as db:
        busy = {h for (h,) in db.execute("SELECT DISTINCT host FROM instances WHERE deleted = 0 AND host IS NOT NULL")}
    return [h for h in compute_hosts(cloud) if h not in busy]


@contextmanager
def aggregate(admin: httpx.Client, name: str | None = None, zone: str | None = None) -> Iterator[dict[str, Any]]:
    """An aggregate for the block; afterwards its hosts are removed and it is deleted."""
    body: dict[str, Any] = {"name": name or unique()}
    if zone:
        body["availability_zone"] = zone
    resp = admin.post("/os-aggregates", json={"aggregate": body})
    assert resp.status_code == 200, resp.text
    created = resp.json()["aggregate"]
    try:
        yield created
    finally:
        shown = admin.get(f"/os-aggregates/{created['id']}")
        if shown.status_code == 200:
            for host in shown.json()["aggregate"]["hosts"]:
                admin.post(f"/os-aggregates/{created['id']}/action", json={"remove_host": {"host": host}})
            assert admin.delete(f"/os-aggregates/{created['id']}").status_code == 200


def act(admin: httpx.Client, agg_id: int | str, name: str, value: Any) -> httpx.Response:
    return admin.post(f"/os-aggregates/{agg_id}/action", json={name: value})


def test_v21_create_show_list_update_metadata_delete(cloud: Cloud) -> None:
    with cloud.client(version="2.1") as admin:
        name = unique()
        created = check_schema(schema_21.create_aggregate, admin.post("/os-aggregates", json={"aggregate": {
            "name": name, "availability_zone": "zone-a"}}))["aggregate"]
        agg_id = created["id"]
        try:
            assert (created["name"], created["availability_zone"], created["deleted"]) == (name, "zone-a", False)
            assert created["updated_at"] is None and "uuid" not in created and "hosts" not in created
            shown = check_schema(schema_21.get_aggregate, admin.get(f"/os-aggregates/{agg_id}"))["aggregate"]
            assert shown["hosts"] == [] and shown["metadata"] == {"availability_zone": "zone-a"}
            listed = check_schema(schema_21.list_aggregates, admin.get("/os-aggregates"))["aggregates"]
            assert [a["name"] for a in listed if a["id"] == agg_id] == [name]

            renamed = check_schema(schema_21.update_aggregate, admin.put(f"/os-aggregates/{agg_id}", json={
                "aggregate": {"name": f"  {name}-2 ", "availability_zone": "zone-b"}}))["aggregate"]
            assert (renamed["name"], renamed["availability_zone"]) == (f"{name}-2", "zone-b")
            assert renamed["metadata"] == {"availability_zone": "zone-b"}

            meta = check_schema(schema_21.aggregate_set_metadata, act(admin, agg_id, "set_metadata", {"metadata": {
                "ssd": "true", "gpu": "2"}}))["aggregate"]
            assert meta["metadata"] == {"availability_zone": "zone-b", "ssd": "true", "gpu": "2"}
            meta = check_schema(schema_21.aggregate_set_metadata, act(admin, agg_id, "set_metadata", {"metadata": {
                "ssd": None, "gpu": "4", "absent": None}}))["aggregate"]
            assert meta["metadata"] == {"availability_zone": "zone-b", "gpu": "4"}
            assert meta["updated_at"] is not None
        finally:
            deleted = check_schema(schema_21.delete_aggregate, admin.delete(f"/os-aggregates/{agg_id}"))
        assert deleted == {}
        assert fault(admin.get(f"/os-aggregates/{agg_id}"), 404, "itemNotFound") == (
            f"Aggregate {agg_id} could not be found.")
        assert fault(admin.delete(f"/os-aggregates/{agg_id}"), 404, "itemNotFound") == (
            f"Aggregate {agg_id} could not be found.")


def test_v241_uuid_in_every_body(cloud: Cloud) -> None:
    host = compute_hosts(cloud)[0]
    with cloud.client(version="2.41") as admin:
        created = check_schema(schema_241.create_aggregate, admin.post("/os-aggregates", json={"aggregate": {
            "name": unique()}}))["aggregate"]
        agg_id, agg_uuid = created["id"], created["uuid"]
        try:
            assert created["availability_zone"] is None
            assert check_schema(schema_241.get_aggregate, admin.get(f"/os-aggregates/{agg_id}"))[
                "aggregate"]["uuid"] == agg_uuid
            listed = check_schema(schema_241.list_aggregates, admin.get("/os-aggregates"))["aggregates"]
            assert [a["uuid"] for a in listed if a["id"] == agg_id] == [agg_uuid]
            assert check_schema(schema_241.update_aggregate, admin.put(f"/os-aggregates/{agg_id}", json={
                "aggregate": {"name": unique()}}))["aggregate"]["uuid"] == agg_uuid
            added = check_schema(schema_241.aggregate_add_remove_host, act(admin, agg_id, "add_host", {"host": host}))
            assert added["aggregate"]["hosts"] == [host] and added["aggregate"]["uuid"] == agg_uuid
            removed = check_schema(schema_241.aggregate_add_remove_host,
                                   act(admin, agg_id, "remove_host", {"host": host}))
            assert removed["aggregate"]["hosts"] == []
            check_schema(schema_241.aggregate_set_metadata,
                         act(admin, agg_id, "set_metadata", {"metadata": {"k": "v"}}))
        finally:
            check_schema(schema_241.delete_aggregate, admin.delete(f"/os-aggregates/{agg_id}"))
    with cloud.client(version="2.40") as old:
        with aggregate(old) as agg:
            assert "uuid" not in agg
            assert "uuid" not in check_schema(schema_21.get_aggregate, old.get(f"/os-aggregates/{agg['id']}"))[
                "aggregate"]


def test_hosts_add_remove_and_delete_rules(cloud: Cloud) -> None:
    host = compute_hosts(cloud)[0]
    with cloud.client(version="2.47") as admin, aggregate(admin) as agg:
        agg_id = agg["id"]
        body = check_schema(schema_241.aggregate_add_remove_host, act(admin, agg_id, "add_host", {"host": host}))
        assert body["aggregate"]["hosts"] == [host]
        assert fault(act(admin, agg_id, "add_host", {"host": host}), 409, "conflictingRequest") == (
            f"Aggregate {agg_id} already has host {host}.")
        assert fault(act(admin, agg_id, "add_host", {"host": "no-such-host"}), 404, "itemNotFound") == (
            "Compute host no-such-host could not be found.")
        assert fault(act(admin, 999999, "add_host", {"host": host}), 404, "itemNotFound") == (
            "Aggregate 999999 could not be found.")
        assert fault(admin.delete(f"/os-aggregates/{agg_id}"), 400, "badRequest") == (
            f"Cannot remove host from aggregate {agg_id}. Reason: Host aggregate is not empty.")
        # A host may be in many aggregates without zones.
        with aggregate(admin) as other:
            check_schema(schema_241.aggregate_add_remove_host, act(admin, other["id"], "add_host", {"host": host}))
        body = check_schema(schema_241.aggregate_add_remove_host, act(admin, agg_id, "remove_host", {"host": host}))
        assert body["aggregate"]["hosts"] == []
        for missing in (host, "no-such-host"):
            assert fault(act(admin, agg_id, "remove_host", {"host": missing}), 404, "itemNotFound") == (
                f"Cannot remove host {missing} in aggregate {agg_id}")
        assert fault(act(admin, 999999, "remove_host", {"host": host}), 404, "itemNotFound") == (
            f"Cannot remove host {host} in aggregate 999999")


def test_zone_rules(cloud: Cloud) -> None:
    hosts = idle_hosts(cloud)
    assert hosts, "every host runs instances: a test left servers behind"
    host = hosts[0]
    zone_a, zone_b = unique("az"), unique("az")
    with cloud.client(version="2.47") as admin, aggregate(admin, zone=zone_a) as agg_a, \
            aggregate(admin, zone=zone_b) as agg_b, aggregate(admin) as plain:
        check_schema(schema_241.aggregate_add_remove_host, act(admin, agg_a["id"], "add_host", {"host": host}))
        assert fault(act(admin, agg_b["id"], "add_host", {"host": host}), 409, "conflictingRequest") == (
            f"Cannot add host to aggregate {agg_b['id']}. Reason: One or more hosts already in availability "
            f"zone(s) ['{zone_a}'].")
        # Another aggregate of the same zone, or of none, is fine.
        check_schema(schema_241.aggregate_add_remove_host, act(admin, plain["id"], "add_host", {"host": host}))
        with aggregate(admin, zone=zone_a) as same:
            check_schema(schema_241.aggregate_add_remove_host, act(admin, same["id"], "add_host", {"host": host}))
        # The plain aggregate holds the host: it can't take another zone than the host's...
        assert fault(admin.put(f"/os-aggregates/{plain['id']}", json={"aggregate": {
            "availability_zone": zone_b}}), 400, "badRequest") == (
            f"Cannot update aggregate {plain['id']}. Reason: One or more hosts already in availability zone(s) "
            f"['{zone_a}'].")
        assert fault(act(admin, plain["id"], "set_metadata", {"metadata": {"availability_zone": zone_b}}), 400,
                     "badRequest") == (
            f"Cannot update metadata of aggregate {plain['id']}. Reason: One or more hosts already in availability "
            f"zone(s) ['{zone_a}'].")
        # ...but may take the same one.
        shown = check_schema(schema_241.aggregate_set_metadata, act(admin, plain["id"], "set_metadata", {
            "metadata": {"availability_zone": zone_a}}))["aggregate"]
        assert shown["availability_zone"] == zone_a
        # A zone can't be emptied, nor be the internal services' zone.
        assert fault(admin.put(f"/os-aggregates/{agg_a['id']}", json={"aggregate": {"availability_zone": None}}),
                     400, "badRequest") == (
            f"Cannot update aggregate {agg_a['id']}. Reason: Aggregate {agg_a['name']} does not support empty "
            "named availability zone.")
        assert fault(act(admin, agg_a["id"], "set_metadata", {"metadata": {"availability_zone": None}}), 400,
                     "badRequest") == (
            f"Cannot update metadata of aggregate {agg_a['id']}. Reason: Aggregate {agg_a['name']} does not "
            "support empty named availability zone.")
        for resp in (admin.post("/os-aggregates", json={"aggregate": {"name": unique(),
                                                                      "availability_zone": "internal"}}),
                     admin.put(f"/os-aggregates/{agg_b['id']}", json={"aggregate": {"availability_zone": "internal"}}),
                     act(admin, agg_b["id"], "set_metadata", {"metadata": {"availability_zone": "internal"}})):
            assert "'internal' is reserved for internal services" in fault(resp, 400, "badRequest")
        zones = {a["id"]: a["availability_zone"] for a in admin.get("/os-aggregates").json()["aggregates"]}
        assert (zones[agg_a["id"]], zones[agg_b["id"]]) == (zone_a, zone_b)


def test_zone_of_a_host_with_instances_is_fixed(cloud: Cloud) -> None:
    with cloud.image_client() as img:
        image = upload_image(img)
    with cloud.client(token="agg-user:proj-agg", version="2.47") as user:
        resp = boot(user, image["id"], networks="none")
        assert resp.status_code == 202, resp.text
        server_id = resp.json()["server"]["id"]
        try:
            wait_for_status(user, server_id, {"ACTIVE"})
            with cloud.client(version="2.47") as admin:
                host = admin.get(f"/servers/{server_id}").json()["server"]["OS-EXT-SRV-ATTR:host"]
                zone = unique("az")
                with aggregate(admin, zone=zone) as zoned, aggregate(admin) as plain:
                    message = fault(act(admin, zoned["id"], "add_host", {"host": host}), 409, "conflictingRequest")
                    assert message.startswith(
                        f"Cannot add host to aggregate {zoned['id']}. Reason: The host cannot be added to the "
                        f"aggregate as the availability zone of the host would change from 'None' to '{zone}' but "
                        "the host already has 1 instance(s).")
                    check_schema(schema_241.aggregate_add_remove_host,
                                 act(admin, plain["id"], "add_host", {"host": host}))
                    assert fault(act(admin, plain["id"], "set_metadata", {"metadata": {"availability_zone": zone}}),
                                 400, "badRequest") == (
                        f"Cannot update metadata of aggregate {plain['id']}. Reason: One or more hosts contain "
                        "instances in this zone.")
                    check_schema(schema_241.aggregate_add_remove_host,
                                 act(admin, plain["id"], "remove_host", {"host": host}))
        finally:
            assert user.delete(f"/servers/{server_id}").status_code == 204
            wait_gone(user, server_id)


def test_bad_requests_and_policy(cloud: Cloud) -> None:
    with cloud.client(version="2.47") as admin, aggregate(admin) as agg:
        agg_id = agg["id"]
        assert fault(admin.post("/os-aggregates", json={"aggregate": {"name": agg["name"]}}), 409,
                     "conflictingRequest") == f"Aggregate {agg['name']} already exists."
        with aggregate(admin) as other:
            assert fault(admin.put(f"/os-aggregates/{other['id']}", json={"aggregate": {"name": agg["name"]}}),
                         409, "conflictingRequest") == f"Aggregate {agg['name']} already exists."
        bodies: list[dict[str, Any]] = [
            {}, {"aggregate": {}}, {"aggregate": {"name": ""}}, {"aggregate": {"name": "x" * 256}},
            {"aggregate": {"name": " lead"}}, {"aggregate": {"name": "n", "availability_zone": "a:b"}},
            {"aggregate": {"name": "n", "availability_zone": ""}}, {"aggregate": {"name": "n", "x": 1}}]
        for body in bodies:
            fault(admin.post("/os-aggregates", json=body), 400, "badRequest")
        for body in ({"aggregate": {}}, {"aggregate": {"name": "   "}}, {"aggregate": {"uuid": "x"}}, {"x": 1}):
            fault(admin.put(f"/os-aggregates/{agg_id}", json=body), 400, "badRequest")
        for name, value in (("add_host", {"host": "a b"}), ("add_host", {}), ("remove_host", {"host": ""}),
                            ("set_metadata", {"metadata": {"k": 1}}), ("set_metadata", {"metadata": {"k?": "v"}}),
                            ("set_metadata", {})):
            fault(act(admin, agg_id, name, value), 400, "badRequest")
        assert fault(act(admin, agg_id, "frobnicate", {}), 400, "badRequest") == "There is no such action: frobnicate"
        assert fault(admin.post(f"/os-aggregates/{agg_id}/action", json={"add_host": {}, "remove_host": {}}), 400,
                     "badRequest") == "Malformed request body"
        for resp in (admin.get("/os-aggregates/abc"), admin.delete("/os-aggregates/abc"),
                     admin.put("/os-aggregates/abc", json={"aggregate": {"name": "n"}}),
                     act(admin, "abc", "set_metadata", {"metadata": {}})):
            assert fault(resp, 400, "badRequest") == "Invalid input received: id must be an integer"
        assert fault(admin.get("/os-aggregates/-1"), 404, "itemNotFound") == "Aggregate -1 could not be found."
        assert fault(admin.get(f"/os-aggregates/{10**30}"), 404, "itemNotFound") == (
            f"Aggregate {10**30} could not be found.")
        assert fault(admin.put("/os-aggregates/-1", json={"aggregate": {"name": "n"}}), 404, "itemNotFound") == (
            "Aggregate -1 could not be found.")
    with cloud.client(token="agg-user:proj-agg", version="2.47") as user:
        for resp, rule in ((user.get("/os-aggregates"), "index"),
                           (user.post("/os-aggregates", json={"aggregate": {"name": unique()}}), "create"),
                           (user.get(f"/os-aggregates/{agg_id}"), "show"),
                           (user.put(f"/os-aggregates/{agg_id}", json={"aggregate": {"name": "n"}}), "update"),
                           (user.delete(f"/os-aggregates/{agg_id}"), "delete"),
                           (act(user, agg_id, "add_host", {"host": "h"}), "add_host"),
                           (act(user, agg_id, "remove_host", {"host": "h"}), "remove_host"),
                           (act(user, agg_id, "set_metadata", {"metadata": {}}), "set_metadata")):
            assert fault(resp, 403, "forbidden") == (
                f"Policy doesn't allow os_compute_api:os-aggregates:{rule} to be performed.")


def _precache_report(cloud: Cloud, image_id: str, count: int) -> str:
    """The conductor's account of the ``count``-th pre-cache of ``image_id`` (the API answered before it ran)."""
    marker = f"image pre-cache operation for image(s) {image_id} completed"
    deadline = time.monotonic() + 30
    while cloud.log().count(marker) < count:
        assert time.monotonic() < deadline, cloud.log()[-3000:]
        time.sleep(0.1)
    return [line for line in cloud.log().splitlines() if marker in line][count - 1]


def test_v281_image_precache_on_the_aggregates_hosts(cloud: Cloud) -> None:
    hosts = compute_hosts(cloud)[:2]
    with cloud.image_client() as images:
        image = upload_image(images)
    with cloud.client(version="2.81") as admin, aggregate(admin) as agg:
        agg_id = agg["id"]
        for host in hosts:
            assert act(admin, agg_id, "add_host", {"host": host}).status_code == 200
        resp = admin.post(f"/os-aggregates/{agg_id}/images", json={"cache": [{"id": image["id"]}]})
        assert resp.status_code == 202 and resp.content == b"", resp.text
        assert "2 cached, 0 existing, 0 errors, 0 unsupported, 0 skipped (down) hosts" in _precache_report(
            cloud, image["id"], 1)  # each host of the aggregate fetched it (the fake driver records it)
        assert admin.post(f"/os-aggregates/{agg_id}/images", json={"cache": [{"id": image["id"]}]}
                          ).status_code == 202
        assert "0 cached, 2 existing" in _precache_report(cloud, image["id"], 2)
        missing = str(uuid.uuid4())
        assert fault(admin.post(f"/os-aggregates/{agg_id}/images", json={"cache": [{"id": image["id"]},
                                                                                    {"id": missing}]}),
                     400, "badRequest") == f"Image {missing} could not be found."
        assert fault(admin.post(f"/os-aggregates/{agg_id}/images", json={"cache": [{"id": image["id"]}] * 2}),
                     400, "badRequest") == "Duplicate images in request"
        for body in ({}, {"cache": []}, {"cache": [{"id": "not-a-uuid"}]}, {"cache": [{"id": image["id"], "x": 1}]},
                     {"cache": [{}]}, {"cache": {"id": image["id"]}}, {"cache": [], "x": 1}):
            fault(admin.post(f"/os-aggregates/{agg_id}/images", json=body), 400, "badRequest")
        assert fault(admin.post("/os-aggregates/abc/images", json={"cache": [{"id": image["id"]}]}), 400,
                     "badRequest") == "Invalid input received: id must be an integer"
        assert fault(admin.post("/os-aggregates/99999/images", json={"cache": [{"id": image["id"]}]}), 404,
                     "itemNotFound") == "Aggregate 99999 could not be found."
        assert cloud.log().count(f"image pre-cache operation for image(s) {image['id']}") == 2  # none refused ran
        with cloud.client(version="2.80") as older:  # before 2.81 there is no such resource
            assert older.post(f"/os-aggregates/{agg_id}/images",
                              json={"cache": [{"id": image["id"]}]}).status_code == 404
        with cloud.client(token="agg-user:proj-agg", version="2.81") as user:
            assert fault(user.post(f"/os-aggregates/{agg_id}/images", json={"cache": [{"id": image["id"]}]}), 403,
                         "forbidden") == "Policy doesn't allow compute:aggregates:images to be performed."
