"""Instance actions through the REST API: what a boot, a delete and a failing build leave behind, per version."""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import servers as schema_21
from tempest.lib.api_schema.response.compute.v2_51 import servers as schema_251
from tempest.lib.api_schema.response.compute.v2_58 import servers as schema_258
from tempest.lib.api_schema.response.compute.v2_62 import servers as schema_262
from tempest.lib.api_schema.response.compute.v2_63 import servers as schema_263
from tempest.lib.api_schema.response.compute.v2_100 import servers as schema_2100

from stratus.api.microversion import MAX_VERSION
from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from stratus.utils import parse_isotime
from tests.functional.helpers import boot, fault, upload_image, wait_for_status, wait_gone
from tests.functional.helpers import check_schema as check

LATEST = str(MAX_VERSION)
ADMIN = "admin:admin"
MEMBER = "ia-user:ia-proj"
SCHEDULE, RETRY = "conductor_schedule_and_build_instances", "conductor_build_instances"
BUILD, TERMINATE = "compute__do_build_and_run_instance", "compute_terminate_instance"
# the tempest schema module of each version tested, as tempest's servers client picks them
SCHEMAS: dict[str, ModuleType] = {"2.1": schema_21, "2.21": schema_21, "2.50": schema_21, "2.51": schema_251,
                                  "2.58": schema_258, "2.62": schema_262, "2.63": schema_263,
                                  LATEST: schema_2100}


def _vt(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _boot(client: httpx.Client, image_id: str, **extra: Any) -> str:
    resp = boot(client, image_id, **extra)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["server"]["id"])


def _actions(cloud: Cloud, token: str, version: str, server_id: str, **params: str) -> dict[str, Any]:
    with cloud.client(token=token, version=version) as c:
        resp = c.get(f"/servers/{server_id}/os-instance-actions", params=params)
    return check(SCHEMAS[version].list_instance_actions, resp)


def _action(cloud: Cloud, token: str, version: str, server_id: str, request_id: str) -> dict[str, Any]:
    with cloud.client(token=token, version=version) as c:
        resp = c.get(f"/servers/{server_id}/os-instance-actions/{request_id}")
    return dict(check(SCHEMAS[version].show_instance_action, resp)["instanceAction"])


def _host_id(project_id: str, host: str) -> str:
    return hashlib.sha224((project_id + host).encode()).hexdigest()


@pytest.fixture(scope="module")
def image(cloud: Cloud) -> dict[str, Any]:
    with cloud.image_client() as img:
        return upload_image(img)


