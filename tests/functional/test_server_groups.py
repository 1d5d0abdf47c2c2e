"""Server groups through the REST API of a running all-in-one, version by version (2.1, 2.13, 2.15, 2.64):
CRUD, projects, paging, quotas, and membership through the ``group`` scheduler hint of a boot."""

from __future__ import annotations

import datetime
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import server_groups as schema_21
from tempest.lib.api_schema.response.compute.v2_13 import server_groups as schema_213
from tempest.lib.api_schema.response.compute.v2_64 import server_groups as schema_264

from tests.conftest import Cloud
from tests.functional.helpers import boot, check_schema, fault, upload_image, wait_gone


def new_project() -> str:
    return f"proj-sg-{uuid.uuid4().hex[:8]}"


def unique(prefix: str = "sg") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def set_quota(cloud: Cloud, project: str, resource: str, limit: int) -> None:
    with sqlite3.connect(cloud.state_path / "stratus.sqlite") as db:
        db.execute("INSERT INTO quotas (project_id, user_id, resource, hard_limit, created_at) VALUES (?, '', ?, ?, ?)",
                   (project, resource, limit, datetime.datetime.now().isoformat(" ")))


def needs_v264(cloud: Cloud) -> None:
    version = httpx.get(cloud.compute_url + "/").json()["version"]["version"]
    if tuple(int(p) for p in version.split(".")) < (2, 64):
        pytest.skip(f"the cloud's maximum microversion is {version}")


def create(client: httpx.Client, policy: str = "affinity", name: str | None = None, **extra: Any) -> httpx.Response:
    version = client.headers.get("OpenStack-API-Version", "compute 2.1").split()[-1]
    body: dict[str, Any] = {"name": name or unique()}
    if tuple(int(p) for p in version.split(".")) >= (2, 64):
        body["policy"] = policy
    else:
        body["policies"] = [policy]
    body.update(extra)
    return client.post("/os-server-groups", json={"server_group": body})


def test_v21_create_show_list_delete(cloud: Cloud) -> None:
    with cloud.client(token=f"sg-user:{new_project()}", version="2.1") as c:
        name = unique()
        group = check_schema(schema_21.create_show_server_group, create(c, "anti-affinity", name))["server_group"]
        assert group["name"] == name and group["policies"] == ["anti-affinity"]
        assert (group["members"], group["metadata"]) == ([], {}) and "project_id" not in group
        shown = check_schema(schema_21.create_show_server_group, c.get(f"/os-server-groups/{group['id']}"))
        assert shown["server_group"] == group
        listed = check_schema(schema_21.list_server_groups, c.get("/os-server-groups"))["server_groups"]
        assert listed == [group]
        check_schema(schema_21.delete_server_group, c.delete(f"/os-server-groups/{group['id']}"))
        for resp in (c.get(f"/os-server-groups/{group['id']}"), c.delete(f"/os-server-groups/{group['id']}")):
            assert fault(resp, 404, "itemNotFound") == f"Instance group {group['id']} could not be found."
        assert c.get("/os-server-groups").json() == {"server_groups": []}


def test_v213_owner_and_v215_soft_policies(cloud: Cloud) -> None:
    project = new_project()
    with cloud.client(token=f"sg-owner:{project}", version="2.13") as c:
        group = check_schema(schema_213.create_show_server_group, create(c))["server_group"]
        assert (group["project_id"], group["user_id"]) == (project, "sg-owner")
        check_schema(schema_213.list_server_groups, c.get("/os-server-groups"))
        c.delete(f"/os-server-groups/{group['id']}")
    with cloud.client(token=f"sg-owner:{project}", version="2.14") as c:
        fault(create(c, "soft-anti-affinity"), 400, "badRequest")
    with cloud.client(token=f"sg-owner:{project}", version="2.15") as c:
        for policy in ("soft-affinity", "soft-anti-affinity"):
            group = check_schema(schema_213.create_show_server_group, create(c, policy))["server_group"]
            assert group["policies"] == [policy]
            check_schema(schema_213.delete_server_group, c.delete(f"/os-server-groups/{group['id']}"))


