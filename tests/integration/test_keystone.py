"""Stratus behind a real Keystone (``[api] auth_strategy = keystone``), deployed as Nova is: keystonemiddleware's
auth_token validates the tokens of the ``keystone`` package from PyPI (scripts/keystone.sh) as the service user
``nova`` of project ``service``, and clients find the compute and image APIs in that Keystone's catalog."""

from __future__ import annotations

import dataclasses
import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from tests.functional.helpers import boot, fault, openstack_cli, wait_for_status, wait_gone
from tests.integration.conftest import Keystone

pytestmark = pytest.mark.integration


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    password: str
    project: str
    user_id: str
    project_id: str


@dataclasses.dataclass(frozen=True)
class Deployment:
    keystone: Keystone
    cloud: Cloud
    alice: User  # member of project demo
    bob: User  # member of project other

    def connect(self, user: User) -> Any:
        return self.keystone.connect(user.name, user.password, user.project)

    def token(self, user: User | None = None) -> str:
        conn = self.keystone.connect() if user is None else self.connect(user)
        return str(conn.auth_token)


def _member(admin: Any, name: str, project_name: str) -> User:
    project = admin.identity.create_project(name=project_name, domain_id="default")
    password = secrets.token_hex(12)
    user = admin.identity.create_user(name=name, password=password, default_project_id=project.id,
                                      domain_id="default")
    admin.identity.assign_project_role_to_user(project, user, admin.identity.find_role("member"))
    return User(name, password, project_name, user.id, project.id)


def _service_user(name: str, password: str, auth_url: str) -> str:
    """A keystoneauth password login of a service user in the ``service`` project, as a section's options."""
    return textwrap.dedent(f"""\
        auth_url = {auth_url}
        auth_type = password
        username = {name}
        password = {password}
        project_name = service
        user_domain_name = Default
        project_domain_name = Default
        region_name = RegionOne
        """)


