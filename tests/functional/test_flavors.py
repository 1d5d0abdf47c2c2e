"""Flavors, their extra specs and access lists through the REST API of a running all-in-one."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import flavors as schema
from tempest.lib.api_schema.response.compute.v2_1 import flavors_access as access_schema
from tempest.lib.api_schema.response.compute.v2_1 import flavors_extra_specs as specs_schema
from tempest.lib.api_schema.response.compute.v2_55 import flavors as schema_255
from tempest.lib.api_schema.response.compute.v2_61 import flavors as schema_261

from tests.conftest import Cloud
from tests.functional.helpers import check_schema as check
from tests.functional.helpers import fault

DEFAULTS = {"42": ("m1.nano", 1, 128, 1), "84": ("m1.micro", 1, 192, 1), "1": ("m1.tiny", 1, 512, 1),
            "2": ("m1.small", 1, 2048, 20), "3": ("m1.medium", 2, 4096, 40), "4": ("m1.large", 4, 8192, 80),
            "5": ("m1.xlarge", 8, 16384, 160)}




def new_flavor(admin: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": f"f-{uuid.uuid4().hex[:8]}", "ram": 64, "vcpus": 1, "disk": 1, **fields}
    return check(schema.create_update_get_flavor_details, admin.post("/flavors", json={"flavor": body}))["flavor"]


@pytest.fixture
def admin(cloud: Cloud) -> httpx.Client:
    with cloud.client(token="admin:admin", version="2.47") as c:
        yield c


@pytest.fixture
def user(cloud: Cloud) -> httpx.Client:
    with cloud.client(token="bob:proj-flavors", version="2.47") as c:
        yield c


def test_defaults_listed_and_validated(user: httpx.Client) -> None:
    listed = check(schema.list_flavors, user.get("/flavors"))["flavors"]
    assert {f["id"] for f in listed} >= set(DEFAULTS)
    detail = check(schema.list_flavors_details, user.get("/flavors/detail"))["flavors"]
    by_id = {f["id"]: f for f in detail}
    for flavorid, (name, vcpus, ram, disk) in DEFAULTS.items():
        f = by_id[flavorid]
        assert (f["name"], f["vcpus"], f["ram"], f["disk"]) == (name, vcpus, ram, disk)
        assert f["swap"] == "" and f["OS-FLV-EXT-DATA:ephemeral"] == 0 and f["rxtx_factor"] == 1.0
        assert f["os-flavor-access:is_public"] is True and f["OS-FLV-DISABLED:disabled"] is False
        assert [link["rel"] for link in f["links"]] == ["self", "bookmark"]
        assert f["links"][0]["href"].endswith(f"/v2.1/flavors/{flavorid}")
    shown = check(schema.create_update_get_flavor_details, user.get("/flavors/42"))["flavor"]
    assert shown == by_id["42"]
    # Sorted by flavorid as strings, Nova's default.
    ids = [f["id"] for f in listed]
    assert ids == sorted(ids)


def test_filters_sorting_and_pagination(user: httpx.Client) -> None:
    big = check(schema.list_flavors_details, user.get("/flavors/detail", params={"minRam": 4096,
                                                                                  "minDisk": 40}))
    assert {f["id"] for f in big["flavors"]} >= {"3", "4", "5"}
    assert all(f["ram"] >= 4096 and f["disk"] >= 40 for f in big["flavors"])
    by_ram = user.get("/flavors/detail", params={"sort_key": "memory_mb", "sort_dir": "desc"}).json()["flavors"]
    assert [f["ram"] for f in by_ram] == sorted((f["ram"] for f in by_ram), reverse=True)

    page = check(schema.list_flavors, user.get("/flavors", params={"limit": 2}))
    assert len(page["flavors"]) == 2
    next_href = page["flavors_links"][0]["href"]
    assert page["flavors_links"][0]["rel"] == "next" and f"marker={page['flavors'][1]['id']}" in next_href
    rest = user.get("/flavors", params={"marker": page["flavors"][1]["id"]}).json()["flavors"]
    everything = user.get("/flavors").json()["flavors"]
    assert page["flavors"] + rest == everything
    assert "flavors_links" not in user.get("/flavors").json()
    assert user.get("/flavors", params={"limit": 0}).json()["flavors"] == []

    assert "marker [nope] not found" in fault(user.get("/flavors", params={"marker": "nope"}), 400, "badRequest")
    fault(user.get("/flavors", params={"limit": "-1"}), 400, "badRequest")
    assert "minRam" in fault(user.get("/flavors", params={"minRam": "x"}), 400, "badRequest")
    # past the 64-bit range: Nova's message for a minRam it cannot use; past the columns' range: no flavor has it
    for param in ("minRam", "minDisk"):
        assert fault(user.get("/flavors/detail", params={param: str(2**70)}), 400, "badRequest") == (
            f"Invalid {param} filter [{2**70}]")
        assert user.get("/flavors", params={param: str(2**40)}).json() == {"flavors": []}
        assert len(user.get("/flavors", params={param: "-5"}).json()["flavors"]) == len(everything)
    fault(user.get("/flavors", params={"sort_key": "bogus"}), 400, "badRequest")


def test_not_found(user: httpx.Client) -> None:
    assert fault(user.get("/flavors/nope"), 404, "itemNotFound") == "Flavor nope could not be found."


def test_admin_create_show_delete(admin: httpx.Client, user: httpx.Client) -> None:
    flavor = new_flavor(admin, id=None, swap=512, rxtx_factor="2.5", **{"OS-FLV-EXT-DATA:ephemeral": "3"})
    uuid.UUID(flavor["id"])  # generated
    assert (flavor["swap"], flavor["rxtx_factor"], flavor["OS-FLV-EXT-DATA:ephemeral"]) == (512, 2.5, 3)
    shown = check(schema.create_update_get_flavor_details, user.get(f"/flavors/{flavor['id']}"))["flavor"]
    assert shown == flavor
    numeric = new_flavor(admin, id=987654)
    assert numeric["id"] == "987654"

    assert "already exists" in fault(admin.post("/flavors", json={"flavor": {
        "name": flavor["name"], "ram": 1, "vcpus": 1, "disk": 0}}), 409, "conflictingRequest")
    assert "ID 987654 already exists" in fault(admin.post("/flavors", json={"flavor": {
        "name": "other-" + uuid.uuid4().hex[:6], "id": "987654", "ram": 1, "vcpus": 1, "disk": 0}}),
        409, "conflictingRequest")

    check(schema.delete_flavor, admin.delete(f"/flavors/{flavor['id']}"))
    check(schema.delete_flavor, admin.delete("/flavors/987654"))
    fault(admin.get(f"/flavors/{flavor['id']}"), 404, "itemNotFound")
    fault(admin.delete("/flavors/987654"), 404, "itemNotFound")


@pytest.mark.parametrize("body", [
    {},
    {"flavor": {"name": "x", "ram": 1, "vcpus": 1}},
    {"flavor": {"name": "x", "ram": 0, "vcpus": 1, "disk": 0}},
    {"flavor": {"name": "x", "ram": "0", "vcpus": 1, "disk": 0}},
    {"flavor": {"name": "x", "ram": 1, "vcpus": "-1", "disk": 0}},
    {"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 0, "rxtx_factor": 0}},
    {"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 0, "rxtx_factor": "0"}},
    {"flavor": {"name": " x", "ram": 1, "vcpus": 1, "disk": 0}},
    {"flavor": {"name": "x", "id": "bad/id", "ram": 1, "vcpus": 1, "disk": 0}},
    {"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 0, "os-flavor-access:is_public": "maybe"}},
    {"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 0, "description": "2.55 only"}},
    {"flavor": {"name": "x", "ram": 2**31, "vcpus": 1, "disk": 0}},
])
def test_create_bad_bodies(admin: httpx.Client, body: dict[str, Any]) -> None:
    fault(admin.post("/flavors", json=body), 400, "badRequest")


def test_non_admin_forbidden(user: httpx.Client) -> None:
    body = {"flavor": {"name": "mine", "ram": 1, "vcpus": 1, "disk": 0}}
    assert fault(user.post("/flavors", json=body), 403, "forbidden") == (
        "Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed.")
    assert "os-flavor-manage:delete" in fault(user.delete("/flavors/1"), 403, "forbidden")
    assert "extra-specs:create" in fault(user.post("/flavors/1/os-extra_specs", json={"extra_specs": {"a": "b"}}),
                                         403, "forbidden")
    assert "os-flavor-access" in fault(user.get("/flavors/1/os-flavor-access"), 403, "forbidden")
    assert "add_tenant_access" in fault(user.post("/flavors/1/action", json={"addTenantAccess": {"tenant": "x"}}),
                                        403, "forbidden")


def test_extra_specs(admin: httpx.Client, user: httpx.Client) -> None:
    fid = new_flavor(admin)["id"]
    base = f"/flavors/{fid}/os-extra_specs"
    assert check(specs_schema.set_get_flavor_extra_specs, user.get(base))["extra_specs"] == {}
    created = check(specs_schema.set_get_flavor_extra_specs,
                    admin.post(base, json={"extra_specs": {"hw:cpu_policy": "dedicated", "quota:x": "1"}}))
    assert created == {"extra_specs": {"hw:cpu_policy": "dedicated", "quota:x": "1"}}
    admin.post(base, json={"extra_specs": {"n": 5}})  # numbers are stored as strings, others kept
    assert user.get(base).json()["extra_specs"] == {"hw:cpu_policy": "dedicated", "quota:x": "1", "n": "5"}
    shown = check(specs_schema.set_get_flavor_extra_specs_key, user.get(f"{base}/hw:cpu_policy"))
    assert shown == {"hw:cpu_policy": "dedicated"}
    updated = check(specs_schema.set_get_flavor_extra_specs_key, admin.put(f"{base}/quota:x", json={"quota:x": "2"}))
    assert updated == {"quota:x": "2"}
    assert fault(admin.put(f"{base}/quota:x", json={"other": "2"}), 400, "badRequest") == (
        "Request body and URI mismatch")
    fault(admin.put(f"{base}/quota:x", json={"quota:x": "2", "b": "3"}), 400, "badRequest")
    fault(admin.post(base, json={"extra_specs": {"bad/key": "v"}}), 400, "badRequest")
    fault(admin.post(base, json={"specs": {}}), 400, "badRequest")
    check(specs_schema.unset_flavor_extra_specs, admin.delete(f"{base}/quota:x"))
    assert fault(admin.delete(f"{base}/quota:x"), 404, "itemNotFound") == (
        f"Flavor {fid} has no extra specs with key quota:x.")
    fault(user.get(f"{base}/quota:x"), 404, "itemNotFound")
    fault(admin.get("/flavors/nope/os-extra_specs"), 404, "itemNotFound")
    admin.delete(f"/flavors/{fid}")


def test_private_flavor_access(admin: httpx.Client, user: httpx.Client) -> None:
    private = new_flavor(admin, **{"os-flavor-access:is_public": False})
    fid = private["id"]
    assert private["os-flavor-access:is_public"] is False
    # Invisible to other projects until shared; admins list private flavors with is_public=false or none.
    fault(user.get(f"/flavors/{fid}"), 404, "itemNotFound")
    assert fid not in {f["id"] for f in user.get("/flavors").json()["flavors"]}
    assert fid not in {f["id"] for f in admin.get("/flavors").json()["flavors"]}
    assert fid in {f["id"] for f in admin.get("/flavors", params={"is_public": "false"}).json()["flavors"]}
    assert fid in {f["id"] for f in admin.get("/flavors", params={"is_public": "none"}).json()["flavors"]}
    fault(admin.get("/flavors", params={"is_public": "maybe"}), 400, "badRequest")

    action = f"/flavors/{fid}/action"
    empty = check(access_schema.add_remove_list_flavor_access, admin.get(f"/flavors/{fid}/os-flavor-access"))
    assert empty == {"flavor_access": []}
    added = check(access_schema.add_remove_list_flavor_access,
                  admin.post(action, json={"addTenantAccess": {"tenant": "proj-flavors"}}))
    assert added == {"flavor_access": [{"flavor_id": fid, "tenant_id": "proj-flavors"}]}
    fault(admin.post(action, json={"addTenantAccess": {"tenant": "proj-flavors"}}), 409, "conflictingRequest")
    assert user.get(f"/flavors/{fid}").status_code == 200
    assert fid in {f["id"] for f in user.get("/flavors").json()["flavors"]}

    removed = check(access_schema.add_remove_list_flavor_access,
                    admin.post(action, json={"removeTenantAccess": {"tenant": "proj-flavors"}}))
    assert removed == {"flavor_access": []}
    fault(admin.post(action, json={"removeTenantAccess": {"tenant": "proj-flavors"}}), 404, "itemNotFound")
    fault(user.get(f"/flavors/{fid}"), 404, "itemNotFound")

    fault(admin.post(action, json={"addTenantAccess": {}}), 400, "badRequest")
    assert "no such action" in fault(admin.post(action, json={"fly": {}}), 400, "badRequest")
    fault(admin.post("/flavors/nope/action", json={"addTenantAccess": {"tenant": "p"}}), 404, "itemNotFound")
    admin.delete(f"/flavors/{fid}")


def test_public_flavor_access_rules(admin: httpx.Client, cloud: Cloud) -> None:
    assert fault(admin.get("/flavors/1/os-flavor-access"), 404, "itemNotFound") == (
        "Access list not available for public flavors.")
    assert fault(admin.post("/flavors/1/action", json={"addTenantAccess": {"tenant": "p"}}), 409,
                 "conflictingRequest") == "Can not add access to a public flavor."
    # Before 2.7 Nova recorded the tenant anyway.
    fid = new_flavor(admin)["id"]
    with cloud.client(token="admin:admin", version="2.6") as old:
        resp = old.post(f"/flavors/{fid}/action", json={"addTenantAccess": {"tenant": "p"}})
        check(access_schema.add_remove_list_flavor_access, resp)
    admin.delete(f"/flavors/{fid}")


def test_description_2_55(admin: httpx.Client, cloud: Cloud) -> None:
    fid = new_flavor(admin)["id"]
    with cloud.client(token="admin:admin", version="2.54") as old:
        # Before 2.55: no description anywhere (tempest's v2.1 bodies allow no other key), no PUT.
        check(schema.create_update_get_flavor_details, old.get(f"/flavors/{fid}"))
        check(schema.list_flavors, old.get("/flavors"))
        check(schema.list_flavors_details, old.get("/flavors/detail"))
        fault(old.put(f"/flavors/{fid}", json={"flavor": {"description": "x"}}), 404, "itemNotFound")
        fault(old.post("/flavors", json={"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 0,
                                                    "description": "too early"}}), 400, "badRequest")
    with cloud.client(token="admin:admin", version="2.55") as c, \
            cloud.client(token="bob:proj-flavors", version="2.55") as u:
        body = {"name": f"f-{uuid.uuid4().hex[:8]}", "ram": 64, "vcpus": 1, "disk": 1, "description": "for web"}
        described = check(schema_255.create_update_get_flavor_details,
                          c.post("/flavors", json={"flavor": body}))["flavor"]
        assert described["description"] == "for web"
        assert check(schema_255.create_update_get_flavor_details, u.get(f"/flavors/{fid}"))["flavor"][
            "description"] is None
        listed = {f["id"]: f for f in check(schema_255.list_flavors, u.get("/flavors"))["flavors"]}
        assert listed[described["id"]]["description"] == "for web" and listed["1"]["description"] is None
        detail = {f["id"]: f for f in check(schema_255.list_flavors_details, u.get("/flavors/detail"))["flavors"]}
        assert detail[described["id"]] == described

        updated = check(schema_255.create_update_get_flavor_details,
                        c.put(f"/flavors/{fid}", json={"flavor": {"description": "d" * 65535}}))["flavor"]
        assert updated["description"] == "d" * 65535
        assert u.get(f"/flavors/{fid}").json()["flavor"] == updated
        cleared = check(schema_255.create_update_get_flavor_details,
                        c.put(f"/flavors/{fid}", json={"flavor": {"description": None}}))["flavor"]
        assert cleared["description"] is None and u.get(f"/flavors/{fid}").json()["flavor"] == cleared

        assert fault(u.put(f"/flavors/{fid}", json={"flavor": {"description": "mine"}}), 403, "forbidden") == (
            "Policy doesn't allow os_compute_api:os-flavor-manage:update to be performed.")
        assert fault(c.put("/flavors/nope", json={"flavor": {"description": "x"}}), 404, "itemNotFound") == (
            "Flavor nope could not be found.")
        for bad in ({}, {"flavor": {}}, {"flavor": {"description": "x", "name": "y"}},
                    {"flavor": {"description": "d" * 65536}}, {"flavor": {"description": "bell\x07"}},
                    {"flavor": {"description": 5}}):
            fault(c.put(f"/flavors/{fid}", json=bad), 400, "badRequest")
        fault(c.post("/flavors", json={"flavor": {**body, "name": "long-desc", "description": "d" * 65536}}),
              400, "badRequest")
        assert u.get(f"/flavors/{fid}").json()["flavor"]["description"] is None
        c.delete(f"/flavors/{described['id']}")
    admin.delete(f"/flavors/{fid}")


def test_extra_specs_in_bodies_2_61(admin: httpx.Client, cloud: Cloud) -> None:
    fid = new_flavor(admin)["id"]
    admin.post(f"/flavors/{fid}/os-extra_specs", json={"extra_specs": {"hw:cpu_policy": "dedicated"}})
    with cloud.client(token="admin:admin", version="2.60") as old:
        # tempest's 2.55 flavor body allows no extra_specs.
        check(schema_255.create_update_get_flavor_details, old.get(f"/flavors/{fid}"))
        check(schema_255.list_flavors_details, old.get("/flavors/detail"))
        check(schema_255.create_update_get_flavor_details,
              old.put(f"/flavors/{fid}", json={"flavor": {"description": "old"}}))
        created = old.post("/flavors", json={"flavor": {"name": f"f-{uuid.uuid4().hex[:8]}", "ram": 64,
                                                        "vcpus": 1, "disk": 1}})
        old_id = check(schema_255.create_update_get_flavor_details, created)["flavor"]["id"]
    with cloud.client(token="admin:admin", version="2.61") as c, \
            cloud.client(token="bob:proj-flavors", version="2.61") as u:
        specs = {"hw:cpu_policy": "dedicated"}
        assert check(schema_261.create_update_get_flavor_details, u.get(f"/flavors/{fid}"))["flavor"][
            "extra_specs"] == specs
        detail = {f["id"]: f for f in check(schema_261.list_flavors_details, u.get("/flavors/detail"))["flavors"]}
        assert detail[fid]["extra_specs"] == specs and detail["1"]["extra_specs"] == {}
        listed = check(schema_261.list_flavors, u.get("/flavors"))["flavors"]  # the brief list has none
        assert all("extra_specs" not in f for f in listed)
        updated = check(schema_261.create_update_get_flavor_details,
                        c.put(f"/flavors/{fid}", json={"flavor": {"description": "new"}}))["flavor"]
        assert updated["extra_specs"] == specs and updated["description"] == "new"
        created = c.post("/flavors", json={"flavor": {"name": f"f-{uuid.uuid4().hex[:8]}", "ram": 64,
                                                      "vcpus": 1, "disk": 1}})
        new_id = check(schema_261.create_update_get_flavor_details, created)["flavor"]["id"]
        assert created.json()["flavor"]["extra_specs"] == {}
    for flavorid in (fid, old_id, new_id):
        admin.delete(f"/flavors/{flavorid}")


# openstacksdk 4 warns about its own deprecations (PendingDeprecationWarning); pytest would make them errors.
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_openstacksdk_flavors(cloud: Cloud) -> None:
    conn = cloud.sdk("carol:proj-sdk")
    flavors = {f.id: f for f in conn.compute.flavors()}
    assert flavors["1"].name == "m1.tiny" and flavors["1"].ram == 512
    assert conn.compute.find_flavor("m1.small").id == "2"
