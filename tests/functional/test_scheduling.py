"""Scheduling through the REST API: capacity under concurrency, groups, zones, aggregates, services, hints.

A cloud of its own (four small hosts, every filter enabled) so that what these tests change (zones, disabled
services, full hosts) cannot move other tests' servers.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from tests.functional.helpers import boot, upload_image, wait_for_status, wait_gone

HOSTS = ["compute-1", "compute-2", "compute-3", "compute-4"]
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("scheduling"), extra_conf="""
        [DEFAULT]
        cpu_allocation_ratio = 1.0
        [fake_driver]
        host_count = 4
        vcpus = 4
        [quota]
        instances = -1
        cores = -1
        ram = -1
        server_groups = -1
        server_group_members = -1
        [filter_scheduler]
        enabled_filters = ComputeFilter,AvailabilityZoneFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,
            AggregateInstanceExtraSpecsFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,
            SameHostFilter,DifferentHostFilter
        """)
    try:
        yield c
    finally:
        stop_cloud(c)


@pytest.fixture(scope="module")
def image(cloud: Cloud) -> str:
    with cloud.image_client() as img:
        return str(upload_image(img)["id"])


@pytest.fixture
def admin(cloud: Cloud) -> Iterator[httpx.Client]:
    with cloud.client(token="admin:admin", version="2.64") as c:
        yield c


def _db(cloud: Cloud) -> sqlite3.Connection:
    return sqlite3.connect(Path(cloud.state_path) / "stratus.sqlite")


def _allocations(cloud: Cloud) -> int:
    with _db(cloud) as db:
        return int(db.execute("select count(*) from allocations").fetchone()[0])


def _flavor(admin: httpx.Client, name: str, vcpus: int = 1, extra_specs: dict[str, str] | None = None) -> str:
    resp = admin.post("/flavors", json={"flavor": {"name": name, "ram": 64, "vcpus": vcpus, "disk": 1}})
    assert resp.status_code == 200, resp.text
    fid = str(resp.json()["flavor"]["id"])
    if extra_specs:
        resp = admin.post(f"/flavors/{fid}/os-extra_specs", json={"extra_specs": extra_specs})
        assert resp.status_code == 200, resp.text
    return fid


@pytest.fixture(scope="module")
def one_vcpu(cloud: Cloud) -> str:
    with cloud.client(token="admin:admin") as c:
        return _flavor(c, "sched-1vcpu")


def _boot_wait(client: httpx.Client, image: str, flavor: str, **extra: Any) -> dict[str, Any]:
    resp = boot(client, image, flavor=flavor, **extra)
    assert resp.status_code == 202, resp.text
    return wait_for_status(client, resp.json()["server"]["id"], {"ACTIVE", "ERROR"})


def _delete_all(client: httpx.Client, servers: list[dict[str, Any]]) -> None:
    for s in servers:
        client.delete(f"/servers/{s['id']}")
    for s in servers:
        wait_gone(client, s["id"])


def _boot_hinted(client: httpx.Client, image: str, flavor: str, name: str, hints: dict[str, Any],
                 count: int = 1) -> list[dict[str, Any]]:
    """POST /servers with scheduler hints (``count`` servers named ``name-N`` when more than one), then wait
    for each to settle in ACTIVE or ERROR."""
    resp = client.post("/servers", json={"server": {"name": name, "imageRef": image, "flavorRef": flavor,
                                                    "min_count": count, "networks": "none"},
                                         "os:scheduler_hints": hints})
    assert resp.status_code == 202, resp.text
    ids = ([s["id"] for s in client.get("/servers", params={"name": f"^{name}-"}).json()["servers"]]
           if count > 1 else [resp.json()["server"]["id"]])
    assert len(ids) == count
    return [wait_for_status(client, i, {"ACTIVE", "ERROR"}) for i in ids]


def _host(server: dict[str, Any]) -> str:
    return str(server["OS-EXT-SRV-ATTR:host"])


def test_concurrent_boots_never_exceed_capacity_and_deletes_leave_nothing(cloud: Cloud, admin: httpx.Client,
                                                                           image: str, one_vcpu: str) -> None:
    """Four hosts of four VCPUs at ratio 1.0: twenty concurrent boots, sixteen fit, four are refused."""
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda i: boot(admin, image, flavor=one_vcpu, name=f"cc-{i}",
                                                      networks="none"), range(20)))
    assert all(r.status_code == 202 for r in responses)
    servers = [wait_for_status(admin, r.json()["server"]["id"], {"ACTIVE", "ERROR"}) for r in responses]
    statuses = Counter(s["status"] for s in servers)
    assert statuses == {"ACTIVE": 16, "ERROR": 4}, statuses
    assert Counter(_host(s) for s in servers if s["status"] == "ACTIVE") == {h: 4 for h in HOSTS}
    for s in servers:
        if s["status"] == "ERROR":
            assert s["fault"]["message"] == NO_VALID_HOST
    hypervisors = admin.get("/os-hypervisors/detail").json()["hypervisors"]
    assert all(h["vcpus_used"] <= h["vcpus"] for h in hypervisors), hypervisors
    assert sum(h["vcpus_used"] for h in hypervisors) == 16
    _delete_all(admin, servers)
    assert _allocations(cloud) == 0
    assert sum(h["vcpus_used"] for h in admin.get("/os-hypervisors/detail").json()["hypervisors"]) == 0


def test_anti_affinity_with_more_servers_than_hosts_fails_cleanly(cloud: Cloud, admin: httpx.Client, image: str,
                                                                   one_vcpu: str) -> None:
    group = admin.post("/os-server-groups", json={"server_group": {"name": "spread", "policy": "anti-affinity"}})
    assert group.status_code == 200, group.text
    gid = group.json()["server_group"]["id"]
    servers = _boot_hinted(admin, image, one_vcpu, "anti", {"group": gid}, count=5)
    assert {s["status"] for s in servers} == {"ERROR"}
    assert {s["fault"]["message"] for s in servers} == {NO_VALID_HOST}
    assert _allocations(cloud) == 0
    _delete_all(admin, servers)

    # four fit, one per host
    servers = _boot_hinted(admin, image, one_vcpu, "anti4", {"group": gid}, count=4)
    assert sorted(_host(s) for s in servers) == HOSTS
    _delete_all(admin, servers)
    assert admin.delete(f"/os-server-groups/{gid}").status_code == 204


def test_max_server_per_host_and_affinity(admin: httpx.Client, image: str, one_vcpu: str) -> None:
    group = admin.post("/os-server-groups", json={"server_group": {
        "name": "two-per-host", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}})
    assert group.status_code == 200, group.text
    gid = group.json()["server_group"]["id"]
    servers = _boot_hinted(admin, image, one_vcpu, "two", {"group": gid}, count=8)
    assert Counter(_host(s) for s in servers) == {h: 2 for h in HOSTS}
    _delete_all(admin, servers)

    together = admin.post("/os-server-groups", json={"server_group": {"name": "together", "policy": "affinity"}})
    tid = together.json()["server_group"]["id"]
    servers = [s for i in range(3) for s in _boot_hinted(admin, image, one_vcpu, f"aff-{i}", {"group": tid})]
    assert len({_host(s) for s in servers}) == 1
    _delete_all(admin, servers)
    for g in (gid, tid):
        assert admin.delete(f"/os-server-groups/{g}").status_code == 204


def test_availability_zone_routing(admin: httpx.Client, image: str, one_vcpu: str) -> None:
    agg = admin.post("/os-aggregates", json={"aggregate": {"name": "zone-x", "availability_zone": "az-x"}})
    assert agg.status_code == 200, agg.text
    aid = agg.json()["aggregate"]["id"]
    try:
        assert admin.post(f"/os-aggregates/{aid}/action",
                          json={"add_host": {"host": "compute-2"}}).status_code == 200
        zones = {z["zoneName"] for z in admin.get("/os-availability-zone").json()["availabilityZoneInfo"]}
        assert {"az-x", "nova"} <= zones
        servers = [_boot_wait(admin, image, one_vcpu, availability_zone="az-x", networks="none")
                   for _ in range(2)]
        assert [(_host(s), s["OS-EXT-AZ:availability_zone"]) for s in servers] == [("compute-2", "az-x")] * 2
        # without a zone, a server lands in the host's zone and says so
        elsewhere = _boot_wait(admin, image, one_vcpu, availability_zone="nova", networks="none")
        assert _host(elsewhere) != "compute-2" and elsewhere["OS-EXT-AZ:availability_zone"] == "nova"
        resp = boot(admin, image, flavor=one_vcpu, availability_zone="no-such-zone", networks="none")
        assert resp.status_code == 400
        assert "availability zone is not available" in resp.json()["badRequest"]["message"]
        _delete_all(admin, [*servers, elsewhere])
    finally:
        admin.post(f"/os-aggregates/{aid}/action", json={"remove_host": {"host": "compute-2"}})
        admin.delete(f"/os-aggregates/{aid}")


def test_aggregate_metadata_routes_flavor_extra_specs(admin: httpx.Client, image: str) -> None:
    agg = admin.post("/os-aggregates", json={"aggregate": {"name": "fast-disks"}})
    aid = agg.json()["aggregate"]["id"]
    try:
        admin.post(f"/os-aggregates/{aid}/action", json={"add_host": {"host": "compute-3"}})
        resp = admin.post(f"/os-aggregates/{aid}/action", json={"set_metadata": {"metadata": {"ssd": "true"}}})
        assert resp.status_code == 200, resp.text
        ssd = _flavor(admin, "sched-ssd", extra_specs={"aggregate_instance_extra_specs:ssd": "true"})
        servers = [_boot_wait(admin, image, ssd, networks="none") for _ in range(2)]
        assert {_host(s) for s in servers} == {"compute-3"}
        nvme = _flavor(admin, "sched-nvme", extra_specs={"aggregate_instance_extra_specs:ssd": "nvme"})
        refused = _boot_wait(admin, image, nvme, networks="none")
        assert refused["status"] == "ERROR" and refused["fault"]["message"] == NO_VALID_HOST
        _delete_all(admin, [*servers, refused])
    finally:
        admin.post(f"/os-aggregates/{aid}/action", json={"remove_host": {"host": "compute-3"}})
        admin.delete(f"/os-aggregates/{aid}")


def test_disabled_and_forced_down_services_are_not_chosen(admin: httpx.Client, image: str, one_vcpu: str) -> None:
    services = {s["host"]: s["id"] for s in admin.get("/os-services", params={"binary": "nova-compute"}).json()[
        "services"]}
    changed = []
    try:
        for host in ("compute-1", "compute-2"):
            resp = admin.put(f"/os-services/{services[host]}", json={"status": "disabled",
                                                                      "disabled_reason": "maintenance"})
            assert resp.status_code == 200, resp.text
            changed.append((host, {"status": "enabled"}))
        resp = admin.put(f"/os-services/{services['compute-3']}", json={"forced_down": True})
        assert resp.status_code == 200, resp.text
        changed.append(("compute-3", {"forced_down": False}))
        servers = [_boot_wait(admin, image, one_vcpu, networks="none") for _ in range(3)]
        assert {_host(s) for s in servers} == {"compute-4"}
        _delete_all(admin, servers)
    finally:
        for host, body in changed:
            admin.put(f"/os-services/{services[host]}", json=body)


def test_same_host_and_different_host_hints(admin: httpx.Client, image: str, one_vcpu: str) -> None:
    first = _boot_wait(admin, image, one_vcpu, networks="none")
    [near_server] = _boot_hinted(admin, image, one_vcpu, "near", {"same_host": [first["id"]]})
    far_servers = _boot_hinted(admin, image, one_vcpu, "far", {"different_host": first["id"]}, count=3)
    assert _host(near_server) == _host(first)
    assert _host(first) not in {_host(s) for s in far_servers}
    _delete_all(admin, [first, near_server, *far_servers])