def test_v264_policy_and_rules(cloud: Cloud) -> None:
    needs_v264(cloud)
    with cloud.client(token=f"sg-user:{new_project()}", version="2.64") as c:
        group = check_schema(schema_264.create_show_server_group, create(c, "anti-affinity", rules={
            "max_server_per_host": 2}))["server_group"]
        assert (group["policy"], group["rules"]) == ("anti-affinity", {"max_server_per_host": 2})
        assert "policies" not in group and "metadata" not in group
        as_string = check_schema(schema_264.create_show_server_group, create(c, "anti-affinity", rules={
            "max_server_per_host": "3"}))["server_group"]
        assert as_string["rules"] == {"max_server_per_host": 3}
        plain = check_schema(schema_264.create_show_server_group, create(c, "soft-affinity"))["server_group"]
        assert (plain["policy"], plain["rules"]) == ("soft-affinity", {})
        listed = check_schema(schema_264.list_server_groups, c.get("/os-server-groups"))["server_groups"]
        assert {g["id"] for g in listed} == {group["id"], as_string["id"], plain["id"]}
        shown = check_schema(schema_264.create_show_server_group, c.get(f"/os-server-groups/{group['id']}"))
        assert shown["server_group"] == group
        assert fault(create(c, "affinity", rules={"max_server_per_host": 2}), 400, "badRequest") == (
            "Only anti-affinity policy supports rules.")
        assert fault(create(c, "anti-affinity", rules={"max_server_per_host": "0"}), 400, "badRequest") == (
            "Invalid input for field/attribute max_server_per_host. Value: 0. 0 is less than the minimum of 1")
        for extra in ({"rules": {"max_server_per_host": 0}}, {"rules": {"max_server_per_host": "0"}},
                      {"rules": {"max_server_per_host": "x"}}, {"rules": {"other": 1}}, {"policies": ["affinity"]}):
            fault(create(c, "anti-affinity", **extra), 400, "badRequest")
        fault(c.post("/os-server-groups", json={"server_group": {"name": "n"}}), 400, "badRequest")
        # The same group at an older version: policies and the empty metadata again.
        with cloud.client(token=c.headers["X-Auth-Token"], version="2.63") as old:
            legacy = check_schema(schema_213.create_show_server_group, old.get(f"/os-server-groups/{group['id']}"))
            assert legacy["server_group"]["policies"] == ["anti-affinity"]
            assert legacy["server_group"]["metadata"] == {} and "rules" not in legacy["server_group"]
            fault(old.post("/os-server-groups", json={"server_group": {"name": "n", "policy": "affinity"}}), 400,
                  "badRequest")
        for g in (group, as_string, plain):
            check_schema(schema_264.delete_server_group, c.delete(f"/os-server-groups/{g['id']}"))


def test_bad_bodies(cloud: Cloud) -> None:
    with cloud.client(token=f"sg-user:{new_project()}", version="2.47") as c:
        bodies: list[dict[str, Any]] = [
            {}, {"server_group": {}}, {"server_group": {"name": "n"}},
            {"server_group": {"name": "", "policies": ["affinity"]}},
            {"server_group": {"name": " n", "policies": ["affinity"]}},
            {"server_group": {"name": "n", "policies": []}},
            {"server_group": {"name": "n", "policies": ["affinity", "anti-affinity"]}},
            {"server_group": {"name": "n", "policies": ["affinity", "affinity"]}},
            {"server_group": {"name": "n", "policies": ["legacy"]}},
            {"server_group": {"name": "n", "policies": "affinity"}},
            {"server_group": {"name": "n", "policies": ["affinity"], "metadata": {}}}]
        for body in bodies:
            fault(c.post("/os-server-groups", json=body), 400, "badRequest")
        assert c.get("/os-server-groups").json() == {"server_groups": []}


