"""Real OpenStack clients logging in to the embedded identity service with a password and finding every endpoint
in the catalog: openstacksdk (given only the auth URL), the ``openstack`` CLI with the clouds.yaml the cloud wrote,
and tempest's own dynamic credentials provider."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import Cloud
from tests.functional.helpers import openstack_cli

OPENSTACK = str(Path(sys.executable).with_name("openstack"))


def test_sdk_logs_in_with_a_password_and_boots(embedded_cloud: Cloud) -> None:
    conn = embedded_cloud.connect()  # auth_url, user, password, project: no endpoint given
    assert conn.compute.get_endpoint() == embedded_cloud.compute_url
    image = conn.image.create_image(name="sdk-embedded", data=b"\0" * 8192, disk_format="raw",
                                    container_format="bare", allow_duplicates=True)
    server = conn.compute.create_server(name="sdk-embedded-vm", image_id=image.id,
                                        flavor_id=conn.compute.find_flavor("m1.nano").id, networks="none")
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=30, interval=0.1)
    assert server.status == "ACTIVE"
    assert server.id in {s.id for s in conn.compute.servers()}
    assert conn.current_project.name == "admin" and conn.current_user_id
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=30, interval=0.1)
    assert conn.compute.find_server(server.id) is None
    conn.image.delete_image(image)


def test_sdk_with_an_application_credential(embedded_cloud: Cloud) -> None:
    conn = embedded_cloud.connect()
    cred = conn.identity.create_application_credential(user=conn.current_user_id, name="sdk-cred",
                                                       unrestricted=False)
    assert cred.secret
    app = embedded_cloud.connect_application_credential(cred.id, cred.secret)
    assert app.compute.get_endpoint() == embedded_cloud.compute_url
    assert list(app.compute.flavors())
    assert app.current_project_id == conn.current_project_id
    conn.identity.delete_application_credential(conn.current_user_id, cred.id)


@pytest.fixture(scope="module")
def cli(embedded_cloud: Cloud, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The openstack CLI with only the clouds.yaml the cloud wrote (``--os-cloud stratus``)."""
    tmp = tmp_path_factory.mktemp("cli-embedded")
    assert embedded_cloud.clouds_yaml_path is not None
    return openstack_cli(embedded_cloud.clouds_yaml_path, tmp)


def test_cli_with_the_written_clouds_yaml(cli) -> None:  # type: ignore[no-untyped-def]
    """Booting with it is the README's walkthrough (test_readme.py); here, the catalog the CLI finds."""
    assert {s["Type"] for s in cli("catalog", "list", "-f", "json")} == {"identity", "compute", "image", "network"}


def test_cli_identity_administration(cli, embedded_cloud: Cloud) -> None:  # type: ignore[no-untyped-def]
    """The commands resolve names the way openstackclient does (GET by id, 404, then a list filtered by name)."""
    project = cli("project", "create", "cli-project", "-f", "json")
    user = cli("user", "create", "--project", "cli-project", "--password", "cli-pw", "cli-user", "-f", "json")
    cli("role", "add", "--project", "cli-project", "--user", "cli-user", "member")
    listed = cli("role", "assignment", "list", "--user", "cli-user", "--names", "-f", "json")
    assert [(a["Role"], a["Project"]) for a in listed] == [("member", "cli-project@Default")]
    assert list(embedded_cloud.connect("cli-user", "cli-pw", "cli-project").compute.servers()) == []
    admin = embedded_cloud.connect()
    admin.identity.delete_user(user["id"])
    admin.identity.delete_project(project["id"])


def _register_tempest_clients() -> None:
    """What tempest does from its config file: register its service clients, here for identity v3, compute and
    network (the dynamic credentials provider builds network clients, unused without Neutron)."""
    from tempest.lib.services import clients, compute, identity, network

    registry = clients.ClientsRegistry()
    if "stratus-tests" in registry.get_service_clients():
        return
    registry.register_service_client("stratus-tests", [
        {"name": version.replace(".", "_"), "service_version": version, "module_path": module.__name__,
         "client_names": module.__all__, "service": service, "endpoint_type": "publicURL", "region": "RegionOne"}
        for version, module, service in (("identity.v3", identity.v3, "identity"), ("compute", compute, "compute"),
                                         ("network", network, "network"))])


def test_tempest_dynamic_credentials(embedded_cloud: Cloud) -> None:
    from tempest.lib import auth
    from tempest.lib.common import dynamic_creds
    from tempest.lib.services import clients

    _register_tempest_clients()
    uri = embedded_cloud.identity_url
    admin_creds = auth.get_credentials(uri, fill_in=False, identity_version="v3", username="admin",
                                       password=embedded_cloud.admin_password, project_name="admin",
                                       user_domain_name="Default", project_domain_name="Default")
    provider = dynamic_creds.DynamicCredentialProvider(
        identity_version="v3", name="stratus", admin_creds=admin_creds, identity_uri=uri,
        neutron_available=False, create_networks=False)
    try:
        primary, alt = provider.get_primary_creds(), provider.get_alt_creds()
        assert primary.credentials.project_id != alt.credentials.project_id
        servers = {}
        for creds in (primary, alt):
            compute = clients.ServiceClients(creds.credentials, uri).compute
            flavor = compute.FlavorsClient().list_flavors()["flavors"][0]["id"]
            image = embedded_cloud.connect().image.create_image(
                name="tempest-image", data=b"\0" * 4096, disk_format="raw", container_format="bare",
                visibility="public", allow_duplicates=True)
            created = compute.ServersClient().create_server(name="tempest-vm", imageRef=image.id,
                                                            flavorRef=flavor)["server"]
            servers[creds.credentials.project_id] = (compute, created["id"])
        for project_id, (compute, server_id) in servers.items():
            seen = compute.ServersClient().list_servers()["servers"]
            assert [s["id"] for s in seen] == [server_id], project_id  # only their own
        for compute, server_id in servers.values():
            compute.ServersClient().delete_server(server_id)
    finally:
        provider.clear_creds()
    admin = embedded_cloud.connect()
    assert not [u for u in admin.identity.users() if u.name.startswith("stratus")]
    assert not [p for p in admin.identity.projects() if p.name.startswith("stratus")]
