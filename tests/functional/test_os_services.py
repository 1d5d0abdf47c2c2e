"""os-services through the REST API of a running all-in-one: list, enable/disable/force down, delete.

Changes to the shared cloud's services are undone in the same test; deleting services happens on a cloud of
its own. Every response is checked against tempest's schema for its version.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import services as schema_21
from tempest.lib.api_schema.response.compute.v2_11 import services as schema_211
from tempest.lib.api_schema.response.compute.v2_53 import services as schema_253

from stratus.api.microversion import APIVersion
from stratus.local_cloud import start_cloud, stop_cloud
from tests.conftest import Cloud
from tests.functional.helpers import boot, fault, upload_image, wait_for_status, wait_gone
from tests.functional.helpers import check_schema as check

LIST_SCHEMAS = {"2.1": schema_21.list_services, "2.10": schema_21.list_services,
                "2.11": schema_211.list_services, "2.52": schema_211.list_services,
                "2.53": schema_253.list_services, "2.64": schema_253.list_services}
HOSTS = {f"compute-{i}" for i in range(1, 5)}


def services(client: httpx.Client, version: str, **params: str) -> list[dict[str, Any]]:
    return check(LIST_SCHEMAS[version], client.get("/os-services", params=params))["services"]


def compute_service(client: httpx.Client, version: str, host: str) -> dict[str, Any]:
    [found] = services(client, version, host=host, binary="nova-compute")
    return found


@pytest.fixture(scope="module")
def image(cloud: Cloud) -> dict[str, Any]:
    with cloud.image_client() as img:
        return upload_image(img)


@pytest.mark.parametrize("version", sorted(LIST_SCHEMAS))
def test_list_shows_every_service_with_zone_and_state(cloud: Cloud, version: str) -> None:
    with cloud.client(version=version) as admin:
        listed = services(admin, version)
    by_binary: dict[str, list[dict[str, Any]]] = {}
    for s in listed:
        by_binary.setdefault(s["binary"], []).append(s)
    assert {s["host"] for s in by_binary["nova-compute"]} >= HOSTS
    assert len(by_binary["nova-scheduler"]) == 1 and len(by_binary["nova-conductor"]) == 1
    for s in listed:
        assert s["zone"] == ("nova" if s["binary"] == "nova-compute" else "internal")
        assert s["state"] == "up" and s["status"] == "enabled" and s["disabled_reason"] is None
        if APIVersion.parse(version) >= APIVersion(2, 53):
            assert uuid.UUID(s["id"])
        else:
            assert isinstance(s["id"], int)
        assert ("forced_down" in s) == (APIVersion.parse(version) >= APIVersion(2, 11))


def test_filters(cloud: Cloud) -> None:
    with cloud.client(version="2.53") as admin:
        assert [s["host"] for s in services(admin, "2.53", host="compute-2")] == ["compute-2"]
        schedulers = services(admin, "2.53", binary="nova-scheduler")
        assert [s["binary"] for s in schedulers] == ["nova-scheduler"]
        both = services(admin, "2.53", host=schedulers[0]["host"], binary="nova-conductor")
        assert [s["binary"] for s in both] == ["nova-conductor"]
        assert services(admin, "2.53", host="no-such-host") == []
        assert services(admin, "2.53", binary="nova-api") == []


def test_scheduler_and_conductor_heartbeat(cloud: Cloud) -> None:
    """The test cloud reports every second: the scheduler's and conductor's rows get beaten too."""
    deadline = time.monotonic() + 10
    with cloud.client(version="2.11") as admin:
        while True:
            internal = [s for s in services(admin, "2.11") if s["zone"] == "internal"]
            if all(s["updated_at"] for s in internal):
                break
            assert time.monotonic() < deadline, internal
            time.sleep(0.2)
    assert {s["binary"] for s in internal} == {"nova-scheduler", "nova-conductor"}


def test_non_admin_is_refused(cloud: Cloud) -> None:
    with cloud.client(token="bob:proj-services", version="2.53") as user:
        message = fault(user.get("/os-services"), 403, "forbidden")
        assert message == "Policy doesn't allow os_compute_api:os-services:list to be performed."
        fault(user.put(f"/os-services/{uuid.uuid4()}", json={"status": "disabled"}), 403, "forbidden")
        fault(user.delete(f"/os-services/{uuid.uuid4()}"), 403, "forbidden")
    with cloud.client(token="bob:proj-services") as user:
        body = {"host": "compute-1", "binary": "nova-compute"}
        assert "os-services:update" in fault(user.put("/os-services/disable", json=body), 403, "forbidden")
        assert "os-services:delete" in fault(user.delete("/os-services/1"), 403, "forbidden")


def test_enable_disable_and_log_reason_v21(cloud: Cloud) -> None:
    body = {"host": "compute-4", "binary": "nova-compute"}
    with cloud.client(version="2.1") as admin:
        try:
            resp = check(schema_21.enable_disable_service, admin.put("/os-services/disable", json=body))
            assert resp == {"service": {**body, "status": "disabled"}}
            shown = compute_service(admin, "2.1", "compute-4")
            assert shown["status"] == "disabled" and shown["disabled_reason"] is None
            assert shown["updated_at"] is not None

            resp = check(schema_21.disable_log_reason, admin.put(
                "/os-services/disable-log-reason", json={**body, "disabled_reason": "maintenance"}))
            assert resp == {"service": {**body, "status": "disabled", "disabled_reason": "maintenance"}}
            assert compute_service(admin, "2.1", "compute-4")["disabled_reason"] == "maintenance"
        finally:
            resp = check(schema_21.enable_disable_service, admin.put("/os-services/enable", json=body))
        assert resp == {"service": {**body, "status": "enabled"}}
        shown = compute_service(admin, "2.1", "compute-4")
        assert shown["status"] == "enabled" and shown["disabled_reason"] is None


def test_force_down_v211(cloud: Cloud) -> None:
    body = {"host": "compute-4", "binary": "nova-compute"}
    with cloud.client(version="2.11") as admin:
        try:
            resp = check(schema_211.update_forced_down, admin.put("/os-services/force-down",
                                                                  json={**body, "forced_down": "yes"}))
            assert resp == {"service": {**body, "forced_down": True}}
            shown = compute_service(admin, "2.11", "compute-4")
            assert shown["forced_down"] is True and shown["state"] == "down" and shown["status"] == "enabled"
        finally:
            resp = check(schema_211.update_forced_down, admin.put("/os-services/force-down",
                                                                  json={**body, "forced_down": False}))
        assert resp == {"service": {**body, "forced_down": False}}
        shown = compute_service(admin, "2.11", "compute-4")
        assert shown["forced_down"] is False and shown["state"] == "up"
    # Before 2.11 there is no such action, and no forced_down in the body.
    with cloud.client(version="2.10") as admin:
        assert fault(admin.put("/os-services/force-down", json=body), 404, "itemNotFound") == "Unknown action"
        message = fault(admin.put("/os-services/disable", json={**body, "forced_down": True}), 400, "badRequest")
        assert "'forced_down' was unexpected" in message


@pytest.mark.parametrize(("action", "body", "code", "expected"), [
    ("enable", {"host": "compute-1"}, 400, "'binary' is a required property"),
    ("enable", {"binary": "nova-compute"}, 400, "'host' is a required property"),
    ("enable", {"host": "compute 1", "binary": "nova-compute"}, 400, "Invalid input for field/attribute host"),
    ("enable", {"host": "compute-1", "binary": "nova-compute", "x": 1}, 400, "'x' was unexpected"),
    ("enable", {"host": "compute-1", "binary": ""}, 400, "Invalid input for field/attribute binary"),
    ("disable-log-reason", {"host": "compute-1", "binary": "nova-compute"}, 400,
     "Missing disabled reason field"),
    ("force-down", {"host": "compute-1", "binary": "nova-compute"}, 400, "Missing forced_down field"),
    ("force-down", {"host": "compute-1", "binary": "nova-compute", "forced_down": "maybe"}, 400,
     "Invalid input for field/attribute forced_down"),
    ("disable", {"host": "compute-1", "binary": "nova-scheduler"}, 400,
     "Updating a nova-scheduler service is not supported. Only nova-compute services can be updated."),
    ("disable", {"host": "no-such-host", "binary": "nova-compute"}, 404,
     "Host 'no-such-host' is not mapped to any cell"),
    ("reboot", {"host": "compute-1", "binary": "nova-compute"}, 404, "Unknown action"),
])
def test_update_v21_errors(cloud: Cloud, action: str, body: dict[str, Any], code: int, expected: str) -> None:
    with cloud.client(version="2.52") as admin:
        message = fault(admin.put(f"/os-services/{action}", json=body), code,
                        "badRequest" if code == 400 else "itemNotFound")
        assert expected in message
        assert compute_service(admin, "2.52", "compute-1")["status"] == "enabled"


def test_update_v253(cloud: Cloud) -> None:
    with cloud.client(version="2.53") as admin:
        service = compute_service(admin, "2.53", "compute-4")
        url = f"/os-services/{service['id']}"
        try:
            got = check(schema_253.update_service, admin.put(url, json={"status": "disabled",
                                                                        "disabled_reason": "upgrade"}))["service"]
            assert got["id"] == service["id"] and got["host"] == "compute-4" and got["zone"] == "nova"
            assert (got["status"], got["disabled_reason"], got["forced_down"]) == ("disabled", "upgrade", False)
            assert got["state"] == "up"

            got = check(schema_253.update_service, admin.put(url, json={"forced_down": True}))["service"]
            assert (got["status"], got["forced_down"], got["state"]) == ("disabled", True, "down")
            shown = compute_service(admin, "2.53", "compute-4")
            assert {k: shown[k] for k in ("id", "status", "forced_down", "state", "disabled_reason")} == {
                k: got[k] for k in ("id", "status", "forced_down", "state", "disabled_reason")}

            got = check(schema_253.update_service, admin.put(url, json={"status": "enabled",
                                                                        "forced_down": "false"}))["service"]
            assert (got["status"], got["disabled_reason"], got["forced_down"], got["state"]) == (
                "enabled", None, False, "up")
            # Disabling without a reason leaves none.
            got = check(schema_253.update_service, admin.put(url, json={"status": "disabled"}))["service"]
            assert (got["status"], got["disabled_reason"]) == ("disabled", None)
        finally:
            check(schema_253.update_service, admin.put(url, json={"status": "enabled", "forced_down": False}))
        # The old actions are gone from 2.53: the path is a uuid now.
        message = fault(admin.put("/os-services/enable", json={"status": "enabled"}), 400, "badRequest")
        assert message == "Invalid uuid enable"


def test_update_v253_errors(cloud: Cloud) -> None:
    with cloud.client(version="2.53") as admin:
        compute = compute_service(admin, "2.53", "compute-1")
        [scheduler] = services(admin, "2.53", binary="nova-scheduler")
        url = f"/os-services/{compute['id']}"
        cases: list[tuple[str, Any, int, str]] = [
            (url, {}, 400, "No updates were requested. Fields 'status' or 'forced_down' should be specified."),
            (url, {"disabled_reason": "why"}, 400, "No updates were requested."),
            (url, {"status": "enabled", "disabled_reason": "why"}, 400,
             "Specifying 'disabled_reason' with status 'enabled' is invalid."),
            (url, {"status": "off"}, 400, "Invalid input for field/attribute status"),
            (url, {"forced_down": "perhaps"}, 400, "Invalid input for field/attribute forced_down"),
            (url, {"host": "compute-1", "binary": "nova-compute"}, 400, "Additional properties are not allowed"),
            (url, {"status": "disabled", "disabled_reason": "x" * 256}, 400,
             "Invalid input for field/attribute disabled_reason"),
            (f"/os-services/{uuid.uuid4()}", {"status": "disabled"}, 404, "could not be found."),
            (f"/os-services/{scheduler['id']}", {"status": "disabled"}, 400,
             "Updating a nova-scheduler service is not supported. Only nova-compute services can be updated."),
            ("/os-services/42", {"status": "disabled"}, 400, "Invalid uuid 42"),
        ]
        for path, body, code, expected in cases:
            message = fault(admin.put(path, json=body), code, "badRequest" if code == 400 else "itemNotFound")
            assert expected in message, (path, body, message)
        fault(admin.put(url, content=b"{", headers={"Content-Type": "application/json"}), 400, "badRequest")
        assert compute_service(admin, "2.53", "compute-1")["status"] == "enabled"


def test_delete_errors(cloud: Cloud) -> None:
    with cloud.client(version="2.52") as admin:
        message = fault(admin.delete("/os-services/abc"), 400, "badRequest")
        assert message == "Invalid input received: id must be an integer"
        assert fault(admin.delete("/os-services/999999"), 404, "itemNotFound") == "Service 999999 not found."
        assert "not found" in fault(admin.delete(f"/os-services/{10**30}"), 404, "itemNotFound")
    with cloud.client(version="2.53") as admin:
        assert fault(admin.delete("/os-services/1"), 400, "badRequest") == "Invalid uuid 1"
        missing = str(uuid.uuid4())
        assert fault(admin.delete(f"/os-services/{missing}"), 404, "itemNotFound") == f"Service {missing} not found."


def test_delete_refused_while_hosting_instances(cloud: Cloud, image: dict[str, Any]) -> None:
    with cloud.client(version="2.53") as admin:
        resp = boot(admin, image["id"], networks="none", availability_zone="nova:compute-2")
        assert resp.status_code == 202, resp.text
        server_id = resp.json()["server"]["id"]
        try:
            server = wait_for_status(admin, server_id, {"ACTIVE", "ERROR"})
            assert server["status"] == "ACTIVE" and server["OS-EXT-SRV-ATTR:host"] == "compute-2", server
            service = compute_service(admin, "2.53", "compute-2")
            message = fault(admin.delete(f"/os-services/{service['id']}"), 409, "conflictingRequest")
            assert message == ("Unable to delete compute service that is hosting instances. Migrate or delete "
                               "the instances first.")
            with cloud.client(version="2.1") as old:
                old_id = compute_service(old, "2.1", "compute-2")["id"]
                fault(old.delete(f"/os-services/{old_id}"), 409, "conflictingRequest")
            assert compute_service(admin, "2.53", "compute-2")["id"] == service["id"]
        finally:
            assert admin.delete(f"/servers/{server_id}").status_code == 204
            wait_gone(admin, server_id)


# --- destructive: a cloud of its own ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def own_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("services-cloud"))
    try:
        yield c
    finally:
        stop_cloud(c)


def _count(db: sqlite3.Connection, sql: str, *args: Any) -> int:
    return int(db.execute(sql, args).fetchone()[0])


def test_delete_compute_service_removes_nodes_providers_and_memberships(own_cloud: Cloud) -> None:
    db = sqlite3.connect(own_cloud.state_path / "stratus.sqlite")
    with own_cloud.client(version="2.53") as admin:
        agg = admin.post("/os-aggregates", json={"aggregate": {"name": "doomed", "availability_zone": "az-doomed"}})
        assert agg.status_code == 200, agg.text
        agg_id = agg.json()["aggregate"]["id"]
        added = admin.post(f"/os-aggregates/{agg_id}/action", json={"add_host": {"host": "compute-4"}})
        assert added.status_code == 200, added.text
        service = compute_service(admin, "2.53", "compute-4")
        assert service["zone"] == "az-doomed"
        provider = db.execute("select id from resource_providers where name = 'compute-4'").fetchone()[0]
        assert _count(db, "select count(*) from inventories where resource_provider_id = ?", provider) == 3

        resp = admin.delete(f"/os-services/{service['id']}")
        assert resp.status_code == 204 and resp.content == b""

        assert "compute-4" not in {s["host"] for s in services(admin, "2.53")}
        assert _count(db, "select count(*) from compute_nodes where host = 'compute-4'") == 0
        assert _count(db, "select count(*) from resource_providers where name = 'compute-4'") == 0
        assert _count(db, "select count(*) from inventories where resource_provider_id = ?", provider) == 0
        assert _count(db, "select count(*) from aggregate_hosts where host = 'compute-4'") == 0
        assert admin.get(f"/os-aggregates/{agg_id}").json()["aggregate"]["hosts"] == []
        hypervisors = admin.get("/os-hypervisors").json()["hypervisors"]
        assert {h["hypervisor_hostname"] for h in hypervisors} == {"compute-1", "compute-2", "compute-3"}
        assert admin.get("/os-hypervisors/statistics").json()["hypervisor_statistics"]["count"] == 3
        zones = admin.get("/os-availability-zone").json()["availabilityZoneInfo"]
        assert [z["zoneName"] for z in zones] == ["nova"]

        missing = fault(admin.delete(f"/os-services/{service['id']}"), 404, "itemNotFound")
        assert missing == f"Service {service['id']} not found."
        assert admin.delete(f"/os-aggregates/{agg_id}").status_code == 200


def test_delete_conductor_service_by_integer_id(own_cloud: Cloud) -> None:
    with own_cloud.client(version="2.1") as admin:
        [conductor] = services(admin, "2.1", binary="nova-conductor")
        resp = admin.delete(f"/os-services/{conductor['id']}")
        assert resp.status_code == 204 and resp.content == b""
        time.sleep(1.5)  # a heartbeat or two later it is still gone
        assert services(admin, "2.1", binary="nova-conductor") == []
        assert services(admin, "2.1", binary="nova-scheduler")


def test_disabled_hosts_are_skipped_at_once(own_cloud: Cloud) -> None:
    """Disabling tells the schedulers (refresh_hosts): the very next boot avoids the disabled hosts."""
    with own_cloud.image_client() as img:
        image = upload_image(img)
    with own_cloud.client(version="2.53") as admin:
        computes = services(admin, "2.53", binary="nova-compute")
        keep, others = computes[0], computes[1:]
        try:
            for s in others:
                check(schema_253.update_service, admin.put(f"/os-services/{s['id']}", json={"status": "disabled"}))
            ids = []
            for _ in range(3):
                resp = boot(admin, image["id"], networks="none")
                assert resp.status_code == 202, resp.text
                ids.append(resp.json()["server"]["id"])
            for server_id in ids:
                server = wait_for_status(admin, server_id, {"ACTIVE", "ERROR"})
                assert server["OS-EXT-SRV-ATTR:host"] == keep["host"], server
            for server_id in ids:
                assert admin.delete(f"/servers/{server_id}").status_code == 204
            for server_id in ids:
                wait_gone(admin, server_id)
        finally:
            for s in others:
                check(schema_253.update_service, admin.put(f"/os-services/{s['id']}", json={"status": "enabled"}))
