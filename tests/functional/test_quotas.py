"""``os-quota-sets`` and ``os-quota-class-sets`` through the REST API of a running all-in-one, checked against
tempest's schemas version by version; the limits they set, enforced on servers, key pairs, server groups and
metadata; and the instances quota holding under concurrent boots."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import limits as limits_21
from tempest.lib.api_schema.response.compute.v2_1 import quota_classes as classes_21
from tempest.lib.api_schema.response.compute.v2_1 import quotas as quotas_21
from tempest.lib.api_schema.response.compute.v2_36 import quotas as quotas_236
from tempest.lib.api_schema.response.compute.v2_50 import quota_classes as classes_250
from tempest.lib.api_schema.response.compute.v2_57 import quota_classes as classes_257
from tempest.lib.api_schema.response.compute.v2_57 import quotas as quotas_257

from tests.conftest import Cloud
from tests.functional.helpers import boot, check_schema, fault, race_boots, upload_image, wait_gone

NETWORK = {"fixed_ips", "floating_ips", "security_groups", "security_group_rules"}
PERSONALITY = {"injected_files", "injected_file_content_bytes", "injected_file_path_bytes"}
SERVER_GROUPS = {"server_groups", "server_group_members"}
DEFAULTS = {"instances": 10, "cores": 20, "ram": 51200, "metadata_items": 128, "key_pairs": 100,
            "server_groups": 10, "server_group_members": 10, "injected_files": 5,
            "injected_file_content_bytes": 10240, "injected_file_path_bytes": 255, "fixed_ips": -1,
            "floating_ips": -1, "security_groups": -1, "security_group_rules": -1}
# (version, tempest's quota schemas, the resources shown)
VERSIONS = [("2.1", quotas_21, set(DEFAULTS)), ("2.36", quotas_236, set(DEFAULTS) - NETWORK),
            ("2.56", quotas_236, set(DEFAULTS) - NETWORK), ("2.57", quotas_257, set(DEFAULTS) - NETWORK - PERSONALITY)]


def new_project() -> str:
    return f"proj-quota-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def image(cloud: Cloud) -> dict[str, Any]:
    with cloud.image_client() as img:
        return upload_image(img)


@pytest.fixture
def project(cloud: Cloud) -> Iterator[str]:
    """A fresh project; its servers are deleted afterwards."""
    project_id = new_project()
    yield project_id
    with cloud.client(token=f"cleaner:{project_id}", version="2.47") as member:
        servers = member.get("/servers").json()["servers"]
        for s in servers:
            member.delete(f"/servers/{s['id']}")
        for s in servers:
            wait_gone(member, s["id"])


def put(client: httpx.Client, project_id: str, values: dict[str, Any], user_id: str | None = None
        ) -> httpx.Response:
    params = {"user_id": user_id} if user_id else None
    return client.put(f"/os-quota-sets/{project_id}", params=params, json={"quota_set": values})


def set_quotas(cloud: Cloud, project_id: str, user_id: str | None = None, **values: int) -> None:
    with cloud.client(token="admin:admin", version="2.1") as admin:
        check_schema(quotas_21.update_quota_set, put(admin, project_id, values, user_id))


def test_show_defaults_detail_per_version(cloud: Cloud) -> None:
    project = new_project()
    for version, schema, shown in VERSIONS:
        with cloud.client(token=f"reader:{project}", version=version) as c:
            body = check_schema(schema.get_quota_set, c.get(f"/os-quota-sets/{project}"))["quota_set"]
            assert body == {"id": project, **{k: v for k, v in DEFAULTS.items() if k in shown}}, version
            defaults = check_schema(schema.get_quota_set, c.get(f"/os-quota-sets/{project}/defaults"))
            assert defaults["quota_set"] == body
            detail = check_schema(schema.get_quota_set_details, c.get(f"/os-quota-sets/{project}/detail"))
            assert detail["quota_set"] == {"id": project, **{k: {"limit": v, "in_use": 0, "reserved": 0}
                                                             for k, v in DEFAULTS.items() if k in shown}}
            # the project id of the URL may be given twice, as Nova allows since 2.18
            assert c.get(f"/{project}/os-quota-sets/{project}").json() == {"quota_set": body}


def test_update_show_limits_and_delete(cloud: Cloud) -> None:
    project = new_project()
    with cloud.client(token="admin:admin", version="2.1") as admin:
        updated = check_schema(quotas_21.update_quota_set, put(admin, project, {
            "instances": 5, "cores": "7", "ram": -1, "key_pairs": 3, "floating_ips": 4, "force": "True"}))
        expected = {**DEFAULTS, "instances": 5, "cores": 7, "ram": -1, "key_pairs": 3, "floating_ips": 4}
        assert updated["quota_set"] == expected  # no id in an update's answer, as Nova
        shown = check_schema(quotas_21.get_quota_set, admin.get(f"/os-quota-sets/{project}"))["quota_set"]
        assert shown == {"id": project, **expected}
        # the defaults are still the defaults
        assert admin.get(f"/os-quota-sets/{project}/defaults").json()["quota_set"]["instances"] == 10
    with cloud.client(token=f"member:{project}", version="2.1") as member:
        absolute = check_schema(limits_21.get_limit, member.get("/limits"))["limits"]["absolute"]
        assert (absolute["maxTotalInstances"], absolute["maxTotalCores"], absolute["maxTotalRAMSize"],
                absolute["maxTotalKeypairs"], absolute["maxTotalFloatingIps"]) == (5, 7, -1, 3, 4)
        assert check_schema(quotas_21.get_quota_set, member.get(f"/os-quota-sets/{project}"))["quota_set"] == shown
    with cloud.client(token="admin:admin", version="2.57") as admin:
        resp = admin.delete(f"/os-quota-sets/{project}")
        check_schema(quotas_257.delete_quota, resp)
        assert resp.content == b""
        assert check_schema(quotas_257.get_quota_set, admin.get(f"/os-quota-sets/{project}"))["quota_set"][
            "instances"] == 10
        absolute = admin.get("/limits", params={"tenant_id": project}).json()["limits"]["absolute"]
        assert (absolute["maxTotalInstances"], absolute["maxTotalCores"]) == (10, 20)
        # the network quotas are gone from 2.36 on, the personality ones from 2.57 on: unknown keys then
        for version, key in (("2.36", "floating_ips"), ("2.57", "injected_files")):
            admin.headers["OpenStack-API-Version"] = f"compute {version}"
            assert fault(put(admin, project, {key: 1}), 400, "badRequest") == (  # Nova's wording names the object
                f"Invalid input for field/attribute quota_set. Value: {{'{key}': 1}}. Additional properties are not "
                f"allowed ('{key}' was unexpected)")
        admin.headers["OpenStack-API-Version"] = "compute 2.36"
        assert check_schema(quotas_236.update_quota_set, put(admin, project, {"injected_files": 2}))[
            "quota_set"]["injected_files"] == 2


def test_user_quotas(cloud: Cloud) -> None:
    project = new_project()
    with cloud.client(token="admin:admin", version="2.57") as admin:
        check_schema(quotas_257.update_quota_set, put(admin, project, {"instances": 5, "server_groups": 4}))
        assert fault(put(admin, project, {"instances": 6}, "alice"), 400, "badRequest") == (
            "Quota limit 6 for instances must be less than or equal to 5.")
        assert fault(put(admin, project, {"instances": -1}, "alice"), 400, "badRequest") == (
            "Quota limit -1 for instances must be less than or equal to 5.")
        mine = check_schema(quotas_257.update_quota_set, put(admin, project, {"instances": 3}, "alice"))
        assert mine["quota_set"]["instances"] == 3 and mine["quota_set"]["server_groups"] == 4
        shown = admin.get(f"/os-quota-sets/{project}", params={"user_id": "alice"}).json()["quota_set"]
        assert (shown["id"], shown["instances"]) == (project, 3)
        assert admin.get(f"/os-quota-sets/{project}").json()["quota_set"]["instances"] == 5
        detail = check_schema(quotas_257.get_quota_set_details,
                              admin.get(f"/os-quota-sets/{project}/detail", params={"user_id": "alice"}))
        assert detail["quota_set"]["instances"] == {"limit": 3, "in_use": 0, "reserved": 0}
        # what is left to give another user: 5 - 3
        assert fault(put(admin, project, {"instances": 3}, "bob"), 400, "badRequest") == (
            "Quota limit 3 for instances must be less than or equal to 2.")
        check_schema(quotas_257.update_quota_set, put(admin, project, {"instances": 2}, "bob"))
        # the project may not go under what its users were given
        assert fault(put(admin, project, {"instances": 4}), 400, "badRequest") == (
            "Quota limit 4 for instances must be greater than or equal to already used and reserved 5.")
        check_schema(quotas_257.update_quota_set, put(admin, project, {"instances": 4, "force": True}))
        # deleting a user's quotas leaves the project's and the other user's
        assert admin.delete(f"/os-quota-sets/{project}", params={"user_id": "alice"}).status_code == 202
        assert admin.get(f"/os-quota-sets/{project}", params={"user_id": "alice"}).json()["quota_set"][
            "instances"] == 4
        assert admin.get(f"/os-quota-sets/{project}", params={"user_id": "bob"}).json()["quota_set"][
            "instances"] == 2
        # deleting the project's quotas deletes its users' too
        assert admin.delete(f"/os-quota-sets/{project}").status_code == 202
        for user in (None, "bob"):
            params = {"user_id": user} if user else None
            assert admin.get(f"/os-quota-sets/{project}", params=params).json()["quota_set"]["instances"] == 10


@pytest.mark.parametrize(("body", "message"), [
    ({"quota_set": {"instances": -2}}, "-2 is less than the minimum of -1"),
    ({"quota_set": {"instances": "-2"}}, "-2 is less than the minimum of -1"),
    ({"quota_set": {"cores": 2 ** 31}}, "2147483648 is greater than the maximum of 2147483647"),
    # past 64 bits, as a number (exact, as Nova's parser reads it) or a string: Nova's own bound and wording
    ({"quota_set": {"cores": 2 ** 70}}, f"Invalid input for field/attribute cores. Value: {2**70}. {2**70} is greater "
                                        "than the maximum of 2147483647"),
    ({"quota_set": {"cores": str(2 ** 70)}}, f"{2**70} is greater than the maximum of 2147483647"),
    ({"quota_set": {"ram": "lots"}}, "Invalid input for field/attribute"),
    ({"quota_set": {"ram": 1.5}}, "Invalid input for field/attribute"),
    ({"quota_set": {"ram": True}}, "Invalid input for field/attribute"),
    ({"quota_set": {"instances": 1, "force": "perhaps"}}, "Invalid input for field/attribute"),
    ({"quota_set": {"bogus": 1}}, "Additional properties are not allowed ('bogus' was unexpected)"),
    ({"quota_set": {"networks": 1}}, "Additional properties are not allowed ('networks' was unexpected)"),
    ({"quota_set": []}, "Invalid input for field/attribute"),
    ({"quota": {}}, "Additional properties are not allowed ('quota' was unexpected)"),
])
def test_bad_updates(cloud: Cloud, body: dict[str, Any], message: str) -> None:
    project = new_project()
    with cloud.client(token="admin:admin", version="2.1") as admin:
        assert message in fault(admin.put(f"/os-quota-sets/{project}", json=body), 400, "badRequest")
        assert admin.get(f"/os-quota-sets/{project}").json()["quota_set"] == {"id": project, **DEFAULTS}


def test_policies(cloud: Cloud) -> None:
    project, other = new_project(), new_project()

    def refused(resp: httpx.Response, rule: str) -> None:
        assert resp.status_code == 403, resp.text
        assert resp.json() == {"forbidden": {"code": 403, "message": f"Policy doesn't allow {rule} to be performed."}}

    with cloud.client(token=f"member:{project}", version="2.1") as member:
        refused(put(member, project, {"instances": 1}), "os_compute_api:os-quota-sets:update")
        refused(member.delete(f"/os-quota-sets/{project}"), "os_compute_api:os-quota-sets:delete")
        refused(member.get(f"/os-quota-sets/{other}"), "os_compute_api:os-quota-sets:show")
        refused(member.get(f"/os-quota-sets/{other}/detail"), "os_compute_api:os-quota-sets:detail")
        check_schema(quotas_21.get_quota_set, member.get(f"/os-quota-sets/{other}/defaults"))  # anyone
        check_schema(quotas_21.get_quota_set, member.get(f"/os-quota-sets/{project}", params={"user_id": "x"}))
        refused(member.get("/os-quota-class-sets/default"), "os_compute_api:os-quota-class-sets:show")
        refused(member.put("/os-quota-class-sets/default", json={"quota_class_set": {"cores": 1}}),
                "os_compute_api:os-quota-class-sets:update")
        # a body error is reported before the policy, as Nova validates first
        assert fault(put(member, project, {"bogus": 1}), 400, "badRequest")
    with cloud.client(token="admin:admin", version="2.1") as admin:
        check_schema(quotas_21.get_quota_set, admin.get(f"/os-quota-sets/{other}"))
        assert admin.get(f"/os-quota-sets/{project}").json()["quota_set"]["instances"] == 10


def test_quota_classes(cloud: Cloud) -> None:
    name = f"class-{uuid.uuid4().hex[:8]}"
    cases = [("2.1", classes_21, set(DEFAULTS) - SERVER_GROUPS), ("2.49", classes_21, set(DEFAULTS) - SERVER_GROUPS),
             ("2.50", classes_250, set(DEFAULTS) - NETWORK),
             ("2.57", classes_257, set(DEFAULTS) - NETWORK - PERSONALITY)]
    for version, schema, shown in cases:
        with cloud.client(token="admin:admin", version=version) as admin:
            body = check_schema(schema.get_quota_class_set, admin.get(f"/os-quota-class-sets/{name}"))
            assert body["quota_class_set"] == {"id": name, **{k: v for k, v in DEFAULTS.items() if k in shown}}
    with cloud.client(token="admin:admin", version="2.1") as admin:
        # below 2.50 the server group quotas can be set, but are not shown
        updated = check_schema(classes_21.update_quota_class_set, admin.put(
            f"/os-quota-class-sets/{name}", json={"quota_class_set": {"cores": "7", "server_groups": 3}}))
        assert updated["quota_class_set"] == {k: v for k, v in {**DEFAULTS, "cores": 7}.items()
                                              if k not in SERVER_GROUPS}
        assert fault(admin.put(f"/os-quota-class-sets/{name}", json={"quota_class_set": {"cores": -2}}), 400,
                     "badRequest") == ("Invalid input for field/attribute cores. Value: -2. -2 is less than the "
                                       "minimum of -1")
        assert fault(admin.put(f"/os-quota-class-sets/{'x' * 256}", json={"quota_class_set": {"cores": 1}}), 400,
                     "badRequest") == "quota_class_name has 256 characters, more than 255."
    with cloud.client(token="admin:admin", version="2.50") as admin:
        assert "'floating_ips' was unexpected" in fault(admin.put(
            f"/os-quota-class-sets/{name}", json={"quota_class_set": {"floating_ips": 1}}), 400, "badRequest")
        shown = check_schema(classes_250.get_quota_class_set, admin.get(f"/os-quota-class-sets/{name}"))
        assert (shown["quota_class_set"]["cores"], shown["quota_class_set"]["server_groups"]) == (7, 3)
        # only the default class applies to projects
        project = new_project()
        assert admin.get(f"/os-quota-sets/{project}").json()["quota_set"]["cores"] == 20


def test_default_class_sets_the_defaults(cloud: Cloud) -> None:
    project = new_project()
    try:
        with cloud.client(token="admin:admin", version="2.57") as admin:
            updated = check_schema(classes_257.update_quota_class_set, admin.put(
                "/os-quota-class-sets/default", json={"quota_class_set": {"key_pairs": 42}}))
            assert updated["quota_class_set"]["key_pairs"] == 42
            assert admin.get(f"/os-quota-sets/{project}/defaults").json()["quota_set"]["key_pairs"] == 42
            assert admin.get(f"/os-quota-sets/{project}").json()["quota_set"]["key_pairs"] == 42
            absolute = admin.get("/limits", params={"tenant_id": project}).json()["limits"]["absolute"]
            assert absolute["maxTotalKeypairs"] == 42
            set_quotas(cloud, project, key_pairs=5)  # a project's own limit wins over the class
            assert admin.get(f"/os-quota-sets/{project}").json()["quota_set"]["key_pairs"] == 5
    finally:
        with sqlite3.connect(cloud.state_path / "stratus.sqlite") as db:
            db.execute("DELETE FROM quota_classes WHERE class_name = 'default' AND resource = 'key_pairs'")


def test_over_quota_instances_cores_ram(cloud: Cloud, image: dict[str, Any], project: str) -> None:
    set_quotas(cloud, project, instances=3, cores=4)
    with cloud.client(token=f"booter:{project}", version="2.47") as c:
        # cores: m1.medium has 2 vcpus, 3 of them need 6
        assert fault(boot(c, image["id"], flavor="3", networks="none", min_count=3), 403, "forbidden") == (
            "Quota exceeded for cores: Requested 6, but already used 0 of 4 cores")
        # ram: m1.small has 2048 MB
        set_quotas(cloud, project, ram=3000)
        assert fault(boot(c, image["id"], flavor="2", networks="none", min_count=2), 403, "forbidden") == (
            "Quota exceeded for ram: Requested 4096, but already used 0 of 3000 ram")
        # a multi-create gets as many as fit between min_count and max_count
        resp = boot(c, image["id"], flavor="1", networks="none", min_count=1, max_count=5, name="multi")
        assert resp.status_code == 202, resp.text
        assert len(c.get("/servers").json()["servers"]) == 3
        assert fault(boot(c, image["id"], flavor="1", networks="none"), 403, "forbidden") == (
            "Quota exceeded for instances: Requested 1, but already used 3 of 3 instances")
        assert fault(boot(c, image["id"], flavor="3", networks="none", min_count=2, max_count=4), 403,
                     "forbidden") == ("Quota exceeded for cores, instances, ram: Requested 8, 2-4, 16384, but "
                                      "already used 3, 3, 1536 of 4, 3, 3000 cores, instances, ram")
    with cloud.client(token="admin:admin", version="2.47") as admin:
        detail = admin.get(f"/os-quota-sets/{project}/detail").json()["quota_set"]
        assert {k: detail[k]["in_use"] for k in ("instances", "cores", "ram")} == {
            "instances": 3, "cores": 3, "ram": 3 * 512}
        assert fault(put(admin, project, {"instances": 2}), 400, "badRequest") == (
            "Quota limit 2 for instances must be greater than or equal to already used and reserved 3.")
        check_schema(quotas_236.update_quota_set, put(admin, project, {"instances": 2, "force": "yes"}))
        absolute = admin.get("/limits", params={"tenant_id": project}).json()["limits"]["absolute"]
        assert (absolute["maxTotalInstances"], absolute["totalInstancesUsed"]) == (2, 3)


def test_over_quota_per_user(cloud: Cloud, image: dict[str, Any], project: str) -> None:
    set_quotas(cloud, project, instances=3)
    set_quotas(cloud, project, "ursula", instances=1)
    with cloud.client(token=f"ursula:{project}", version="2.47") as ursula:
        assert boot(ursula, image["id"], networks="none").status_code == 202
        assert fault(boot(ursula, image["id"], networks="none"), 403, "forbidden") == (
            "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances")
    with cloud.client(token=f"victor:{project}", version="2.47") as victor:
        assert boot(victor, image["id"], networks="none").status_code == 202
        assert boot(victor, image["id"], networks="none").status_code == 202
        assert fault(boot(victor, image["id"], networks="none"), 403, "forbidden") == (
            "Quota exceeded for instances: Requested 1, but already used 3 of 3 instances")
    with cloud.client(token="admin:admin", version="2.47") as admin:
        detail = admin.get(f"/os-quota-sets/{project}/detail", params={"user_id": "ursula"}).json()["quota_set"]
        assert detail["instances"] == {"limit": 1, "in_use": 1, "reserved": 0}


def test_over_quota_metadata_and_personality(cloud: Cloud, image: dict[str, Any], project: str) -> None:
    set_quotas(cloud, project, metadata_items=2, injected_files=1, injected_file_path_bytes=8)
    meta = {"a": "1", "b": "2", "c": "3"}
    with cloud.client(token=f"meta:{project}", version="2.1") as c:
        assert fault(boot(c, image["id"], metadata=meta), 403, "forbidden") == (
            "Maximum number of metadata items exceeds 2")
        files = [{"path": "/a", "contents": "eA=="}, {"path": "/b", "contents": "eA=="}]
        assert fault(boot(c, image["id"], personality=files), 403, "forbidden") == "Personality file limit exceeded"
        assert fault(boot(c, image["id"], personality=[{"path": "/etc/long-name", "contents": "eA=="}]), 403,
                     "forbidden") == "Personality file path exceeds maximum 8"
        resp = boot(c, image["id"], metadata={"a": "1"})
        assert resp.status_code == 202, resp.text
        server_id = resp.json()["server"]["id"]
        assert fault(c.post(f"/servers/{server_id}/metadata", json={"metadata": {"b": "2", "c": "3"}}), 403,
                     "forbidden") == "Maximum number of metadata items exceeds 2"
        assert fault(c.put(f"/servers/{server_id}/metadata", json={"metadata": meta}), 403, "forbidden") == (
            "Maximum number of metadata items exceeds 2")
        assert c.post(f"/servers/{server_id}/metadata", json={"metadata": {"b": "2"}}).status_code == 200
        assert fault(c.put(f"/servers/{server_id}/metadata/c", json={"meta": {"c": "3"}}), 403, "forbidden") == (
            "Maximum number of metadata items exceeds 2")
        assert c.get(f"/servers/{server_id}/metadata").json() == {"metadata": {"a": "1", "b": "2"}}


def test_over_quota_key_pairs_and_server_groups(cloud: Cloud, image: dict[str, Any], project: str) -> None:
    set_quotas(cloud, project, key_pairs=1, server_groups=1, server_group_members=1)
    with cloud.client(token=f"kp-{uuid.uuid4().hex[:6]}:{project}", version="2.47") as c:
        assert c.post("/os-keypairs", json={"keypair": {"name": "one"}}).status_code == 201
        assert fault(c.post("/os-keypairs", json={"keypair": {"name": "two"}}), 403, "forbidden") == (
            "Quota exceeded, too many key pairs.")
        group = c.post("/os-server-groups", json={"server_group": {"name": "g", "policies": ["affinity"]}})
        assert group.status_code == 200, group.text
        assert fault(c.post("/os-server-groups", json={"server_group": {"name": "h", "policies": ["affinity"]}}),
                     403, "forbidden") == "Quota exceeded, too many server groups."
        hints = {"group": group.json()["server_group"]["id"]}
        server = {"name": "member", "imageRef": image["id"], "flavorRef": "1", "networks": "none"}
        assert fault(c.post("/servers", json={"server": {**server, "min_count": 2}, "os:scheduler_hints": hints}),
                     403, "forbidden") == "Quota exceeded, too many servers in group"
        assert c.post("/servers", json={"server": server, "os:scheduler_hints": hints}).status_code == 202
        assert fault(c.post("/servers", json={"server": server, "os:scheduler_hints": hints}), 403,
                     "forbidden") == "Quota exceeded, too many servers in group"


def test_instances_quota_holds_under_concurrent_boots(cloud: Cloud, image: dict[str, Any], project: str) -> None:
    """The issue's race: a quota of 10 instances, 20 boots at once: exactly 10 are accepted, 10 exist."""
    set_quotas(cloud, project, instances=10)
    codes, servers = race_boots(cloud, project, image["id"])
    assert codes == [202] * 10 + [403] * 10
    assert len(servers) == 10
