"""os-availability-zone through the REST API of a running all-in-one: the zone list and its admin detail.

The shared cloud has only the default zone and the internal one; zones from aggregates are tried on a cloud of
their own. Every response is checked against tempest's schema (no microversion changes these bodies).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import availability_zone as schema

from stratus.local_cloud import start_cloud, stop_cloud
from tests.conftest import Cloud
from tests.functional.helpers import check_schema as check
from tests.functional.helpers import fault

HOSTS = {f"compute-{i}" for i in range(1, 5)}


def zones(client: httpx.Client) -> list[dict[str, Any]]:
    return check(schema.list_availability_zone_list, client.get("/os-availability-zone"))["availabilityZoneInfo"]


def detail(client: httpx.Client) -> dict[str, dict[str, Any]]:
    body = check(schema.list_availability_zone_list_detail, client.get("/os-availability-zone/detail"))
    names = [z["zoneName"] for z in body["availabilityZoneInfo"]]
    assert len(names) == len(set(names))
    return {z["zoneName"]: z for z in body["availabilityZoneInfo"]}


def set_status(admin: httpx.Client, host: str, status: str) -> None:
    [service] = admin.get("/os-services", params={"host": host, "binary": "nova-compute"}).json()["services"]
    assert admin.put(f"/os-services/{service['id']}", json={"status": status}).status_code == 200


@pytest.mark.parametrize("version", ["2.1", "2.53", "2.64"])
def test_any_user_lists_the_default_zone(cloud: Cloud, version: str) -> None:
    with cloud.client(token="carol:proj-az", version=version) as user:
        assert zones(user) == [{"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]


def test_detail_has_hosts_services_and_the_internal_zone(cloud: Cloud) -> None:
    with cloud.client(version="2.53") as admin:
        found = detail(admin)
        schedulers = admin.get("/os-services", params={"binary": "nova-scheduler"}).json()["services"]
    assert list(found) == ["internal", "nova"]
    nova, internal = found["nova"], found["internal"]
    assert nova["zoneState"] == {"available": True} and internal["zoneState"] == {"available": True}
    assert set(nova["hosts"]) == HOSTS
    for host in HOSTS:
        assert list(nova["hosts"][host]) == ["nova-compute"]
        service = nova["hosts"][host]["nova-compute"]
        assert service["available"] is True and service["active"] is True
    [control_host] = internal["hosts"]
    assert control_host == schedulers[0]["host"]
    assert set(internal["hosts"][control_host]) == {"nova-scheduler", "nova-conductor"}


def test_detail_is_for_admins(cloud: Cloud) -> None:
    with cloud.client(token="carol:proj-az") as user:
        message = fault(user.get("/os-availability-zone/detail"), 403, "forbidden")
    assert message == "Policy doesn't allow os_compute_api:os-availability-zone:detail to be performed."


def test_disabled_host_leaves_the_detail(cloud: Cloud) -> None:
    with cloud.client(version="2.53") as admin:
        try:
            set_status(admin, "compute-4", "disabled")
            found = detail(admin)
            assert set(found["nova"]["hosts"]) == HOSTS - {"compute-4"}
            assert zones(admin)[0]["zoneState"] == {"available": True}
        finally:
            set_status(admin, "compute-4", "enabled")
        assert set(detail(admin)["nova"]["hosts"]) == HOSTS


# --- zones from aggregates: a cloud of its own ---------------------------------------------------------------
@pytest.fixture(scope="module")
def own_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("zones-cloud"))
    try:
        yield c
    finally:
        stop_cloud(c)


def _zone_aggregate(admin: httpx.Client, name: str, zone: str, hosts: list[str]) -> None:
    resp = admin.post("/os-aggregates", json={"aggregate": {"name": name, "availability_zone": zone}})
    assert resp.status_code == 200, resp.text
    for host in hosts:
        added = admin.post(f"/os-aggregates/{resp.json()['aggregate']['id']}/action",
                           json={"add_host": {"host": host}})
        assert added.status_code == 200, added.text


def test_zones_from_aggregates(own_cloud: Cloud) -> None:
    with own_cloud.client(version="2.53") as admin:
        _zone_aggregate(admin, "rack-a", "zone-a", ["compute-1"])
        _zone_aggregate(admin, "rack-b", "zone-b", ["compute-2", "compute-3"])
        # An aggregate without a zone does not move its hosts out of the default zone.
        assert admin.post("/os-aggregates", json={"aggregate": {"name": "ssd"}}).status_code == 200

        assert [z["zoneName"] for z in zones(admin)] == ["nova", "zone-a", "zone-b"]
        found = detail(admin)
        assert list(found) == ["internal", "nova", "zone-a", "zone-b"]
        assert set(found["zone-a"]["hosts"]) == {"compute-1"}
        assert set(found["zone-b"]["hosts"]) == {"compute-2", "compute-3"}
        assert set(found["nova"]["hosts"]) == {"compute-4"}
        service_zones = {s["host"]: s["zone"] for s in admin.get("/os-services",
                                                                 params={"binary": "nova-compute"}).json()["services"]}
        assert service_zones == {"compute-1": "zone-a", "compute-2": "zone-b", "compute-3": "zone-b",
                                 "compute-4": "nova"}

        # A zone whose every service is disabled is listed as not available, after the available ones.
        set_status(admin, "compute-1", "disabled")
        assert zones(admin) == [
            {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None},
            {"zoneName": "zone-b", "zoneState": {"available": True}, "hosts": None},
            {"zoneName": "zone-a", "zoneState": {"available": False}, "hosts": None}]
        found = detail(admin)
        assert list(found) == ["internal", "nova", "zone-b", "zone-a"]
        assert found["zone-a"]["hosts"] is None and found["zone-a"]["zoneState"] == {"available": False}
        # One enabled host keeps its zone available.
        set_status(admin, "compute-2", "disabled")
        found = detail(admin)
        assert found["zone-b"]["zoneState"] == {"available": True}
        assert set(found["zone-b"]["hosts"]) == {"compute-3"}

        set_status(admin, "compute-1", "enabled")
        set_status(admin, "compute-2", "enabled")
        assert all(z["zoneState"]["available"] for z in zones(admin))