@pytest.fixture(scope="module")
def deployment(keystone: Keystone, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The service user, the users of the tests, then Stratus on [keystone_authtoken], then its endpoints."""
    admin = keystone.connect()
    service = admin.identity.create_project(name="service", domain_id="default")
    nova_password = secrets.token_hex(12)
    nova = admin.identity.create_user(name="nova", password=nova_password, domain_id="default")
    services: list[Any] = []
    members: list[User] = []
    cloud = None
    try:
        for role in ("admin", "service"):
            admin.identity.assign_project_role_to_user(service, nova, admin.identity.find_role(role))
        members += [_member(admin, "alice", "demo"), _member(admin, "bob", "other")]
        login = _service_user("nova", nova_password, keystone.www_authenticate_uri)
        # the service user logs in the same way to check tokens and to reach the Networking service
        conf = (f"[keystone_authtoken]\nwww_authenticate_uri = {keystone.www_authenticate_uri}\n{login}"
                f"[neutron]\n{login}")
        cloud = start_cloud(tmp_path_factory.mktemp("keystone-cloud"), conf, auth_strategy="keystone")
        for name, kind, url in (("nova", "compute", cloud.compute_url), ("glance", "image", cloud.image_url)):
            services.append(admin.identity.create_service(name=name, type=kind, enabled=True))
            for interface in ("public", "internal"):
                admin.identity.create_endpoint(service_id=services[-1].id, interface=interface, url=url,
                                               region_id="RegionOne")
        yield Deployment(keystone, cloud, alice=members[0], bob=members[1])
    finally:
        if cloud is not None:
            stop_cloud(cloud)
        for svc in services:
            for endpoint in admin.identity.endpoints(service_id=svc.id):
                admin.identity.delete_endpoint(endpoint)
            admin.identity.delete_service(svc)
        for user in members:
            admin.identity.delete_user(user.user_id)
            admin.identity.delete_project(user.project_id)
        admin.identity.delete_user(nova)
        admin.identity.delete_project(service)


def test_sdk_with_only_keystones_auth_url_boots_a_server(deployment: Deployment) -> None:
    conn = deployment.connect(deployment.alice)  # the endpoints come from Keystone's catalog
    assert conn.compute.get_endpoint() == deployment.cloud.compute_url
    assert "m1.nano" in {f.name for f in conn.compute.flavors()}
    image = conn.image.create_image(name="keystone-image", data=b"\0" * 8192, disk_format="raw",
                                    container_format="bare", allow_duplicates=True)
    assert conn.image.get_image(image.id).status == "active"
    server = conn.compute.create_server(name="keystone-vm", image_id=image.id,
                                        flavor_id=conn.compute.find_flavor("m1.nano").id, networks="none")
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=30, interval=0.1)
    assert server.status == "ACTIVE"
    assert server.user_id == deployment.alice.user_id and server.project_id == deployment.alice.project_id
    assert server.id in {s.id for s in conn.compute.servers()}
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=30, interval=0.1)
    assert conn.compute.find_server(server.id) is None
    conn.image.delete_image(image)


def test_requests_without_a_valid_token_are_401_naming_keystone(deployment: Deployment) -> None:
    challenge = f'Keystone uri="{deployment.keystone.www_authenticate_uri}"'
    cloud = deployment.cloud
    for headers in ({}, {"X-Auth-Token": "bogus"}):
        resp = httpx.get(cloud.compute_url + "/servers", headers=headers)
        fault(resp, 401, "unauthorized")
        assert resp.headers["www-authenticate"] == challenge
        resp = httpx.get(cloud.image_url + "/v2/images", headers=headers)
        assert resp.status_code == 401 and resp.headers["www-authenticate"] == challenge
    # the version documents stay open, as Nova's and Glance's (clients discover versions before they log in)
    assert httpx.get(cloud.compute_url + "/").status_code == 200
    assert httpx.get(cloud.image_url + "/versions").status_code == 200


def test_projects_are_apart_and_admin_sees_all_tenants(deployment: Deployment) -> None:
    cloud = deployment.cloud
    with (cloud.client(deployment.token(deployment.alice), version="2.37") as alice,
          cloud.client(deployment.token(deployment.bob), version="2.37") as bob,
          cloud.client(deployment.token(), version="2.37") as admin,
          cloud.image_client(deployment.token(deployment.alice)) as images):
        image = images.post("/v2/images", json={"name": "apart", "disk_format": "raw", "container_format": "bare"})
        assert image.status_code == 201, image.text
        image_id = image.json()["id"]
        assert images.put(f"/v2/images/{image_id}/file", content=b"\0" * 4096,
                          headers={"Content-Type": "application/octet-stream"}).status_code == 204
        created = boot(alice, image_id, flavor="1", name="alice-vm", networks="none")
        assert created.status_code == 202, created.text
        server_id = created.json()["server"]["id"]
        assert wait_for_status(alice, server_id, {"ACTIVE"})["tenant_id"] == deployment.alice.project_id
        assert server_id not in {s["id"] for s in bob.get("/servers").json()["servers"]}
        fault(bob.get(f"/servers/{server_id}"), 404, "itemNotFound")
        assert server_id not in {s["id"] for s in admin.get("/servers").json()["servers"]}
        everyone = admin.get("/servers/detail", params={"all_tenants": "1"}).json()["servers"]
        assert {s["id"]: s["tenant_id"] for s in everyone}[server_id] == deployment.alice.project_id
        fault(bob.get("/servers/detail", params={"all_tenants": "1"}), 403, "forbidden")
        assert alice.delete(f"/servers/{server_id}").status_code == 204
        wait_gone(alice, server_id)
        assert images.delete(f"/v2/images/{image_id}").status_code == 204


def test_openstack_cli_with_a_password_login(deployment: Deployment, tmp_path: Path) -> None:
    alice = deployment.alice
    clouds_yaml = tmp_path / "clouds.yaml"
    clouds_yaml.write_text(textwrap.dedent(f"""\
        clouds:
          stratus:
            auth_type: password
            auth:
              auth_url: {deployment.keystone.auth_url}
              username: {alice.name}
              password: {alice.password}
              project_name: {alice.project}
              user_domain_name: Default
              project_domain_name: Default
            region_name: RegionOne
            identity_api_version: 3
        """))
    cli = openstack_cli(clouds_yaml, tmp_path)
    assert "m1.nano" in {f["Name"] for f in cli("flavor", "list", "-f", "json")}
    assert cli("server", "list", "-f", "json") == []
