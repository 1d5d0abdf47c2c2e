"""``GET /limits`` of a running all-in-one: Nova's names per version, overrides, usage, other projects."""

from __future__ import annotations

import datetime
import sqlite3
import uuid
from typing import Any

import httpx
import jsonschema
from tempest.lib.api_schema.response.compute.v2_1 import limits as schema_21
from tempest.lib.api_schema.response.compute.v2_36 import limits as schema_236
from tempest.lib.api_schema.response.compute.v2_39 import limits as schema_239
from tempest.lib.api_schema.response.compute.v2_57 import limits as schema_257

from tests.conftest import Cloud
from tests.functional.helpers import boot, upload_image, wait_for_status, wait_gone

NETWORK_ITEMS = {"maxSecurityGroupRules", "maxSecurityGroups", "maxTotalFloatingIps", "totalFloatingIpsUsed",
                 "totalSecurityGroupsUsed"}


def absolute(contract: dict[str, Any], resp: httpx.Response) -> dict[str, int]:
    assert resp.status_code in contract["status_code"], resp.text
    jsonschema.validate(resp.json(), contract["response_body"])
    assert resp.json()["limits"]["rate"] == []
    return dict(resp.json()["limits"]["absolute"])


def new_project() -> str:
    return f"proj-lim-{uuid.uuid4().hex[:8]}"


def test_defaults_per_version(cloud: Cloud) -> None:
    project = new_project()
    with cloud.client(token=f"lim:{project}", version="2.1") as c:
        v21 = absolute(schema_21.get_limit, c.get("/limits"))
    assert v21 == {
        "maxServerMeta": 128, "maxImageMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240,
        "maxTotalKeypairs": 100, "maxServerGroups": 10, "maxServerGroupMembers": 10, "maxTotalCores": 20,
        "maxTotalInstances": 10, "maxTotalRAMSize": 51200, "totalCoresUsed": 0, "totalInstancesUsed": 0,
        "totalRAMUsed": 0, "totalServerGroupsUsed": 0, "maxSecurityGroups": -1, "maxSecurityGroupRules": -1,
        "maxTotalFloatingIps": -1, "totalFloatingIpsUsed": 0, "totalSecurityGroupsUsed": 0}
    with cloud.client(token=f"lim:{project}", version="2.36") as c:
        v236 = absolute(schema_236.get_limit, c.get("/limits"))
    assert v236.keys() == v21.keys() - NETWORK_ITEMS
    with cloud.client(token=f"lim:{project}", version="2.47") as c:
        v247 = absolute(schema_239.get_limit, c.get("/limits"))
    assert v247.keys() == v21.keys() - NETWORK_ITEMS - {"maxImageMeta"}
    with cloud.client(token=f"lim:{project}", version="2.56") as c:
        assert absolute(schema_239.get_limit, c.get("/limits")) == v247
    with cloud.client(token=f"lim:{project}", version="2.57") as c:
        v257 = absolute(schema_257.get_limit, c.get("/limits"))
    assert v257.keys() == v247.keys() - {"maxPersonality", "maxPersonalitySize"}


def test_overrides_class_then_project(cloud: Cloud) -> None:
    project = new_project()
    now = datetime.datetime.now().isoformat(" ")
    with sqlite3.connect(cloud.state_path / "stratus.sqlite") as db:
        db.execute("INSERT INTO quota_classes (class_name, resource, hard_limit, created_at) "
                   "VALUES ('default', 'server_group_members', 7, ?)", (now,))
        db.execute("INSERT INTO quotas (project_id, user_id, resource, hard_limit, created_at) "
                   "VALUES (?, '', 'cores', 3, ?), (?, '', 'metadata_items', -1, ?)", (project, now, project, now))
    try:
        with cloud.client(token=f"lim:{project}", version="2.47") as c:
            limits = absolute(schema_239.get_limit, c.get("/limits"))
        assert (limits["maxTotalCores"], limits["maxServerMeta"], limits["maxServerGroupMembers"]) == (3, -1, 7)
        with cloud.client(token=f"lim:{new_project()}", version="2.47") as c:
            other = absolute(schema_239.get_limit, c.get("/limits"))
        assert (other["maxTotalCores"], other["maxServerMeta"], other["maxServerGroupMembers"]) == (20, 128, 7)
    finally:
        with sqlite3.connect(cloud.state_path / "stratus.sqlite") as db:
            db.execute("DELETE FROM quota_classes WHERE class_name = 'default' AND resource = 'server_group_members'")


def test_other_projects_are_for_admins(cloud: Cloud) -> None:
    project = new_project()
    now = datetime.datetime.now().isoformat(" ")
    with sqlite3.connect(cloud.state_path / "stratus.sqlite") as db:
        db.execute("INSERT INTO quotas (project_id, user_id, resource, hard_limit, created_at) "
                   "VALUES (?, '', 'instances', 4, ?)", (project, now))
    with cloud.client(token="admin:admin", version="2.47") as admin:
        assert absolute(schema_239.get_limit, admin.get("/limits", params={"tenant_id": project}))[
            "maxTotalInstances"] == 4
        assert absolute(schema_239.get_limit, admin.get("/limits"))["maxTotalInstances"] == 10
    with cloud.client(token=f"lim:{new_project()}", version="2.47") as user:
        resp = user.get("/limits", params={"tenant_id": project})
        assert resp.status_code == 403, resp.text
        assert resp.json() == {"forbidden": {"code": 403, "message": (
            "Policy doesn't allow os_compute_api:limits:other_project to be performed.")}}
    with cloud.client(token=f"lim:{project}", version="2.47") as owner:
        # Nova's default for limits:other_project is admin only, even when the tenant_id is the caller's own
        assert owner.get("/limits", params={"tenant_id": project}).status_code == 403
        assert absolute(schema_239.get_limit, owner.get("/limits"))["maxTotalInstances"] == 4


def test_usage_counts_live_servers(cloud: Cloud) -> None:
    project = new_project()
    with cloud.image_client() as img:
        image = upload_image(img)
    with cloud.client(token=f"lim:{project}", version="2.47") as c:
        resp = boot(c, image["id"], flavor="2", networks="none")
        assert resp.status_code == 202, resp.text
        server_id = resp.json()["server"]["id"]
        wait_for_status(c, server_id, {"ACTIVE", "ERROR"})
        used = absolute(schema_239.get_limit, c.get("/limits"))
        assert (used["totalInstancesUsed"], used["totalCoresUsed"], used["totalRAMUsed"]) == (1, 1, 2048)
        assert c.delete(f"/servers/{server_id}").status_code == 204
        wait_gone(c, server_id)
        used = absolute(schema_239.get_limit, c.get("/limits"))
        assert (used["totalInstancesUsed"], used["totalCoresUsed"], used["totalRAMUsed"]) == (0, 0, 0)