@pytest.fixture(scope="module")
def active(cloud: Cloud, image: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A member's server, built: the admin's view of it (with its host)."""
    with cloud.client(token=MEMBER) as member, cloud.client(token=ADMIN) as admin:
        server_id = _boot(member, image["id"])
        wait_for_status(member, server_id, {"ACTIVE"})
        yield admin.get(f"/servers/{server_id}").json()["server"]
        member.delete(f"/servers/{server_id}")
        wait_gone(member, server_id)


@pytest.fixture(scope="module")
def deleted(cloud: Cloud, image: dict[str, Any]) -> str:
    """A member's server, built then deleted: two actions, create and delete."""
    with cloud.client(token=MEMBER) as member:
        server_id = _boot(member, image["id"])
        wait_for_status(member, server_id, {"ACTIVE"})
        assert member.delete(f"/servers/{server_id}").status_code == 204
        wait_gone(member, server_id)
    return server_id


@pytest.mark.parametrize("version", list(SCHEMAS))
def test_create_action_and_its_events(cloud: Cloud, active: dict[str, Any], version: str) -> None:
    server_id, host = active["id"], active["OS-EXT-SRV-ATTR:host"]
    listed = {token: _actions(cloud, token, version, server_id)["instanceActions"] for token in (ADMIN, MEMBER)}
    assert listed[ADMIN] == listed[MEMBER]
    [create] = listed[MEMBER]
    assert (create["action"], create["instance_uuid"], create["message"]) == ("create", server_id, None)
    assert (create["user_id"], create["project_id"]) == ("ia-user", "ia-proj")
    assert create["request_id"].startswith("req-")
    assert ("updated_at" in create) == (_vt(version) >= (2, 58))

    for token in (ADMIN, MEMBER):
        shown = _action(cloud, token, version, server_id, create["request_id"])
        events = shown.pop("events", None)
        assert shown == create
        if token == MEMBER and _vt(version) < (2, 51):
            assert events is None  # before 2.51 only admins see events
            continue
        assert events is not None
        assert [(e["event"], e["result"]) for e in events] == [(BUILD, "Success"), (SCHEDULE, "Success")]
        for e in events:
            assert e["start_time"] <= e["finish_time"]
            assert ("traceback" in e) == (token == ADMIN)
            assert e.get("traceback") is None
            assert ("hostId" in e) == (_vt(version) >= (2, 62))
            assert ("host" in e) == (token == ADMIN and _vt(version) >= (2, 62))
        build = events[0]
        if _vt(version) >= (2, 62):
            assert build["hostId"] == _host_id("ia-proj", host) == active["hostId"]
            # the conductor records its own host (an all-in-one's [DEFAULT] host)
            assert events[1]["hostId"] not in ("", build["hostId"])
        if token == ADMIN and _vt(version) >= (2, 62):
            assert build["host"] == host
        if _vt(version) >= (2, 58):
            assert shown["updated_at"] == build["finish_time"]  # the last thing that happened to it


def test_deleted_servers_actions_from_2_21(cloud: Cloud, deleted: str) -> None:
    with cloud.client(token=MEMBER, version="2.20") as old:
        for path in ("", "/req-x"):
            message = fault(old.get(f"/servers/{deleted}/os-instance-actions{path}"), 404, "itemNotFound")
            assert message == f"Instance {deleted} could not be found."
    for version in ("2.21", "2.62"):
        actions = _actions(cloud, MEMBER, version, deleted)["instanceActions"]
        assert [a["action"] for a in actions] == ["delete", "create"]
    delete = _action(cloud, ADMIN, "2.62", deleted, actions[0]["request_id"])
    [terminate] = delete["events"]
    assert (terminate["event"], terminate["result"], terminate["traceback"]) == (TERMINATE, "Success", None)
    assert re.fullmatch(r"compute-\d", terminate["host"])
    assert terminate["hostId"] == _host_id("ia-proj", terminate["host"])


def test_pagination_and_changes_since_from_2_58(cloud: Cloud, deleted: str) -> None:
    everything = _actions(cloud, MEMBER, "2.58", deleted)
    assert "links" not in everything
    delete, create = everything["instanceActions"]
    assert create["updated_at"] < delete["start_time"] <= delete["updated_at"]

    first = _actions(cloud, MEMBER, "2.58", deleted, limit="1")
    assert first["instanceActions"] == [delete]
    [link] = first["links"]
    url = urlsplit(link["href"])
    assert link["rel"] == "next" and url.path.endswith(f"/v2.1/servers/{deleted}/os-instance-actions")
    params = dict(parse_qsl(url.query))
    assert params == {"limit": "1", "marker": delete["request_id"]}
    second = _actions(cloud, MEMBER, "2.58", deleted, **params)
    assert second["instanceActions"] == [create]
    assert dict(parse_qsl(urlsplit(second["links"][0]["href"]).query))["marker"] == create["request_id"]
    last = _actions(cloud, MEMBER, "2.58", deleted, limit="1", marker=create["request_id"])
    assert last == {"instanceActions": []}
    assert _actions(cloud, MEMBER, "2.58", deleted, marker=delete["request_id"]) == {"instanceActions": [create]}
    assert _actions(cloud, MEMBER, "2.58", deleted, limit="0") == {"instanceActions": []}

    def since(value: str) -> list[str]:
        return [a["action"] for a in _actions(cloud, MEMBER, "2.58", deleted, **{"changes-since": value})
                ["instanceActions"]]

    def in_plus_one(value: str) -> str:  # the same instant, written an hour east of UTC
        return (parse_isotime(value) + datetime.timedelta(hours=1)).isoformat(timespec="microseconds") + "+01:00"

    assert since(create["updated_at"]) == ["delete", "create"]
    assert since(create["updated_at"][:19]) == ["delete", "create"]  # whole seconds, earlier still
    assert since(in_plus_one(create["updated_at"])) == ["delete", "create"]
    assert since(delete["updated_at"] + "Z") == ["delete"]
    assert since(in_plus_one(delete["updated_at"])) == ["delete"]
    assert since("2999-01-01T00:00:00Z") == []
    page = _actions(cloud, MEMBER, "2.58", deleted, limit="1", **{"changes-since": create["updated_at"]})
    assert page["instanceActions"] == [delete]
    assert dict(parse_qsl(urlsplit(page["links"][0]["href"]).query))["changes-since"] == create["updated_at"]


def test_bad_requests_get_novas_errors(cloud: Cloud, active: dict[str, Any]) -> None:
    server_id = active["id"]
    base = f"/servers/{server_id}/os-instance-actions"
    with cloud.client(token=MEMBER, version="2.58") as c:
        cases = {
            "foo=1": "Additional properties are not allowed ('foo' was unexpected)",
            "foo=1&bar=2": "Additional properties are not allowed ('bar', 'foo' were unexpected)",
            "limit=x": "Invalid input for query parameters limit. Value: x. 'x' does not match '^[0-9]*$'",
            "limit=-1": "Invalid input for query parameters limit. Value: -1. '-1' does not match '^[0-9]*$'",
            "marker=a&marker=b": "Invalid input for query parameters marker. Value: ['a', 'b']. "
                                 "['a', 'b'] is too long",
            "changes-since=wrong_time": "Invalid input for query parameters changes-since. Value: wrong_time. "
                                        "'wrong_time' is not a 'date-time'",
            "changes-since=": "Invalid input for query parameters changes-since. Value: . '' is not a 'date-time'",
            "marker=req-unknown": "Marker req-unknown could not be found.",
        }
        for query, message in cases.items():
            assert fault(c.get(f"{base}?{query}"), 400, "badRequest") == message, query
        # the query is checked before the server is looked up, as Nova's schema does
        assert fault(c.get("/servers/nope/os-instance-actions?foo=1"), 400, "badRequest").startswith("Additional")
    with cloud.client(token=MEMBER, version="2.57") as c:  # before 2.58 the query is ignored
        assert len(check(schema_21.list_instance_actions, c.get(f"{base}?foo=1&limit=x&marker=zz"))
                   ["instanceActions"]) == 1
    for version in ("2.1", "2.58", LATEST):
        with cloud.client(token=MEMBER, version=version) as c:
            for path in ("/servers/nope/os-instance-actions", "/servers/nope/os-instance-actions/req-1"):
                assert fault(c.get(path), 404, "itemNotFound") == "Instance nope could not be found."
            assert fault(c.get(f"{base}/req-unknown"), 404, "itemNotFound") == "Action req-unknown not found"
            assert fault(c.get(f"{base}/999"), 404, "itemNotFound") == "Action 999 not found"
    with cloud.client(token="ia-other:ia-elsewhere", version="2.62") as other:  # someone else's server
        for path in (base, f"{base}/req-1"):
            assert fault(other.get(path), 404, "itemNotFound") == f"Instance {server_id} could not be found."
    with cloud.client(token=MEMBER) as c:
        assert fault(c.post(base, json={}), 405, "badMethod")


# --- failing builds -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def failing_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """Four hosts, three of which fail every build; every host is tried before a build fails."""
    cloud = start_cloud(tmp_path_factory.mktemp("failing-actions"), extra_conf="""
        [fake_driver]
        host_count = 4
        fail_hosts = compute-1,compute-2,compute-3
        [scheduler]
        max_attempts = 4
        """)
    try:
        yield cloud
    finally:
        stop_cloud(cloud)


def _build_events(cloud: Cloud, server_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    [create] = _actions(cloud, ADMIN, "2.62", server_id)["instanceActions"]
    shown = _action(cloud, ADMIN, "2.62", server_id, create["request_id"])
    return shown, shown["events"]


def test_every_attempt_of_a_failing_build_is_an_event(failing_cloud: Cloud) -> None:
    with failing_cloud.image_client() as img:
        image = upload_image(img)
    with failing_cloud.client(token=ADMIN) as admin, failing_cloud.client(token=MEMBER) as member:
        flavor = admin.post("/flavors", json={"flavor": {"name": "doomed", "ram": 64, "vcpus": 1, "disk": 1}})
        assert flavor.status_code == 200, flavor.text
        fid = flavor.json()["flavor"]["id"]
        resp = admin.post(f"/flavors/{fid}/os-extra_specs", json={"extra_specs": {"fake:fail_on_hosts": "compute-4"}})
        assert resp.status_code == 200, resp.text
        server_id = _boot(member, image["id"], flavor=fid)
        wait_for_status(member, server_id, {"ERROR"})

    shown, events = _build_events(failing_cloud, server_id)
    assert shown["message"] == "Error"
    builds = [e for e in events if e["event"] == BUILD]
    assert sorted(e["host"] for e in builds) == ["compute-1", "compute-2", "compute-3", "compute-4"]
    for e in builds:
        assert e["result"] == "Error" and e["finish_time"] is not None
        assert e["hostId"] == _host_id("ia-proj", e["host"])
        assert "FakeSpawnError" in e["traceback"] and e["host"] in e["traceback"], e["traceback"]
    # newest first: the conductor gave up last, after each failed attempt asked it for another host
    assert [(e["event"], e["result"]) for e in events] == [
        (RETRY, "Error"), (BUILD, "Error"), (RETRY, "Success"), (BUILD, "Error"), (RETRY, "Success"),
        (BUILD, "Error"), (RETRY, "Success"), (BUILD, "Error"), (SCHEDULE, "Success")]
    assert "Exceeded maximum number of retries" in events[0]["traceback"]

    for version in ("2.51", "2.62"):  # the owner sees the events, never a traceback or a host name
        mine = _action(failing_cloud, MEMBER, version, server_id, shown["request_id"])["events"]
        assert [(e["event"], e["result"]) for e in mine] == [(e["event"], e["result"]) for e in events]
        assert all("traceback" not in e and "host" not in e for e in mine)
        assert [e.get("hostId") for e in mine] == [e["hostId"] if version == "2.62" else None for e in events]
    assert "events" not in _action(failing_cloud, MEMBER, "2.50", server_id, shown["request_id"])
    old = _action(failing_cloud, ADMIN, "2.50", server_id, shown["request_id"])["events"]
    assert [e["traceback"] for e in old] == [e["traceback"] for e in events]
    assert all("host" not in e and "hostId" not in e for e in old)


def test_a_rescheduled_build_shows_each_host_tried(failing_cloud: Cloud) -> None:
    with failing_cloud.image_client() as img:
        image = upload_image(img)
    with failing_cloud.client(token=MEMBER) as member:
        server_id = _boot(member, image["id"])
        wait_for_status(member, server_id, {"ACTIVE"})
    shown, events = _build_events(failing_cloud, server_id)
    builds = [e for e in events if e["event"] == BUILD]
    retries = [e for e in events if e["event"] == RETRY]
    assert (builds[0]["host"], builds[0]["result"], builds[0]["traceback"]) == ("compute-4", "Success", None)
    assert len({e["host"] for e in builds}) == len(builds)  # never the same host twice
    assert all(e["result"] == "Error" and e["host"] != "compute-4" for e in builds[1:])
    assert [e["result"] for e in retries] == ["Success"] * (len(builds) - 1)
    assert shown["message"] == ("Error" if len(builds) > 1 else None)  # Nova marks any failed step
    with failing_cloud.client(token=MEMBER) as member:
        member.delete(f"/servers/{server_id}")
        wait_gone(member, server_id)


def test_request_id_header_names_the_action(cloud: Cloud) -> None:
    """Nova's x-openstack-request-id (and x-compute-request-id) on every response: for a boot, the id of its
    create action (tempest waits for servers through it)."""
    with cloud.image_client() as images:
        image = upload_image(images)
    with cloud.client("rid-user:rid-proj", version="2.21") as client:
        resp = boot(client, image["id"])
        request_id = resp.headers["x-openstack-request-id"]
        assert request_id.startswith("req-") and resp.headers["x-compute-request-id"] == request_id
        server_id = resp.json()["server"]["id"]
        actions = client.get(f"/servers/{server_id}/os-instance-actions").json()["instanceActions"]
        assert [a["request_id"] for a in actions if a["action"] == "create"] == [request_id]
        missing = client.get("/servers/does-not-exist")
        assert missing.status_code == 404 and missing.headers["x-openstack-request-id"].startswith("req-")
        assert client.delete(f"/servers/{server_id}").status_code == 204
