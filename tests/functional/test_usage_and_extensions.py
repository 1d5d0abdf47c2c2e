"""The read-side APIs of usage and discovery: os-simple-tenant-usage (2.40 paging), os-instance_usage_audit_log and
/extensions, through HTTP against the all-in-one, with tempest's schemas as the contract."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import httpx
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import extensions as extensions_schema
from tempest.lib.api_schema.response.compute.v2_1 import instance_usage_audit_logs as audit_schema
from tempest.lib.api_schema.response.compute.v2_1 import tenant_usages as usage_schema

from tests.conftest import Cloud
from tests.functional.helpers import boot, fault, upload_image, wait_for_status, wait_gone
from tests.functional.helpers import check_schema as check

FMT = "%Y-%m-%dT%H:%M:%S"


@pytest.fixture(scope="module")
def image(cloud: Cloud) -> dict[str, Any]:
    with cloud.image_client() as img:
        return upload_image(img)


def _period() -> dict[str, str]:
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return {"start": (now - datetime.timedelta(hours=1)).strftime(FMT),
            "end": (now + datetime.timedelta(days=1)).strftime(FMT)}


def _servers(c: httpx.Client, image_id: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        resp = boot(c, image_id)
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["server"]["id"])
    for server_id in ids:
        wait_for_status(c, server_id, {"ACTIVE"})
    return ids


def test_simple_tenant_usage(cloud: Cloud, image: dict[str, Any]) -> None:
    project = f"usage-{uuid.uuid4().hex[:8]}"
    with cloud.client(token=f"u:{project}") as user:
        ids = _servers(user, image["id"], 3)
        assert user.delete(f"/servers/{ids[2]}").status_code == 204
        wait_gone(user, ids[2])
        shown = check(usage_schema.get_tenant_usage,
                      user.get(f"/os-simple-tenant-usage/{project}", params=_period()))["tenant_usage"]
        assert shown["tenant_id"] == project
        usages = {u["instance_id"]: u for u in shown["server_usages"]}
        assert set(usages) == set(ids)
        assert usages[ids[2]]["state"] == "terminated" and usages[ids[2]]["ended_at"]
        assert usages[ids[0]]["state"] == "active" and usages[ids[0]]["ended_at"] is None
        assert usages[ids[0]]["flavor"] == "m1.tiny" and usages[ids[0]]["vcpus"] == 1
        assert 0 < shown["total_hours"] < 3 * 1.1
        assert shown["total_vcpus_usage"] == pytest.approx(sum(u["hours"] * u["vcpus"] for u in usages.values()))
        # another project's usage is the admin's to see; the list is the admin's alone
        fault(user.get("/os-simple-tenant-usage/other-project", params=_period()), 403, "forbidden")
        fault(user.get("/os-simple-tenant-usage", params=_period()), 403, "forbidden")
        # a period before the servers: nothing
        empty = user.get(f"/os-simple-tenant-usage/{project}",
                         params={"start": "2000-01-01T00:00:00", "end": "2000-01-02T00:00:00"})
        assert empty.json() == {"tenant_usage": {}}
        for bad, message in (({"start": "yesterday"}, "Invalid datetime string: Datetime is in invalid format"),
                             ({"start": "2030-01-01T00:00:00", "end": "2029-01-01T00:00:00"},
                              "Invalid start time. The start time cannot occur after the end time.")):
            assert fault(user.get(f"/os-simple-tenant-usage/{project}", params=bad), 400, "badRequest") == message
    with cloud.client() as admin:
        listed = check(usage_schema.list_tenant_usage,
                       admin.get("/os-simple-tenant-usage", params={**_period(), "detailed": "1"}))["tenant_usages"]
        mine = next(u for u in listed if u["tenant_id"] == project)
        assert {u["instance_id"] for u in mine["server_usages"]} == set(ids)
        plain = admin.get("/os-simple-tenant-usage", params=_period()).json()["tenant_usages"]
        assert all("server_usages" not in u for u in plain)
    with cloud.client(version="2.40") as admin:
        # 2.40: pages of servers, in project and uuid order, with a next link
        first = admin.get(f"/os-simple-tenant-usage/{project}", params={**_period(), "limit": "2"}).json()
        assert len(first["tenant_usage"]["server_usages"]) == 2 and first["tenant_usage_links"][0]["rel"] == "next"
        page = sorted(ids)
        assert [u["instance_id"] for u in first["tenant_usage"]["server_usages"]] == page[:2]
        rest = admin.get(f"/os-simple-tenant-usage/{project}",
                         params={**_period(), "limit": "2", "marker": page[1]}).json()
        assert [u["instance_id"] for u in rest["tenant_usage"]["server_usages"]] == page[2:]
        assert "tenant_usage_links" not in rest
        assert fault(admin.get("/os-simple-tenant-usage", params={"marker": str(uuid.uuid4())}), 400,
                     "badRequest").startswith("Marker ")
    with cloud.client(version="2.75") as admin:
        assert "'bogus' was unexpected" in fault(admin.get("/os-simple-tenant-usage", params={"bogus": 1}), 400,
                                                 "badRequest")
    with cloud.client(version="2.74") as admin:
        assert admin.get("/os-simple-tenant-usage", params={"bogus": 1}).status_code == 200
    with cloud.client(token=f"u:{project}") as user:
        for server_id in ids[:2]:
            user.delete(f"/servers/{server_id}")


def test_instance_usage_audit_log(cloud: Cloud) -> None:
    with cloud.client() as admin:
        log = check(audit_schema.list_instance_usage_audit_log,
                    admin.get("/os-instance_usage_audit_log"))["instance_usage_audit_logs"]
        hosts = {s["host"] for s in admin.get("/os-services", params={"binary": "nova-compute"}).json()["services"]}
        # no audit runs here: every compute host is reported as not run
        assert set(log["hosts_not_run"]) == hosts and log["num_hosts"] == len(hosts) == log["num_hosts_not_run"]
        assert log["overall_status"] == f"0 of {len(hosts)} hosts done. 0 errors."
        today = datetime.datetime.now(datetime.UTC)
        assert log["period_ending"] == f"{today.year:04d}-{today.month:02d}-01 00:00:00"
        shown = check(audit_schema.get_instance_usage_audit_log,
                      admin.get("/os-instance_usage_audit_log/2020-03-15 10:00:00"))["instance_usage_audit_log"]
        assert (shown["period_beginning"], shown["period_ending"]) == ("2020-02-01 00:00:00", "2020-03-01 00:00:00")
        january = admin.get("/os-instance_usage_audit_log/2021-01-01 00:00:00.5").json()["instance_usage_audit_log"]
        assert (january["period_beginning"], january["period_ending"]) == ("2020-12-01 00:00:00",
                                                                          "2021-01-01 00:00:00")
        assert fault(admin.get("/os-instance_usage_audit_log/yesterday"), 400, "badRequest") == (
            "Invalid timestamp for date yesterday")
    with cloud.client(token="u:p") as user:
        fault(user.get("/os-instance_usage_audit_log"), 403, "forbidden")


def test_extensions(cloud: Cloud) -> None:
    with cloud.client(token=f"u:{uuid.uuid4().hex[:8]}") as c:
        listed = check(extensions_schema.list_extensions, c.get("/extensions"))["extensions"]
        assert "Hosts" in {e["name"] for e in listed} and len(listed) == 99
        shown = c.get("/extensions/os-consoles").json()["extension"]
        assert shown["alias"] == "os-consoles" and shown == next(e for e in listed if e["alias"] == "os-consoles")
        fault(c.get("/extensions/os-nothing"), 404, "itemNotFound")
