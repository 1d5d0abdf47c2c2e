"""Nova's policy defaults through the REST API of a real all-in-one with the embedded identity service: readers,
members and admins as Keystone roles, openstacksdk logged in with passwords, and the operator's policy file
(``[oslo_policy] policy_file``, a name found beside the config file) read while the cloud runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openstack
import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud

POLICY_FILE = "operator-policy.yaml"  # absent at start: Nova's defaults
PASSWORD = "policy-secret"


@pytest.fixture(scope="module")
def policy_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("policy"),
                    f"[identity]\npassword_hash_rounds = 4\n[oslo_policy]\npolicy_file = {POLICY_FILE}\n",
                    auth_strategy="embedded")
    try:
        yield c
    finally:
        stop_cloud(c)


@pytest.fixture(scope="module")
def people(policy_cloud: Cloud) -> dict[str, Any]:
    """openstacksdk connections: the bootstrap admin, a member and a reader of project alpha, a member of beta."""
    admin = policy_cloud.connect()
    roles = {r.name: r for r in admin.identity.roles()}
    projects = {name: admin.identity.create_project(name=name, domain_id="default") for name in ("alpha", "beta")}
    out = {"admin": admin}
    for user, project, role in (("alpha-member", "alpha", "member"), ("alpha-reader", "alpha", "reader"),
                                ("beta-member", "beta", "member")):
        created = admin.identity.create_user(name=user, password=PASSWORD, domain_id="default",
                                             default_project_id=projects[project].id)
        admin.identity.assign_project_role_to_user(projects[project], created, roles[role])
        out[user] = policy_cloud.connect(user, PASSWORD, project)
    return out


@pytest.fixture(scope="module")
def image_id(people: dict[str, Any]) -> str:
    image = people["admin"].image.create_image(name="policy-image", data=b"\0" * 4096, disk_format="raw",
                                               container_format="bare", visibility="public")
    return str(image.id)


def _boot(conn: Any, image_id: str, name: str) -> Any:
    server = conn.compute.create_server(name=name, image_id=image_id, flavor_id="1", networks="none")
    return conn.compute.wait_for_server(server, status="ACTIVE", wait=30, interval=0.1)


def _forbidden(resp: Any, rule: str) -> None:
    assert resp.status_code == 403, resp.text
    assert resp.json() == {"forbidden": {"code": 403, "message": f"Policy doesn't allow {rule} to be performed."}}


def test_reader_lists_and_shows_but_cannot_boot_or_delete(people: dict[str, Any], image_id: str) -> None:
    member, reader = people["alpha-member"], people["alpha-reader"]
    server = _boot(member, image_id, "alpha-vm")
    assert [s.id for s in reader.compute.servers()] == [server.id]
    assert reader.compute.get_server(server.id).name == "alpha-vm"
    body = {"server": {"name": "nope", "imageRef": image_id, "flavorRef": "1", "networks": "none"}}
    _forbidden(reader.compute.post("/servers", json=body, microversion="2.37"), "os_compute_api:servers:create")
    with pytest.raises(openstack.exceptions.ForbiddenException):
        reader.compute.create_server(name="nope", image_id=image_id, flavor_id="1", networks="none")
    # its own project's server: found, then refused (Nova's 403, not a 404)
    _forbidden(reader.compute.delete(f"/servers/{server.id}"), "os_compute_api:servers:delete")
    # another project's server is not found at all
    assert people["beta-member"].compute.get(f"/servers/{server.id}").status_code == 404


def test_all_tenants_is_for_admins(people: dict[str, Any], image_id: str) -> None:
    alpha = _boot(people["alpha-member"], image_id, "alpha-listed")
    beta = _boot(people["beta-member"], image_id, "beta-listed")
    admin = people["admin"]
    everyone = {s.id for s in admin.compute.servers(all_projects=True)}
    assert {alpha.id, beta.id} <= everyone
    assert beta.id not in {s.id for s in people["alpha-member"].compute.servers()}
    member = people["beta-member"]
    _forbidden(member.compute.get("/servers?all_tenants=1"), "os_compute_api:servers:index:get_all_tenants")
    _forbidden(member.compute.get("/servers/detail?all_tenants=1"), "os_compute_api:servers:detail:get_all_tenants")
    detail = admin.compute.get("/servers/detail?all_tenants=1").json()["servers"]
    assert {alpha.id, beta.id} <= {s["id"] for s in detail}
    assert {s["tenant_id"] for s in detail} >= {alpha.project_id, beta.project_id}


def test_flavors_are_for_admins_until_the_policy_file_says_otherwise(policy_cloud: Cloud,
                                                                     people: dict[str, Any]) -> None:
    member = people["alpha-member"]
    flavor = {"flavor": {"name": "member-flavor", "ram": 256, "vcpus": 1, "disk": 1}}
    resp = member.compute.post("/flavors", json=flavor)
    _forbidden(resp, "os_compute_api:os-flavor-manage:create")
    _forbidden(people["alpha-reader"].compute.post("/flavors", json=flavor), "os_compute_api:os-flavor-manage:create")

    # the operator writes the policy file the configuration names (beside stratus.conf); no restart
    policy_file = Path(policy_cloud.config_file).parent / POLICY_FILE
    policy_file.write_text('"os_compute_api:os-flavor-manage:create": "role:member"\n')
    deadline = time.monotonic() + 10
    while (resp := member.compute.post("/flavors", json=flavor)).status_code == 403 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert resp.status_code == 200, resp.text
    assert resp.json()["flavor"]["name"] == "member-flavor"
    # only that rule changed: a reader still may not, nor may a member delete it
    _forbidden(people["alpha-reader"].compute.post("/flavors", json=flavor), "os_compute_api:os-flavor-manage:create")
    flavor_id = resp.json()["flavor"]["id"]
    _forbidden(member.compute.delete(f"/flavors/{flavor_id}"), "os_compute_api:os-flavor-manage:delete")
    assert people["admin"].compute.delete(f"/flavors/{flavor_id}").status_code == 202
