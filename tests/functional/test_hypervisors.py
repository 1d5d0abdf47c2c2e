"""os-hypervisors through the REST API of a running all-in-one: list, detail, show, statistics, search, servers
and uptime (also through ``openstack hypervisor show``).

Every response is checked against tempest's schema for its version. Exact usage numbers are checked on a cloud
of their own, where no other test's servers are counted.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import psutil
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import hypervisors as schema_21
from tempest.lib.api_schema.response.compute.v2_28 import hypervisors as schema_228
from tempest.lib.api_schema.response.compute.v2_33 import hypervisors as schema_233
from tempest.lib.api_schema.response.compute.v2_53 import hypervisors as schema_253

from stratus.api.microversion import APIVersion
from stratus.local_cloud import start_cloud, stop_cloud
from tests.conftest import Cloud
from tests.functional.helpers import boot, fault, openstack_cli, upload_image, wait_for_status, wait_gone
from tests.functional.helpers import check_schema as check

HOSTS = [f"compute-{i}" for i in range(1, 5)]
VERSIONS = ["2.1", "2.27", "2.28", "2.32", "2.33", "2.52", "2.53", "2.64"]


def schema_for(version: str) -> ModuleType:
    v = APIVersion.parse(version)
    if v >= APIVersion(2, 53):
        return schema_253
    if v >= APIVersion(2, 33):
        return schema_233
    return schema_228 if v >= APIVersion(2, 28) else schema_21


def at_least(version: str, minimum: str) -> bool:
    return APIVersion.parse(version) >= APIVersion.parse(minimum)


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {h["hypervisor_hostname"]: h for h in items}


@pytest.mark.parametrize("version", VERSIONS)
def test_list_detail_show_statistics(cloud: Cloud, version: str) -> None:
    schema = schema_for(version)
    with cloud.client(version=version) as admin:
        listed = check(schema.list_search_hypervisors, admin.get("/os-hypervisors"))["hypervisors"]
        detail = check(schema.list_hypervisors_detail, admin.get("/os-hypervisors/detail"))["hypervisors"]
        stats = check(schema.get_hypervisor_statistics,
                      admin.get("/os-hypervisors/statistics"))["hypervisor_statistics"]
        shown = {h["hypervisor_hostname"]: check(schema.get_hypervisor, admin.get(f"/os-hypervisors/{h['id']}"))
                 ["hypervisor"] for h in listed}
    assert [h["hypervisor_hostname"] for h in listed] == HOSTS
    assert [set(h) for h in listed] == [{"id", "hypervisor_hostname", "state", "status"}] * 4
    uuids = at_least(version, "2.53")
    for name, h in by_name(detail).items():
        assert h == shown[name]
        assert h["id"] == by_name(listed)[name]["id"]
        assert (h["state"], h["status"], h["hypervisor_type"]) == ("up", "enabled", "fake")
        assert h["service"]["host"] == name and h["service"]["disabled_reason"] is None
        if uuids:
            assert uuid.UUID(h["id"]) and uuid.UUID(h["service"]["id"])
        else:
            assert isinstance(h["id"], int) and isinstance(h["service"]["id"], int)
        assert (h["vcpus"], h["memory_mb"], h["local_gb"]) == (64, 262144, 2048)
        assert h["free_ram_mb"] == h["memory_mb"] - h["memory_mb_used"]
        assert h["free_disk_gb"] == h["local_gb"] - h["local_gb_used"]
        assert h["memory_mb_used"] >= 512  # the host's reserved memory counts as used, as in Nova
        if at_least(version, "2.28"):
            assert h["cpu_info"]["arch"] == "x86_64"
        else:
            assert isinstance(h["cpu_info"], str) and '"arch"' in h["cpu_info"]
    assert "hypervisors_links" not in listed and "servers" not in detail[0]
    assert stats["count"] == 4
    for field in ("vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used",
                  "free_ram_mb", "free_disk_gb", "running_vms"):
        assert stats[field] == sum(h[field] for h in detail), field


def test_non_admin_is_refused(cloud: Cloud) -> None:
    with cloud.client(token="bob:proj-hv", version="2.52") as user:
        for path, rule in [("/os-hypervisors", "list"), ("/os-hypervisors/detail", "list-detail"),
                           ("/os-hypervisors/1", "show"), ("/os-hypervisors/statistics", "statistics"),
                           ("/os-hypervisors/compute/search", "search"),
                           ("/os-hypervisors/compute/servers", "servers")]:
            message = fault(user.get(path), 403, "forbidden")
            assert message == f"Policy doesn't allow os_compute_api:os-hypervisors:{rule} to be performed."


@pytest.mark.parametrize("version", ["2.1", "2.33", "2.52"])
def test_search_and_servers_routes(cloud: Cloud, version: str) -> None:
    schema = schema_for(version)
    with cloud.client(version=version) as admin:
        found = check(schema.list_search_hypervisors, admin.get("/os-hypervisors/compute/search"))["hypervisors"]
        assert [h["hypervisor_hostname"] for h in found] == HOSTS
        one = check(schema.get_hypervisors_servers, admin.get("/os-hypervisors/compute-3/servers"))["hypervisors"]
        assert [h["hypervisor_hostname"] for h in one] == ["compute-3"]
        for route in ("search", "servers"):
            message = fault(admin.get(f"/os-hypervisors/nothing-like-it/{route}"), 404, "itemNotFound")
            assert message == "No hypervisor matching 'nothing-like-it' could be found."
    with cloud.client(version="2.53") as admin:
        fault(admin.get("/os-hypervisors/compute/search"), 404, "itemNotFound")
        fault(admin.get("/os-hypervisors/compute/servers"), 404, "itemNotFound")


@pytest.mark.parametrize("version", ["2.33", "2.52", "2.53"])
def test_pagination(cloud: Cloud, version: str) -> None:
    schema = schema_for(version)
    with cloud.client(version=version) as admin:
        everything = admin.get("/os-hypervisors/detail").json()["hypervisors"]
        page = check(schema.list_hypervisors_detail, admin.get("/os-hypervisors/detail", params={"limit": 2}))
        assert page["hypervisors"] == everything[:2]
        [link] = page["hypervisors_links"]
        assert link["rel"] == "next"
        assert link["href"].split("?")[0].endswith("/v2.1/os-hypervisors/detail")
        assert f"marker={page['hypervisors'][1]['id']}" in link["href"] and "limit=2" in link["href"]
        rest = check(schema.list_hypervisors_detail, admin.get(link["href"]))
        assert rest["hypervisors"] == everything[2:4]
        # The last page is full too, so it links on; the page after is empty and does not.
        last = admin.get("/os-hypervisors", params={"limit": 2, "marker": everything[3]["id"]}).json()
        assert last == {"hypervisors": []}
        listed = check(schema.list_search_hypervisors, admin.get("/os-hypervisors", params={"limit": 3}))
        assert len(listed["hypervisors"]) == 3 and "/v2.1/os-hypervisors?" in listed["hypervisors_links"][0]["href"]
        assert admin.get("/os-hypervisors", params={"limit": 0}).json() == {"hypervisors": []}

        message = fault(admin.get("/os-hypervisors", params={"marker": "nope"}), 400, "badRequest")
        assert message == "marker [nope] not found"
        message = fault(admin.get("/os-hypervisors/detail", params={"limit": "-1"}), 400, "badRequest")
        assert message.startswith("Invalid input for query parameters limit. Value: -1.")
    with cloud.client(version="2.32") as admin:
        # Before 2.33 paging parameters mean nothing.
        assert len(admin.get("/os-hypervisors", params={"limit": 1}).json()["hypervisors"]) == 4


def test_hostname_pattern_and_query_checks_v253(cloud: Cloud) -> None:
    with cloud.client(version="2.53") as admin:
        got = check(schema_253.list_search_hypervisors,
                    admin.get("/os-hypervisors", params={"hypervisor_hostname_pattern": "compute-2"}))
        assert [h["hypervisor_hostname"] for h in got["hypervisors"]] == ["compute-2"]
        assert "hypervisors_links" not in got
        got = check(schema_253.list_hypervisors_detail,
                    admin.get("/os-hypervisors/detail", params={"hypervisor_hostname_pattern": "compute"}))
        assert [h["hypervisor_hostname"] for h in got["hypervisors"]] == HOSTS

        cases: list[tuple[str, dict[str, Any], int, str]] = [
            ("/os-hypervisors", {"hypervisor_hostname_pattern": "zzz"}, 404,
             "No hypervisor matching 'zzz' could be found."),
            ("/os-hypervisors", {"hypervisor_hostname_pattern": "compute", "limit": 1}, 400,
             "Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported."),
            ("/os-hypervisors/detail", {"hypervisor_hostname_pattern": "compute", "marker": "x"}, 400,
             "Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported."),
            ("/os-hypervisors", {"hypervisor_hostname_pattern": "comp ute"}, 400,
             "Invalid input for query parameters hypervisor_hostname_pattern. Value: comp ute."),
            ("/os-hypervisors", {"with_servers": "maybe"}, 400,
             "Invalid input for query parameters with_servers. Value: maybe."),
            ("/os-hypervisors/detail", {"sort_key": "id"}, 400,
             "Additional properties are not allowed ('sort_key' was unexpected)"),
            ("/os-hypervisors", {"limit": ["1", "2"]}, 400, "Invalid input for query parameters limit."),
            ("/os-hypervisors", {"marker": str(uuid.uuid4())}, 400, "not found"),
        ]
        for path, params, code, expected in cases:
            message = fault(admin.get(path, params=params), code, "badRequest" if code == 400 else "itemNotFound")
            assert expected in message, (path, params, message)
    with cloud.client(version="2.52") as admin:
        # Before 2.53 these parameters are ignored, unknown ones too.
        got = admin.get("/os-hypervisors", params={"hypervisor_hostname_pattern": "zzz", "with_servers": "1",
                                                   "foo": "bar"})
        assert [h["hypervisor_hostname"] for h in got.json()["hypervisors"]] == HOSTS


def test_show_errors(cloud: Cloud) -> None:
    with cloud.client(version="2.52") as admin:
        for bad in ("abc", "99999", "1.5", str(10**30)):
            message = fault(admin.get(f"/os-hypervisors/{bad}"), 404, "itemNotFound")
            assert message == f"Hypervisor with ID '{bad}' could not be found."
        assert admin.get("/os-hypervisors/1", params={"with_servers": "x"}).status_code == 200
    with cloud.client(version="2.53") as admin:
        assert fault(admin.get("/os-hypervisors/1"), 400, "badRequest") == "Invalid uuid 1"
        missing = str(uuid.uuid4())
        message = fault(admin.get(f"/os-hypervisors/{missing}"), 404, "itemNotFound")
        assert message == f"Hypervisor with ID '{missing}' could not be found."
        hv_id = admin.get("/os-hypervisors").json()["hypervisors"][0]["id"]
        assert "'marker' was unexpected" in fault(admin.get(f"/os-hypervisors/{hv_id}", params={"marker": "x"}),
                                                  400, "badRequest")


def test_state_and_status_follow_the_service(cloud: Cloud) -> None:
    with cloud.client(version="2.53") as admin:
        [service] = admin.get("/os-services", params={"host": "compute-3", "binary": "nova-compute"}
                              ).json()["services"]
        url = f"/os-services/{service['id']}"
        before = admin.get("/os-hypervisors/statistics").json()["hypervisor_statistics"]
        try:
            assert admin.put(url, json={"status": "disabled", "disabled_reason": "hw check",
                                        "forced_down": True}).status_code == 200
            detail = check(schema_253.list_hypervisors_detail, admin.get("/os-hypervisors/detail"))
            h = by_name(detail["hypervisors"])["compute-3"]
            assert (h["state"], h["status"], h["service"]["disabled_reason"]) == ("down", "disabled", "hw check")
            assert h["service"]["id"] == service["id"]
            # Statistics count the hypervisors of enabled services only, as Nova's.
            after = admin.get("/os-hypervisors/statistics").json()["hypervisor_statistics"]
            assert after["count"] == before["count"] - 1
            assert after["vcpus"] == before["vcpus"] - h["vcpus"]
        finally:
            assert admin.put(url, json={"status": "enabled", "forced_down": False}).status_code == 200
        h = by_name(admin.get("/os-hypervisors").json()["hypervisors"])["compute-3"]
        assert (h["state"], h["status"]) == ("up", "enabled")


UPTIME = re.compile(r" (\d\d:\d\d:\d\d) up (?:(\d+) days?, )?(?:(\d+) min|\s?(\d+):(\d\d)), +(\d+) users?,  "
                    r"load average: \d+\.\d\d, \d+\.\d\d, \d+\.\d\d")


def _up_minutes(match: re.Match[str]) -> int:
    days, minutes, hours, hour_minutes = match.group(2, 3, 4, 5)
    return int(days or 0) * 1440 + (int(minutes) if minutes else int(hours) * 60 + int(hour_minutes))


@pytest.mark.parametrize("version", VERSIONS)
def test_uptime(cloud: Cloud, version: str) -> None:
    """``GET /os-hypervisors/{id}/uptime`` before 2.88: the list body plus the simulated host's ``uptime`` line,
    which shows the host's clock now and counts from the host's start (when the cloud's process started)."""
    schema = schema_for(version)
    process_age = (time.time() - psutil.Process(cloud.proc.pid).create_time()) / 60  # minutes
    with cloud.client(version=version) as admin:
        listed = admin.get("/os-hypervisors").json()["hypervisors"]
        for h in listed:
            before = time.localtime()
            got = check(schema.get_hypervisor_uptime, admin.get(f"/os-hypervisors/{h['id']}/uptime"))["hypervisor"]
            after = time.localtime()
            assert set(got) == {"id", "hypervisor_hostname", "state", "status", "uptime"}
            assert {k: got[k] for k in h} == h  # the same id (int, or uuid from 2.53) and state as the list
            match = UPTIME.fullmatch(got["uptime"])
            assert match, got["uptime"]
            assert match.group(1) in {time.strftime("%H:%M:%S", t) for t in (before, after)}
            assert process_age - 1.5 <= _up_minutes(match) <= process_age + 0.5, (got["uptime"], process_age)
        # any query is accepted (Nova's uptime query schema is empty)
        assert admin.get(f"/os-hypervisors/{listed[0]['id']}/uptime", params={"foo": "bar"}).status_code == 200


def test_uptime_errors(cloud: Cloud) -> None:
    with cloud.client(token="bob:proj-hv", version="2.53") as user:
        message = fault(user.get(f"/os-hypervisors/{uuid.uuid4()}/uptime"), 403, "forbidden")
        assert message == "Policy doesn't allow os_compute_api:os-hypervisors:uptime to be performed."
    with cloud.client(version="2.52") as admin:
        for bad in ("abc", "99999"):
            message = fault(admin.get(f"/os-hypervisors/{bad}/uptime"), 404, "itemNotFound")
            assert message == f"Hypervisor with ID '{bad}' could not be found."
    with cloud.client(version="2.53") as admin:
        assert fault(admin.get("/os-hypervisors/1/uptime"), 400, "badRequest") == "Invalid uuid 1"
        missing = str(uuid.uuid4())
        message = fault(admin.get(f"/os-hypervisors/{missing}/uptime"), 404, "itemNotFound")
        assert message == f"Hypervisor with ID '{missing}' could not be found."

        # a host whose service is down: Nova's ComputeServiceUnavailable, a 400
        [service] = admin.get("/os-services", params={"host": "compute-2", "binary": "nova-compute"}
                              ).json()["services"]
        hv = by_name(admin.get("/os-hypervisors").json()["hypervisors"])["compute-2"]
        try:
            assert admin.put(f"/os-services/{service['id']}", json={"forced_down": True}).status_code == 200
            message = fault(admin.get(f"/os-hypervisors/{hv['id']}/uptime"), 400, "badRequest")
            assert message == "Compute service of compute-2 is unavailable at this time."
        finally:
            assert admin.put(f"/os-services/{service['id']}", json={"forced_down": False}).status_code == 200
        assert admin.get(f"/os-hypervisors/{hv['id']}/uptime").status_code == 200


def test_openstack_hypervisor_show(cloud: Cloud, tmp_path: Path) -> None:
    """``openstack hypervisor show`` reads the uptime route (the CLI speaks 2.64 here) and splits the line."""
    cli = openstack_cli(cloud.clouds_yaml(tmp_path / "clouds.yaml"), tmp_path)
    shown = cli("hypervisor", "show", "compute-3", "-f", "json")
    assert shown["hypervisor_hostname"] == "compute-3" and shown["state"] == "up"
    assert re.fullmatch(r"\d\d:\d\d:\d\d", shown["host_time"]), shown
    assert re.fullmatch(r"\d+ min", shown["uptime"]), shown
    assert shown["users"] == "0"
    assert re.fullmatch(r"\d+\.\d\d, \d+\.\d\d, \d+\.\d\d", shown["load_average"]), shown


# --- exact usage: a cloud of its own --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def own_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("hypervisors-cloud"))
    try:
        yield c
    finally:
        stop_cloud(c)


def _wait_usage(admin: httpx.Client, name: str, running_vms: int, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        h = by_name(admin.get("/os-hypervisors/detail").json()["hypervisors"])[name]
        if h["running_vms"] == running_vms and (running_vms or h["vcpus_used"] == 0):
            return h
        assert time.monotonic() < deadline, h
        time.sleep(0.05)


def test_usage_comes_from_placement_and_instances(own_cloud: Cloud) -> None:
    with own_cloud.image_client() as img:
        image = upload_image(img)
    with own_cloud.client(version="2.53") as admin:
        ids = []
        for flavor, host in (("2", "compute-1"), ("2", "compute-1"), ("1", "compute-2")):  # small, small, tiny
            resp = boot(admin, image["id"], flavor=flavor, networks="none", availability_zone=f"nova:{host}")
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["server"]["id"])
        for server_id in ids:
            assert wait_for_status(admin, server_id, {"ACTIVE", "ERROR"})["status"] == "ACTIVE"

        detail = check(schema_253.list_hypervisors_detail, admin.get("/os-hypervisors/detail",
                                                                     params={"with_servers": "true"}))
        hv = by_name(detail["hypervisors"])
        one, two, three = hv["compute-1"], hv["compute-2"], hv["compute-3"]
        # m1.small is 1 vcpu, 2048 MB, 20 GB; m1.tiny 1 vcpu, 512 MB, 1 GB; 512 MB are reserved for the host.
        assert (one["vcpus_used"], one["memory_mb_used"], one["local_gb_used"], one["running_vms"]) == (
            2, 512 + 2 * 2048, 40, 2)
        assert (one["free_ram_mb"], one["free_disk_gb"]) == (262144 - 512 - 4096, 2048 - 40)
        assert (two["vcpus_used"], two["memory_mb_used"], two["local_gb_used"], two["running_vms"]) == (
            1, 512 + 512, 1, 1)
        assert (three["vcpus_used"], three["memory_mb_used"], three["running_vms"]) == (0, 512, 0)
        assert {s["uuid"] for s in one["servers"]} == set(ids[:2])
        assert [s["uuid"] for s in two["servers"]] == [ids[2]]
        assert all(re.fullmatch(r"instance-[0-9a-f]{8}", s["name"]) for s in one["servers"] + two["servers"])
        assert "servers" not in three  # none on it: the key is left out before 2.75

        listed = check(schema_253.list_search_hypervisors,
                       admin.get("/os-hypervisors", params={"with_servers": "1",
                                                            "hypervisor_hostname_pattern": "compute-2"}))
        assert [[s["uuid"] for s in h["servers"]] for h in listed["hypervisors"]] == [[ids[2]]]
        shown = check(schema_253.get_hypervisor, admin.get(f"/os-hypervisors/{one['id']}",
                                                           params={"with_servers": "yes"}))["hypervisor"]
        assert shown == one
        plain = check(schema_253.get_hypervisor, admin.get(f"/os-hypervisors/{one['id']}"))["hypervisor"]
        assert "servers" not in plain

        stats = check(schema_253.get_hypervisor_statistics,
                      admin.get("/os-hypervisors/statistics"))["hypervisor_statistics"]
        assert (stats["count"], stats["vcpus_used"], stats["running_vms"], stats["local_gb_used"]) == (4, 3, 3, 41)
        assert stats["memory_mb_used"] == 4 * 512 + 2 * 2048 + 512

    with own_cloud.client(version="2.52") as admin:
        found = check(schema_233.get_hypervisors_servers,
                      admin.get("/os-hypervisors/compute-1/servers"))["hypervisors"]
        assert [{s["uuid"] for s in h["servers"]} for h in found] == [set(ids[:2])]
        found = check(schema_233.get_hypervisors_servers, admin.get("/os-hypervisors/compute-3/servers"))
        assert "servers" not in found["hypervisors"][0]

    with own_cloud.client(version="2.53") as admin:
        for server_id in ids:
            assert admin.delete(f"/servers/{server_id}").status_code == 204
        for server_id in ids:
            wait_gone(admin, server_id)
        one = _wait_usage(admin, "compute-1", 0)
        assert (one["vcpus_used"], one["memory_mb_used"], one["local_gb_used"]) == (0, 512, 0)