def test_projects_all_projects_and_paging(cloud: Cloud) -> None:
    project_a, project_b = new_project(), new_project()
    with cloud.client(token=f"sg-a:{project_a}", version="2.13") as a, \
            cloud.client(token=f"sg-b:{project_b}", version="2.13") as b, \
            cloud.client(version="2.13") as admin:
        mine = [create(a).json()["server_group"] for _ in range(3)]
        theirs = create(b).json()["server_group"]
        try:
            assert [g["id"] for g in a.get("/os-server-groups").json()["server_groups"]] == [g["id"] for g in mine]
            # all_projects is for admins; others quietly get their own.
            assert [g["id"] for g in a.get("/os-server-groups", params={"all_projects": "True"}).json()[
                "server_groups"]] == [g["id"] for g in mine]
            everything = check_schema(schema_213.list_server_groups, admin.get("/os-server-groups", params={
                "all_projects": ""}))["server_groups"]
            assert {g["id"] for g in mine} | {theirs["id"]} <= {g["id"] for g in everything}
            assert theirs["id"] not in {g["id"] for g in admin.get("/os-server-groups").json()["server_groups"]}
            paged = a.get("/os-server-groups", params={"limit": 2, "offset": 1}).json()["server_groups"]
            assert [g["id"] for g in paged] == [g["id"] for g in mine[1:3]]
            assert len(a.get("/os-server-groups", params={"limit": 0}).json()["server_groups"]) == 3
            assert a.get("/os-server-groups", params={"offset": 5}).json()["server_groups"] == []
            for params in ({"limit": "-1"}, {"offset": "x"}):
                fault(a.get("/os-server-groups", params=params), 400, "badRequest")
            # Another project's group is not found, exactly as one that does not exist (Nova's project-only query;
            # a 403 would tell it exists); admins may.
            unknown = str(uuid.uuid4())
            for verb in (b.get, b.delete):
                for group_id in (mine[0]["id"], unknown):
                    assert fault(verb(f"/os-server-groups/{group_id}"), 404, "itemNotFound") == (
                        f"Instance group {group_id} could not be found.")
            assert a.get(f"/os-server-groups/{mine[0]['id']}").status_code == 200
            shown = check_schema(schema_213.create_show_server_group, admin.get(f"/os-server-groups/{theirs['id']}"))
            assert shown["server_group"]["project_id"] == project_b
        finally:
            for g in mine:
                a.delete(f"/os-server-groups/{g['id']}")
            assert admin.delete(f"/os-server-groups/{theirs['id']}").status_code == 204


def test_integers_past_64_bits_are_400_and_store_nothing(cloud: Cloud) -> None:
    needs_v264(cloud)
    with cloud.client(token=f"sg-int:{new_project()}", version="2.64") as c:
        for params in ({"offset": str(2**70)}, {"limit": str(2**64)}):
            (key, value), = params.items()
            assert fault(c.get("/os-server-groups", params=params), 400, "badRequest") == (
                f"Invalid input for query parameters {key}. Value: {value}. {value} is greater than the maximum of "
                "9223372036854775807")
        for number in (2**70, str(2**70)):
            resp = create(c, "anti-affinity", rules={"max_server_per_host": number})
            assert fault(resp, 400, "badRequest") == (
                f"Invalid input for field/attribute max_server_per_host. Value: {2**70}. {2**70} is greater than "
                "the maximum of 9223372036854775807")
        assert c.get("/os-server-groups").json() == {"server_groups": []}
        big = create(c, "anti-affinity", rules={"max_server_per_host": str(2**63 - 1)})
        assert big.status_code == 200, big.text
        assert big.json()["server_group"]["rules"] == {"max_server_per_host": 2**63 - 1}
        c.delete(f"/os-server-groups/{big.json()['server_group']['id']}")


def test_quota_and_limits(cloud: Cloud) -> None:
    project = new_project()
    set_quota(cloud, project, "server_groups", 2)
    with cloud.client(token=f"sg-q:{project}", version="2.47") as c:
        first, second = (check_schema(schema_213.create_show_server_group, create(c))["server_group"]
                         for _ in range(2))
        assert fault(create(c), 403, "forbidden") == "Quota exceeded, too many server groups."
        absolute = c.get("/limits").json()["limits"]["absolute"]
        assert (absolute["maxServerGroups"], absolute["totalServerGroupsUsed"]) == (2, 2)
        assert c.delete(f"/os-server-groups/{first['id']}").status_code == 204
        assert c.get("/limits").json()["limits"]["absolute"]["totalServerGroupsUsed"] == 1
        third = check_schema(schema_213.create_show_server_group, create(c))["server_group"]
        for g in (second, third):
            c.delete(f"/os-server-groups/{g['id']}")


def test_quota_holds_under_concurrent_creates(cloud: Cloud) -> None:
    project = new_project()
    set_quota(cloud, project, "server_groups", 3)
    token = f"sg-race:{project}"

    def one(_: int) -> int:
        with cloud.client(token=token, version="2.47") as c:
            return create(c).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = sorted(pool.map(one, range(10)))
    assert codes == [200] * 3 + [403] * 7
    with cloud.client(token=token, version="2.47") as c:
        groups = c.get("/os-server-groups").json()["server_groups"]
        assert len(groups) == 3
        for g in groups:
            c.delete(f"/os-server-groups/{g['id']}")


def _boot(c: httpx.Client, image_id: str, group_id: str, **extra: Any) -> httpx.Response:
    server = {"name": unique("vm"), "imageRef": image_id, "flavorRef": "1", "networks": "none", **extra}
    return c.post("/servers", json={"server": server, "os:scheduler_hints": {"group": group_id}})


