"""Servers through the REST API of a running all-in-one: boot, list, show, update, delete, and bad input."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import pytest
from tempest.lib.api_schema.response.compute.v2_1 import servers as schema_21
from tempest.lib.api_schema.response.compute.v2_19 import servers as schema_219
from tempest.lib.api_schema.response.compute.v2_26 import servers as schema_226
from tempest.lib.api_schema.response.compute.v2_47 import servers as schema_247
from tempest.lib.api_schema.response.compute.v2_63 import servers as schema_263
from tempest.lib.api_schema.response.compute.v2_100 import servers as schema_2100

from stratus.api.microversion import MAX_VERSION
from tests.conftest import Cloud
from tests.functional.helpers import boot, fault, upload_image, wait_for_status, wait_gone
from tests.functional.helpers import check_schema as check


@pytest.fixture(scope="module")
def image(cloud: Cloud) -> dict:
    with cloud.image_client() as img:
        return upload_image(img)


def test_boot_show_list_delete(cloud: Cloud, image: dict) -> None:
    with cloud.client(token="alice:proj-a") as c:
        resp = boot(c, image["id"], metadata={"role": "web"})
        check(schema_21.create_server_with_admin_pass, resp)
        server_id = resp.json()["server"]["id"]
        assert resp.headers["Location"].endswith(f"/servers/{server_id}")
        active = wait_for_status(c, server_id, {"ACTIVE", "ERROR"})
        assert active["status"] == "ACTIVE", active
        assert active["OS-EXT-STS:vm_state"] == "active"
        assert active["OS-EXT-STS:power_state"] == 1
        assert active["OS-EXT-STS:task_state"] is None
        assert active["metadata"] == {"role": "web"}
        assert active["hostId"]
        assert "OS-EXT-SRV-ATTR:host" not in active  # not an admin
        check(schema_21.get_server, c.get(f"/servers/{server_id}"))
        listed = c.get("/servers")
        check(schema_21.list_servers, listed)
        assert server_id in {s["id"] for s in listed.json()["servers"]}
        check(schema_21.list_servers_detail, c.get("/servers/detail"))
        resp = c.delete(f"/servers/{server_id}")
        assert resp.status_code == 204
        wait_gone(c, server_id)
    with cloud.client() as admin:
        changes = admin.get("/servers/detail", params={"changes-since": "2000-01-01T00:00:00Z",
                                                       "all_tenants": "1"}).json()["servers"]
        gone = [s for s in changes if s["id"] == server_id]
        assert gone and gone[0]["status"] == "DELETED"


@pytest.mark.parametrize(("version", "contract"), [("2.47", schema_247), ("2.63", schema_263),
                                                   (str(MAX_VERSION), schema_2100)])
def test_latest_microversion_views(cloud: Cloud, image: dict, version: str, contract: Any) -> None:
    with cloud.client(version=version) as admin:
        resp = boot(admin, image["id"], networks="none", description="d1")
        assert resp.status_code == 202, resp.text
        server_id = resp.json()["server"]["id"]
        wait_for_status(admin, server_id, {"ACTIVE"})
        got = admin.get(f"/servers/{server_id}")
        check(contract.get_server, got)
        check(contract.list_servers_detail, admin.get("/servers/detail"))
        server = got.json()["server"]
        assert server["flavor"]["original_name"] == "m1.tiny"
        assert server["description"] == "d1"
        assert server["OS-EXT-SRV-ATTR:host"].startswith("compute-")
        assert server["host_status"] == "UP"
        assert got.headers["OpenStack-API-Version"] == f"compute {version}"
        admin.delete(f"/servers/{server_id}")
        wait_gone(admin, server_id)


def test_kernel_and_ramdisk_ids_come_from_the_image(cloud: Cloud) -> None:
    """Nova's ``_handle_kernel_and_ramdisk``: the instance keeps the image's ``kernel_id`` and ``ramdisk_id``
    (shown to admins from 2.3; before, always ''); ``nokernel`` means neither; one that does not exist is a 400."""
    with cloud.image_client() as img:
        kernel = upload_image(img, disk_format="aki", container_format="aki")
        ramdisk = upload_image(img, disk_format="ari", container_format="ari")
        ami = upload_image(img, kernel_id=kernel["id"], ramdisk_id=ramdisk["id"])
        none = upload_image(img, kernel_id="nokernel", ramdisk_id=ramdisk["id"])
        missing = upload_image(img, kernel_id=str(uuid.uuid4()))
    with cloud.client(version="2.3") as admin, cloud.client(version="2.1") as old:
        ids = {}
        for name, image in (("ami", ami), ("none", none)):
            resp = boot(admin, image["id"])
            assert resp.status_code == 202, resp.text
            ids[name] = resp.json()["server"]["id"]
        shown = {name: wait_for_status(admin, server_id, {"ACTIVE"}) for name, server_id in ids.items()}
        assert shown["ami"]["OS-EXT-SRV-ATTR:kernel_id"] == kernel["id"]
        assert shown["ami"]["OS-EXT-SRV-ATTR:ramdisk_id"] == ramdisk["id"]
        assert (shown["none"]["OS-EXT-SRV-ATTR:kernel_id"], shown["none"]["OS-EXT-SRV-ATTR:ramdisk_id"]) == ("", "")
        listed = {s["id"]: s for s in admin.get("/servers/detail").json()["servers"]}
        assert listed[ids["ami"]]["OS-EXT-SRV-ATTR:kernel_id"] == kernel["id"]
        assert "OS-EXT-SRV-ATTR:kernel_id" not in old.get(f"/servers/{ids['ami']}").json()["server"]  # 2.3+
        resp = boot(admin, missing["id"])
        assert resp.status_code == 400, resp.text
        assert resp.json()["badRequest"]["message"] == "Can not find requested image"
        for server_id in ids.values():
            assert admin.delete(f"/servers/{server_id}").status_code == 204
        for server_id in ids.values():
            wait_gone(admin, server_id)


def test_each_boot_sees_the_image_as_it_is_now(cloud: Cloud) -> None:
    """The image a boot names is looked up afresh by every POST: made private by its owner, deactivated or
    deleted after a boot that took it, the next boot of another project is refused as Nova refuses it."""
    patch = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
    with cloud.image_client("owner:img-owner") as owner, cloud.image_client() as admin_img, \
            cloud.client("user:img-user") as user, cloud.client() as admin:
        shared = upload_image(owner, visibility="community")  # any project sees it; only admins publicize
        first = boot(user, shared["id"])
        assert first.status_code == 202, first.text
        made_private = owner.patch(f"/v2/images/{shared['id']}", headers=patch,
                                   json=[{"op": "replace", "path": "/visibility", "value": "private"}])
        assert made_private.status_code == 200, made_private.text
        refused = boot(user, shared["id"])
        assert (refused.status_code, refused.json()["badRequest"]["message"]) == (400, "Can not find requested image")
        other = upload_image(admin_img, visibility="public")
        assert boot(user, other["id"]).status_code == 202
        assert admin_img.post(f"/v2/images/{other['id']}/actions/deactivate").status_code == 204
        refused = boot(user, other["id"])
        assert (refused.status_code, refused.json()["badRequest"]["message"]) == (
            400, f"Image {other['id']} is not active.")
        assert admin_img.delete(f"/v2/images/{other['id']}").status_code == 204
        refused = boot(user, other["id"])
        assert (refused.status_code, refused.json()["badRequest"]["message"]) == (400, "Can not find requested image")
        for server in user.get("/servers").json()["servers"]:
            assert admin.delete(f"/servers/{server['id']}").status_code == 204
            wait_gone(admin, server["id"])


def test_tags_and_metadata(cloud: Cloud, image: dict) -> None:
    with cloud.client(token="bob:proj-b", version="2.26") as c:
        server_id = boot(c, image["id"]).json()["server"]["id"]
        assert c.put(f"/servers/{server_id}/tags/blue").status_code == 201
        assert c.put(f"/servers/{server_id}/tags", json={"tags": ["a", "b"]}).json() == {"tags": ["a", "b"]}
        check(schema_226.get_server, c.get(f"/servers/{server_id}"))
        assert [s["id"] for s in c.get("/servers", params={"tags": "a,b"}).json()["servers"]] == [server_id]
        assert c.get("/servers", params={"not-tags-any": "a"}).json()["servers"] == []
        assert c.post(f"/servers/{server_id}/metadata", json={"metadata": {"k": "v"}}).status_code == 200
        assert c.get(f"/servers/{server_id}/metadata/k").json() == {"meta": {"k": "v"}}
        assert c.put(f"/servers/{server_id}/metadata/k", json={"meta": {"x": "v"}}).status_code == 400
        assert c.delete(f"/servers/{server_id}/metadata/k").status_code == 204
        assert c.get(f"/servers/{server_id}/metadata/k").status_code == 404
        c.delete(f"/servers/{server_id}")
        wait_gone(c, server_id)


def test_pagination_and_filters(cloud: Cloud, image: dict) -> None:
    with cloud.client(token="carol:proj-c") as c:
        resp = boot(c, image["id"], name="page", min_count=5)
        assert resp.status_code == 202, resp.text
        names = set()
        marker = None
        pages = 0
        while True:
            params = {"limit": 2, "name": "^page-"}
            if marker:
                params["marker"] = marker
            body = c.get("/servers", params=params).json()
            names.update(s["name"] for s in body["servers"])
            pages += 1
            if "servers_links" not in body:
                break
            marker = body["servers"][-1]["id"]
        assert names == {f"page-{i}" for i in range(1, 6)}
        assert pages == 3
        ids = [s["id"] for s in c.get("/servers", params={"name": "^page-"}).json()["servers"]]
        for sid in ids:
            wait_for_status(c, sid, {"ACTIVE"})
        assert len(c.get("/servers/detail", params={"status": "ACTIVE", "name": "page"}).json()["servers"]) == 5
        assert c.get("/servers", params={"status": "SHUTOFF", "name": "page"}).json()["servers"] == []
        sorted_names = [s["name"] for s in c.get("/servers/detail", params={
            "name": "^page-", "sort_key": "display_name", "sort_dir": "asc"}).json()["servers"]]
        assert sorted_names == sorted(sorted_names)
        for sid in ids:
            assert c.delete(f"/servers/{sid}").status_code == 204
        for sid in ids:
            wait_gone(c, sid)


def test_update_server(cloud: Cloud, image: dict) -> None:
    with cloud.client(version="2.19") as c:
        server_id = boot(c, image["id"]).json()["server"]["id"]
        resp = c.put(f"/servers/{server_id}", json={"server": {"name": "renamed", "description": "hello"}})
        check(schema_219.update_server, resp)  # before 2.75 a brief body: no AZ, key, extended attributes...
        assert resp.json()["server"]["name"] == "renamed"
        assert resp.json()["server"]["description"] == "hello"
        assert c.put(f"/servers/{server_id}", json={"server": {"bogus": 1}}).status_code == 400
        c.delete(f"/servers/{server_id}")
        wait_gone(c, server_id)


@pytest.mark.parametrize(("body", "fragment"), [
    ({"server": {"name": "x", "imageRef": "IMAGE", "flavorRef": "no-such-flavor"}}, "Invalid flavorRef"),
    ({"server": {"name": "x", "imageRef": str(uuid.uuid4()), "flavorRef": "1"}}, "Can not find requested image"),
    ({"server": {"imageRef": "IMAGE", "flavorRef": "1"}}, "'name' is a required property"),
    ({"server": {"name": "x", "imageRef": "IMAGE", "flavorRef": "1", "bogus": True}}, "Additional properties"),
    ({"server": {"name": "x", "imageRef": "IMAGE", "flavorRef": "1", "key_name": "nokey"}}, "Invalid key_name"),
    ({"server": {"name": "x", "imageRef": "IMAGE", "flavorRef": "1", "user_data": "!!notbase64"}}, "base 64"),
    ({"server": {"name": "x", "imageRef": "IMAGE", "flavorRef": "1", "min_count": 3, "max_count": 2}},
     "min_count"),
    ({"server": {"name": "x", "imageRef": "IMAGE", "flavorRef": "1", "availability_zone": "nowhere"}},
     "availability zone"),
    ({"server": {"name": "x", "imageRef": "not-a-uuid", "flavorRef": "1"}}, "imageRef"),
    # integers past 64 bits, numbers or numeric strings, in a field or in a free-form scheduler hint
    ({"server": {"name": "x", "imageRef": "IMAGE", "flavorRef": "1", "min_count": 2**70}},
     f"min_count. Value: {2**70}. {2**70} is greater than the maximum of 9223372036854775807"),
    ({"server": {"name": "x", "imageRef": "IMAGE", "flavorRef": "1", "max_count": str(2**64)}},
     f"{2**64} is greater than the maximum of 9223372036854775807"),
    ({"server": {"name": "x", "imageRef": "IMAGE", "flavorRef": "1"}, "os:scheduler_hints": {"mine": -(2**64)}},
     f"Invalid input for field/attribute mine. Value: {-(2**64)}. {-(2**64)} is less than the minimum of "
     "-9223372036854775808"),
])
def test_bad_create_is_400_and_stores_nothing(cloud: Cloud, image: dict, body: dict, fragment: str) -> None:
    if body["server"].get("imageRef") == "IMAGE":
        body["server"]["imageRef"] = image["id"]
    db = sqlite3.connect(cloud.state_path / "stratus.sqlite")
    before = db.execute("select count(*) from instances").fetchone()[0]
    with cloud.client(token="dave:proj-d") as c:
        resp = c.post("/servers", json=body)
    assert resp.status_code == 400, resp.text
    assert fragment in resp.json()["badRequest"]["message"]
    assert resp.json()["badRequest"]["code"] == 400
    assert db.execute("select count(*) from instances").fetchone()[0] == before


def test_malformed_body_and_versions(cloud: Cloud) -> None:
    with cloud.client() as c:
        resp = c.post("/servers", content=b"{not json", headers={"Content-Type": "application/json"})
        assert resp.status_code == 400 and "badRequest" in resp.json()
        resp = c.get("/servers", headers={"OpenStack-API-Version": "compute 2.999"})
        assert resp.status_code == 406 and resp.json()["notAcceptable"]["code"] == 406
        resp = c.get("/servers", headers={"OpenStack-API-Version": "compute abc"})
        assert resp.status_code == 400
        resp = c.get("/servers", headers={"OpenStack-API-Version": "compute latest"})
        assert resp.headers["OpenStack-API-Version"] == f"compute {MAX_VERSION}"
        assert c.get("/servers", params={"limit": "x"}).status_code == 400
        assert c.get("/servers", params={"marker": str(uuid.uuid4())}).status_code == 400
        assert c.get("/servers", params={"status": "BOGUS"},
                     headers={"OpenStack-API-Version": "compute 2.38"}).status_code == 400
        assert c.get("/servers/detail", params={"sort_key": "bogus"}).status_code == 400
        for since in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "yesterday"):  # overflow: was 500
            assert fault(c.get("/servers", params={"changes-since": since}), 400, "badRequest") == (
                f"Invalid input for query parameters changes-since. Value: {since}. '{since}' is not a 'date-time'")
        assert c.get(f"/servers/{uuid.uuid4()}").status_code == 404
        assert c.get("/no-such-thing").status_code == 404


def test_bad_regex_filters_are_400(cloud: Cloud, image: dict) -> None:
    """Nova's regex query parameters must compile (SQLite's REGEXP would raise on every row); '' is no regex."""
    with cloud.client(token="rex:proj-rex", version="2.26") as c:
        server_id = boot(c, image["id"], name="rex-1").json()["server"]["id"]
        for params in ({"name": "("}, {"name": "["}, {"name": "*"}, {"name": ""}, {"node": "a{2,1}"},
                       {"tags": "("}):
            for path in ("/servers", "/servers/detail"):
                (key, value), = params.items()
                assert fault(c.get(path, params=params), 400, "badRequest") == (
                    f"Invalid input for query parameters {key}. Value: {value}. {value!r} is not a 'regex'")
        assert [s["id"] for s in c.get("/servers", params={"name": "^rex-[0-9]$"}).json()["servers"]] == [server_id]
        c.delete(f"/servers/{server_id}")
        wait_gone(c, server_id)


def test_tags_are_checked_before_they_are_stored(cloud: Cloud, image: dict) -> None:
    with cloud.client(token="tess:proj-tags", version="2.26") as c:
        server_id = boot(c, image["id"]).json()["server"]["id"]
        resp = c.put(f"/servers/{server_id}/tags/%E2%82%AC%20x")  # not latin-1: percent-encoded in the Location
        assert resp.status_code == 201, resp.text
        assert resp.headers["Location"].endswith(f"/servers/{server_id}/tags/%E2%82%AC%20x")
        for raw, shown in (("a%0Ab", r"a\nb"), ("a%0Db", r"a\rb"), ("a%07b", r"a\x07b"), ("a,b", "a,b"),
                           ("t" * 61, "t" * 61)):
            message = fault(c.put(f"/servers/{server_id}/tags/{raw}"), 400, "badRequest")
            assert message.startswith("Tag '") and "' is invalid. It must be a non empty string without characters " \
                "'/' and ','. Validation error message: " in message
            assert f"Validation error message: '{shown}'" in message or "is too long" in message, message
        fault(c.put(f"/servers/{server_id}/tags", json={"tags": ["ok", "a\nb"]}), 400, "badRequest")
        # a NUL names nothing anywhere in a URL
        assert fault(c.put(f"/servers/{server_id}/tags/a%00b"), 400, "badRequest") == (
            "Malformed request URL: it contains a NUL character.")
        for path in (f"/servers/{server_id}%00", "/servers?marker=%00"):
            fault(c.get(path), 400, "badRequest")
        # nor in a body: Nova's metadata schema takes one, PostgreSQL's text cannot store it
        resp = c.post(f"/servers/{server_id}/metadata", json={"metadata": {"k": "a\u0000b"}})
        assert fault(resp, 400, "badRequest") == (
            "Invalid input for field/attribute k. Value: a\u0000b. 'a\\x00b' contains a NUL character")
        assert c.get(f"/servers/{server_id}/metadata").json() == {"metadata": {}}
        assert c.get(f"/servers/{server_id}/tags").json() == {"tags": ["€ x"]}
        assert fault(c.get(f"/servers/{server_id}/tags/nope"), 404, "itemNotFound") == (
            f"Server {server_id} has no tag 'nope'")
        assert fault(c.delete(f"/servers/{server_id}/tags/nope"), 404, "itemNotFound") == (
            f"Instance {server_id} has no tag 'nope'")
        c.delete(f"/servers/{server_id}")
        wait_gone(c, server_id)


def test_someone_elses_server_is_404(cloud: Cloud, image: dict) -> None:
    with cloud.client(token="erin:proj-e") as owner, cloud.client(token="mallory:proj-m") as other:
        server_id = boot(owner, image["id"]).json()["server"]["id"]
        for resp in (other.get(f"/servers/{server_id}"), other.delete(f"/servers/{server_id}"),
                     other.put(f"/servers/{server_id}", json={"server": {"name": "pwned"}}),
                     other.get(f"/servers/{server_id}/metadata")):
            assert resp.status_code == 404, resp.text
            assert resp.json()["itemNotFound"]["code"] == 404
        assert other.get("/servers", params={"all_tenants": "1"}).status_code == 403
        assert server_id not in {s["id"] for s in other.get("/servers").json()["servers"]}
        # nor is it a marker of another project's list, which would tell it exists
        assert fault(other.get("/servers", params={"marker": server_id}), 400, "badRequest") == (
            f"marker [{server_id}] not found")
        assert owner.get("/servers", params={"marker": server_id}).status_code == 200
        owner.delete(f"/servers/{server_id}")
        wait_gone(owner, server_id)


def test_project_id_in_url_and_versions(cloud: Cloud) -> None:
    import httpx
    from tempest.lib.api_schema.response.compute.v2_1 import versions as versions_schema

    base = cloud.compute_url.rsplit("/v2.1", 1)[0]
    root = check(versions_schema.list_versions, httpx.get(base + "/"))
    # Nova's order: the legacy v2.0 first, then v2.1; every self link leads to its version document
    assert [(v["id"], v["status"]) for v in root["versions"]] == [("v2.0", "DEPRECATED"), ("v2.1", "CURRENT")]
    assert root["versions"][1]["version"] == str(MAX_VERSION) and root["versions"][0]["version"] == ""
    for listed in root["versions"]:
        doc = check(versions_schema.get_one_version, httpx.get(listed["links"][0]["href"]))["version"]
        assert doc["id"] == listed["id"] and [x for x in doc["links"] if x["rel"] == "self"] == listed["links"]
    doc = httpx.get(cloud.compute_url + "/").json()["version"]
    assert doc["id"] == "v2.1" and doc["min_version"] == "2.1"
    assert httpx.get(base + "/v2/servers").status_code == 404
    with cloud.client(token="frank:proj-f") as c:
        resp = c.get("/proj-f/servers")
        assert resp.status_code == 200, resp.text
        resp = c.get("/proj-f/flavors/1")
        assert "/v2.1/proj-f/flavors/1" in resp.json()["flavor"]["links"][0]["href"]


def test_quota_exceeded_is_403_and_stores_nothing(cloud: Cloud, image: dict) -> None:
    with cloud.client(token="gina:proj-g") as c:
        resp = boot(c, image["id"], min_count=11)
        assert resp.status_code == 403, resp.text
        assert "Quota exceeded for instances" in resp.json()["forbidden"]["message"]
        assert c.get("/servers").json()["servers"] == []


def test_delete_while_building_wins(cloud: Cloud, image: dict) -> None:
    """Delete immediately after create, many times: nothing is left in instances or allocations."""
    with cloud.client(token="hank:proj-h") as c:
        ids = []
        for _ in range(8):
            resp = boot(c, image["id"])
            assert resp.status_code == 202
            ids.append(resp.json()["server"]["id"])
            assert c.delete(f"/servers/{ids[-1]}").status_code == 204
        for sid in ids:
            wait_gone(c, sid)
    db = sqlite3.connect(cloud.state_path / "stratus.sqlite")
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = db.execute(f"select count(*) from allocations where consumer_id in ({','.join('?' * len(ids))})",
                          ids).fetchone()[0]
        if left == 0:
            break
        time.sleep(0.1)
    assert left == 0