def test_boot_into_group_and_leave_on_delete(cloud: Cloud) -> None:
    project = new_project()
    set_quota(cloud, project, "server_group_members", 2)
    with cloud.image_client() as img:
        image = upload_image(img)
    with cloud.client(token=f"sg-boot:{project}", version="2.47") as c:
        group = create(c, "soft-anti-affinity").json()["server_group"]
        other = create(c, "affinity").json()["server_group"]
        booted: list[str] = []
        try:
            resp = _boot(c, image["id"], group["id"])
            assert resp.status_code == 202, resp.text
            booted.append(resp.json()["server"]["id"])
            shown = check_schema(schema_213.create_show_server_group, c.get(f"/os-server-groups/{group['id']}"))
            assert shown["server_group"]["members"] == booted
            listed = {g["id"]: g["members"] for g in c.get("/os-server-groups").json()["server_groups"]}
            assert (listed[group["id"]], listed[other["id"]]) == (booted, [])
            # Two more would pass the group's member quota: the whole request is refused, nothing is left.
            assert fault(_boot(c, image["id"], group["id"], min_count=2), 403, "forbidden") == (
                "Quota exceeded, too many servers in group")
            resp = _boot(c, image["id"], group["id"])
            assert resp.status_code == 202, resp.text
            booted.append(resp.json()["server"]["id"])
            assert fault(_boot(c, image["id"], group["id"]), 403, "forbidden") == (
                "Quota exceeded, too many servers in group")
            assert sorted(c.get(f"/os-server-groups/{group['id']}").json()["server_group"]["members"]) == sorted(
                booted)
            assert len(c.get("/servers").json()["servers"]) == 2
            missing = str(uuid.uuid4())
            assert fault(_boot(c, image["id"], missing), 400, "badRequest") == (
                f"Instance group {missing} could not be found.")
            fault(_boot(c, image["id"], "not-a-uuid"), 400, "badRequest")
            # Another project's group cannot be joined: Nova's 400 for a group not found, and nothing is stored.
            with cloud.client(token=f"sg-intruder:{new_project()}", version="2.47") as intruder:
                assert fault(_boot(intruder, image["id"], group["id"]), 400, "badRequest") == (
                    f"Instance group {group['id']} could not be found.")
                assert intruder.get("/servers").json()["servers"] == []
            assert sorted(c.get(f"/os-server-groups/{group['id']}").json()["server_group"]["members"]) == sorted(
                booted)
            # A deleted server leaves its group (and frees its place in the quota).
            assert c.delete(f"/servers/{booted[0]}").status_code == 204
            wait_gone(c, booted[0])
            assert c.get(f"/os-server-groups/{group['id']}").json()["server_group"]["members"] == booted[1:]
            resp = _boot(c, image["id"], group["id"])
            assert resp.status_code == 202, resp.text
            booted.append(resp.json()["server"]["id"])
            # Deleting a group with members is allowed, as in Nova; its servers live on.
            assert c.delete(f"/os-server-groups/{group['id']}").status_code == 204
            assert c.get(f"/servers/{booted[-1]}").status_code == 200
        finally:
            for server_id in booted:
                c.delete(f"/servers/{server_id}")
            for server_id in booted:
                wait_gone(c, server_id)
            c.delete(f"/os-server-groups/{group['id']}")
            c.delete(f"/os-server-groups/{other['id']}")


def test_group_members_are_per_group_multi_create(cloud: Cloud) -> None:
    with cloud.image_client() as img:
        image = upload_image(img)
    with cloud.client(token=f"sg-multi:{new_project()}", version="2.47") as c:
        group = create(c, "soft-affinity").json()["server_group"]
        try:
            resp = boot(c, image["id"], networks="none", min_count=3)
            assert resp.status_code == 202, resp.text
            ungrouped = [s["id"] for s in c.get("/servers").json()["servers"]]
            resp = _boot(c, image["id"], group["id"], min_count=2, max_count=2)
            assert resp.status_code == 202, resp.text
            members = c.get(f"/os-server-groups/{group['id']}").json()["server_group"]["members"]
            all_servers = [s["id"] for s in c.get("/servers").json()["servers"]]
            assert len(members) == 2 and set(members) == set(all_servers) - set(ungrouped)
        finally:
            servers = [s["id"] for s in c.get("/servers").json()["servers"]]
            for server_id in servers:
                c.delete(f"/servers/{server_id}")
            for server_id in servers:
                wait_gone(c, server_id)
            c.delete(f"/os-server-groups/{group['id']}")
