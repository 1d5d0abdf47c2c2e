"""Servers on networks through HTTP against a real all-in-one (fake driver, the embedded Networking API): the
``networks`` of a boot in each of its forms and Nova's errors for each, ports made and bound before spawn and
released on delete and on a failed build, addresses in the views, /ips, os-interface, security group actions and
os-server-external-events.

Each test works in a project of its own, so the networks of one do not make another's boot ambiguous."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from tests.functional.helpers import boot, openstack_cli, upload_image, wait_for_status, wait_gone
from tests.functional.network_helpers import network, port, subnet

SECRET = "proxy-secret"


@pytest.fixture(scope="module")
def net_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """An all-in-one whose builds wait at most 5 s for network-vif-plugged (a missing event fails fast)."""
    c = start_cloud(tmp_path_factory.mktemp("netcloud"), f"""
        [DEFAULT]
        vif_plugging_timeout = 5
        [neutron]
        service_metadata_proxy = true
        metadata_proxy_shared_secret = {SECRET}
        """)
    try:
        yield c
    finally:
        stop_cloud(c)
        if os.environ.get("STRATUS_SHOW_LOG"):
            print(c.log())


@pytest.fixture(scope="module")
def image_id(net_cloud: Cloud) -> str:
    with net_cloud.image_client() as images:
        return str(upload_image(images)["id"])


class Project:
    """A project of its own: its compute and network clients (admin in it, as noauth2's ``admin:<project>``)."""

    def __init__(self, cloud: Cloud, version: str = "latest") -> None:
        self.id = f"p{uuid.uuid4().hex[:10]}"
        self.token = f"admin:{self.id}"
        self.compute = cloud.client(self.token, version=version)
        self.network = cloud.network_client(self.token)

    def net(self, cidr: str = "10.10.0.0/24", **values: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        net = network(self.network, **values)
        return net, subnet(self.network, net["id"], cidr)

    def ports_of(self, server_id: str) -> list[dict[str, Any]]:
        resp = self.network.get("/ports", params={"device_id": server_id})
        assert resp.status_code == 200, resp.text
        return list(resp.json()["ports"])

    def close(self) -> None:
        self.compute.close()
        self.network.close()


@pytest.fixture
def project(net_cloud: Cloud) -> Iterator[Project]:
    p = Project(net_cloud)
    try:
        yield p
    finally:
        p.close()


def _fault(resp: httpx.Response, code: int) -> str:
    assert resp.status_code == code, resp.text
    (body,) = resp.json().values()
    return str(body["message"])


def test_boot_on_a_network_gets_a_bound_port_and_addresses(project: Project, image_id: str) -> None:
    net, sub = project.net()
    resp = boot(project.compute, image_id, networks=[{"uuid": net["id"]}])
    assert resp.status_code == 202, resp.text
    server = wait_for_status(project.compute, resp.json()["server"]["id"], {"ACTIVE", "ERROR"})
    assert server["status"] == "ACTIVE", server
    (p,) = project.ports_of(server["id"])
    assert p["device_owner"] == "compute:nova" and p["binding:host_id"] == server["OS-EXT-SRV-ATTR:host"]
    assert p["binding:vif_type"] == "bridge" and p["status"] == "ACTIVE"
    address = p["fixed_ips"][0]["ip_address"]
    assert server["addresses"] == {net["name"]: [{"version": 4, "addr": address, "OS-EXT-IPS:type": "fixed",
                                                  "OS-EXT-IPS-MAC:mac_addr": p["mac_address"]}]}
    ips = project.compute.get(f"/servers/{server['id']}/ips")
    assert ips.json() == {"addresses": {net["name"]: [{"version": 4, "addr": address}]}}
    one = project.compute.get(f"/servers/{server['id']}/ips/{net['name']}")
    assert one.json() == {net["name"]: [{"version": 4, "addr": address}]}
    assert _fault(project.compute.get(f"/servers/{server['id']}/ips/nope"), 404) == (
        "Instance is not a member of specified network")
    assert sub["id"] == p["fixed_ips"][0]["subnet_id"]
    assert project.compute.delete(f"/servers/{server['id']}").status_code == 204
    wait_gone(project.compute, server["id"])
    assert project.ports_of(server["id"]) == []


def test_the_projects_only_network_is_taken_and_two_are_ambiguous(net_cloud: Cloud, image_id: str) -> None:
    p = Project(net_cloud, version="2.36")
    try:
        net, _ = p.net()
        server = boot(p.compute, image_id).json()["server"]
        server = wait_for_status(p.compute, server["id"], {"ACTIVE", "ERROR"})
        assert list(server["addresses"]) == [net["name"]]
        p.net("10.11.0.0/24")
        assert _fault(boot(p.compute, image_id), 409) == (
            "Multiple possible networks found, use a Network ID to be more specific.")
        p.compute.delete(f"/servers/{server['id']}")
    finally:
        p.close()


def test_networks_none_and_auto_at_237(project: Project, image_id: str) -> None:
    project.net()
    none = boot(project.compute, image_id, networks="none")
    assert none.status_code == 202, none.text
    server = wait_for_status(project.compute, none.json()["server"]["id"], {"ACTIVE", "ERROR"})
    assert server["status"] == "ACTIVE" and server["addresses"] == {}
    assert project.ports_of(server["id"]) == []
    auto = boot(project.compute, image_id, networks="auto")  # the project has a network: that one
    assert auto.status_code == 202, auto.text
    server2 = wait_for_status(project.compute, auto.json()["server"]["id"], {"ACTIVE", "ERROR"})
    assert len(project.ports_of(server2["id"])) == 1
    missing = project.compute.post("/servers", json={"server": {"name": "x", "imageRef": image_id,
                                                                "flavorRef": "1"}})
    assert missing.status_code == 400 and "networks" in missing.text


def test_boot_errors_are_novas(project: Project, image_id: str) -> None:
    net, _ = project.net()
    unknown = str(uuid.uuid4())
    assert _fault(boot(project.compute, image_id, networks=[{"uuid": unknown}]), 400) == (
        f"Network {unknown} could not be found.")
    assert _fault(boot(project.compute, image_id, networks=[{"port": unknown}]), 400) == (
        f"Port id {unknown} could not be found.")
    used = port(project.network, net["id"], device_id=str(uuid.uuid4()), device_owner="compute:nova")
    assert _fault(boot(project.compute, image_id, networks=[{"port": used["id"]}]), 409) == (
        f"Port {used['id']} is still in use.")
    assert _fault(boot(project.compute, image_id, networks=[{"uuid": "not-a-uuid"}]), 400) == (
        "Bad networks format: network uuid is not in proper format (not-a-uuid)")
    free = port(project.network, net["id"])
    assert _fault(boot(project.compute, image_id, networks=[{"port": free["id"]}], min_count=2), 400).startswith(
        "Unable to launch multiple instances with a single configured port ID.")
    assert _fault(boot(project.compute, image_id, security_groups=[{"name": "nope"}],
                       networks=[{"uuid": net["id"]}]), 400) == "Security group nope not found."
    # nothing of the refused boots was kept: no server, no port of theirs
    assert project.compute.get("/servers").json()["servers"] == []
    ports = project.network.get("/ports", params={"network_id": net["id"]}).json()["ports"]
    assert sorted(p["id"] for p in ports if p["device_owner"].startswith("compute:")) == [used["id"]]


def test_a_users_port_is_taken_and_given_back_on_delete(project: Project, image_id: str) -> None:
    net, _ = project.net()
    mine = port(project.network, net["id"], name="mine")
    server = boot(project.compute, image_id, networks=[{"port": mine["id"]}]).json()["server"]
    server = wait_for_status(project.compute, server["id"], {"ACTIVE", "ERROR"})
    assert server["status"] == "ACTIVE", server
    taken = project.network.get(f"/ports/{mine['id']}").json()["port"]
    assert taken["device_id"] == server["id"] and taken["binding:host_id"]
    project.compute.delete(f"/servers/{server['id']}")
    wait_gone(project.compute, server["id"])
    back = project.network.get(f"/ports/{mine['id']}")
    assert back.status_code == 200  # preserve_on_delete: unbound, not deleted
    assert back.json()["port"]["device_id"] == "" and not back.json()["port"]["binding:host_id"]


def test_fixed_ip_is_given_and_one_not_in_the_network_fails_the_build(project: Project, image_id: str) -> None:
    net, _ = project.net("10.12.0.0/24")
    ok = boot(project.compute, image_id, networks=[{"uuid": net["id"], "fixed_ip": "10.12.0.50"}])
    server = wait_for_status(project.compute, ok.json()["server"]["id"], {"ACTIVE", "ERROR"})
    assert server["addresses"][net["name"]][0]["addr"] == "10.12.0.50"
    bad = boot(project.compute, image_id, networks=[{"uuid": net["id"], "fixed_ip": "192.168.99.5"}])
    failed = wait_for_status(project.compute, bad.json()["server"]["id"], {"ACTIVE", "ERROR"})
    assert failed["status"] == "ERROR"
    assert "Failed to allocate the network(s), not rescheduling." in failed["fault"]["message"]
    assert project.ports_of(failed["id"]) == []


def test_a_failed_build_leaves_no_port(project: Project, image_id: str) -> None:
    net, _ = project.net()
    c = project.compute
    flavor = c.post("/flavors", json={"flavor": {"name": f"fail-{uuid.uuid4().hex[:6]}", "ram": 64, "vcpus": 1,
                                                 "disk": 1}}).json()["flavor"]
    c.post(f"/flavors/{flavor['id']}/os-extra_specs",
           json={"extra_specs": {"fake:fail_on_hosts": "compute-1,compute-2,compute-3,compute-4"}})
    server = boot(project.compute, image_id, flavor=flavor["id"], networks=[{"uuid": net["id"]}]).json()["server"]
    failed = wait_for_status(project.compute, server["id"], {"ERROR", "ACTIVE"}, timeout=60)
    assert failed["status"] == "ERROR"
    assert project.ports_of(server["id"]) == []


def test_interface_attach_and_detach(project: Project, image_id: str) -> None:
    net, _ = project.net()
    other, _ = project.net("10.13.0.0/24")
    server = boot(project.compute, image_id, networks=[{"uuid": net["id"]}]).json()["server"]
    server = wait_for_status(project.compute, server["id"], {"ACTIVE", "ERROR"})
    listed = project.compute.get(f"/servers/{server['id']}/os-interface").json()["interfaceAttachments"]
    assert [i["net_id"] for i in listed] == [net["id"]] and listed[0]["port_state"] == "ACTIVE"
    body = {"interfaceAttachment": {"net_id": other["id"]}}
    attached = project.compute.post(f"/servers/{server['id']}/os-interface", json=body)
    assert attached.status_code == 200, attached.text
    new = attached.json()["interfaceAttachment"]
    assert new["net_id"] == other["id"] and new["fixed_ips"][0]["ip_address"].startswith("10.13.0.")
    shown = project.compute.get(f"/servers/{server['id']}/os-interface/{new['port_id']}")
    assert shown.json()["interfaceAttachment"]["port_id"] == new["port_id"]
    view = project.compute.get(f"/servers/{server['id']}").json()["server"]
    assert set(view["addresses"]) == {net["name"], other["name"]}
    both = {"interfaceAttachment": {"net_id": other["id"], "port_id": new["port_id"]}}
    assert _fault(project.compute.post(f"/servers/{server['id']}/os-interface", json=both), 400) == (
        "Must not input both network_id and port_id")
    gone = str(uuid.uuid4())
    assert _fault(project.compute.delete(f"/servers/{server['id']}/os-interface/{gone}"), 404) == (
        f"Port {gone} is not attached")
    assert project.compute.delete(f"/servers/{server['id']}/os-interface/{new['port_id']}").status_code == 202
    view = project.compute.get(f"/servers/{server['id']}").json()["server"]
    assert set(view["addresses"]) == {net["name"]}
    assert project.network.get(f"/ports/{new['port_id']}").status_code == 404


def test_security_group_actions(project: Project, image_id: str) -> None:
    net, _ = project.net()
    web = project.network.post("/security-groups", json={"security_group": {"name": "web"}}).json()["security_group"]
    server = boot(project.compute, image_id, networks=[{"uuid": net["id"]}]).json()["server"]
    server = wait_for_status(project.compute, server["id"], {"ACTIVE", "ERROR"})
    groups = project.compute.get(f"/servers/{server['id']}/os-security-groups").json()["security_groups"]
    assert [g["name"] for g in groups] == ["default"]
    action = f"/servers/{server['id']}/action"
    assert project.compute.post(action, json={"addSecurityGroup": {"name": "web"}}).status_code == 202
    (p,) = project.ports_of(server["id"])
    assert web["id"] in p["security_groups"]
    names = {g["name"] for g in project.compute.get(f"/servers/{server['id']}/os-security-groups")
             .json()["security_groups"]}
    assert names == {"default", "web"}
    assert project.compute.post(action, json={"removeSecurityGroup": {"name": "web"}}).status_code == 202
    assert web["id"] not in project.ports_of(server["id"])[0]["security_groups"]
    assert _fault(project.compute.post(action, json={"removeSecurityGroup": {"name": "web"}}), 400) == (
        f"Security group web not associated with the instance {server['id']}")
    assert _fault(project.compute.post(action, json={"addSecurityGroup": {"name": "nope"}}), 404) == (
        "Security group nope not found.")


def test_external_events(net_cloud: Cloud, project: Project, image_id: str) -> None:
    server = boot(project.compute, image_id, networks="none").json()["server"]
    server = wait_for_status(project.compute, server["id"], {"ACTIVE", "ERROR"})
    gone = str(uuid.uuid4())
    events = [{"name": "network-changed", "server_uuid": server["id"]},
              {"name": "network-vif-plugged", "server_uuid": gone, "tag": "x"}]
    with net_cloud.client("admin:admin") as admin:
        partial = admin.post("/os-server-external-events", json={"events": events})
        assert partial.status_code == 207, partial.text
        assert [e["code"] for e in partial.json()["events"]] == [200, 404]
        assert partial.json()["events"][0]["status"] == "completed"
        none = admin.post("/os-server-external-events", json={"events": events[1:]})
        assert none.status_code == 404
    with net_cloud.client(f"someone:{project.id}") as member:
        assert member.post("/os-server-external-events", json={"events": events}).status_code == 403


def test_vif_plugged_events_reach_each_build_in_process(net_cloud: Cloud, project: Project, image_id: str) -> None:
    """The all-in-one's Networking service hands its events to its own compute API in-process: builds booted at
    once on one network (spread over the hosts) each get their port's network-vif-plugged within the 5 s the
    cloud's builds wait for it (a dropped or misrouted event fails that build)."""
    net, _ = project.net("10.12.0.0/24")
    ids = [boot(project.compute, image_id, networks=[{"uuid": net["id"]}]).json()["server"]["id"] for _ in range(4)]
    servers = [wait_for_status(project.compute, i, {"ACTIVE", "ERROR"}) for i in ids]
    assert [s["status"] for s in servers] == ["ACTIVE"] * 4, [s.get("fault") for s in servers]
    log = net_cloud.log()
    assert "is this process's own: Nova's events go in-process" in log
    assert "Nova's events go over HTTP" not in log and "could not send" not in log
    for server in servers:
        (p,) = project.ports_of(server["id"])
        assert f"('network-vif-plugged', '{server['id']}', '{p['id']}')" in log
        project.compute.delete(f"/servers/{server['id']}")
    for server in servers:
        wait_gone(project.compute, server["id"])


def test_virtual_interfaces_are_gone(project: Project, image_id: str) -> None:
    server = boot(project.compute, image_id, networks="none").json()["server"]
    url = f"/servers/{server['id']}/os-virtual-interfaces"
    # Nova's controller raises HTTPGone at every version since Rocky (its 404 from 2.44 went with the code)
    for version in ("2.43", "2.44", "2.100"):
        old = project.compute.get(url, headers={"OpenStack-API-Version": f"compute {version}"})
        assert old.status_code == 410, (version, old.text)


def test_openstack_cli_boots_on_a_network_by_name(net_cloud: Cloud, project: Project,
                                                  tmp_path: Path) -> None:
    cli = openstack_cli(net_cloud.clouds_yaml(tmp_path / "clouds.yaml", token=project.token), tmp_path)
    cli("network", "create", "cli-net", "-f", "json")
    cli("subnet", "create", "--network", "cli-net", "--subnet-range", "10.20.0.0/24", "cli-sub", "-f", "json")
    cli("network", "create", "cli-net2", "-f", "json")
    cli("subnet", "create", "--network", "cli-net2", "--subnet-range", "10.21.0.0/24", "cli-sub2", "-f", "json")
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"\0" * 65536)
    cli("image", "create", "--file", str(disk), "--disk-format", "raw", "--container-format", "bare",
        "cli-net-image", "-f", "json")
    server = cli("server", "create", "--image", "cli-net-image", "--flavor", "m1.tiny", "--network", "cli-net",
                 "--wait", "cli-net-vm", "-f", "json")
    assert server["status"] == "ACTIVE"
    assert list(server["addresses"]) == ["cli-net"]
    assert server["addresses"]["cli-net"][0].startswith("10.20.0.")
    cli("server", "add", "network", "cli-net-vm", "cli-net2")
    shown = cli("server", "show", "cli-net-vm", "-f", "json")
    assert set(shown["addresses"]) == {"cli-net", "cli-net2"}
    cli("server", "remove", "network", "cli-net-vm", "cli-net2")
    assert set(cli("server", "show", "cli-net-vm", "-f", "json")["addresses"]) == {"cli-net"}
    cli("security", "group", "create", "cli-web", "-f", "json")
    cli("server", "add", "security", "group", "cli-net-vm", "cli-web")
    groups = {g["name"] for g in cli("server", "show", "cli-net-vm", "-f", "json")["security_groups"]}
    assert groups == {"default", "cli-web"}
    cli("server", "delete", "--wait", "cli-net-vm")
    assert cli("port", "list", "--network", "cli-net", "--device-owner", "compute:nova", "-f", "json") == []


def _addresses_until(project: Project, server_id: str, label: str, count: int) -> list[dict[str, Any]]:
    """The server's addresses on ``label`` once there are ``count`` of them (or as they are after 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        shown = project.compute.get(f"/servers/{server_id}").json()["server"]["addresses"][label]
        if len(shown) == count or time.monotonic() > deadline:
            return list(shown)
        time.sleep(0.1)


def test_a_floating_ip_shows_in_the_addresses_after_network_changed(net_cloud: Cloud, project: Project,
                                                                    image_id: str) -> None:
    """The Networking service sends network-changed for the port a floating IP reaches or leaves, as Neutron's
    nova notifier does; the compute refreshes the instance's info cache from it, so the server's addresses show
    the floating IP at once, and not once it is gone (nothing else refreshes the cache: no test event here)."""
    net, sub = project.net("10.30.0.0/24")
    with net_cloud.network_client("admin:admin") as admin:
        public = network(admin, **{"router:external": True})
        subnet(admin, public["id"], "172.30.0.0/24")
    router = project.network.post("/routers", json={"router": {
        "name": "r", "external_gateway_info": {"network_id": public["id"]}}}).json()["router"]
    added = project.network.put(f"/routers/{router['id']}/add_router_interface", json={"subnet_id": sub["id"]})
    assert added.status_code == 200, added.text
    server = boot(project.compute, image_id, networks=[{"uuid": net["id"]}]).json()["server"]
    server = wait_for_status(project.compute, server["id"], {"ACTIVE", "ERROR"})
    (p,) = project.ports_of(server["id"])
    fip = project.network.post("/floatingips", json={"floatingip": {
        "floating_network_id": public["id"], "port_id": p["id"]}})
    assert fip.status_code == 201, fip.text
    address = fip.json()["floatingip"]["floating_ip_address"]
    shown = _addresses_until(project, server["id"], net["name"], 2)
    assert [a["OS-EXT-IPS:type"] for a in shown] == ["fixed", "floating"] and shown[1]["addr"] == address
    assert shown[1]["OS-EXT-IPS-MAC:mac_addr"] == p["mac_address"]
    ips = project.compute.get(f"/servers/{server['id']}/ips/{net['name']}").json()[net["name"]]
    assert [a["addr"] for a in ips] == [p["fixed_ips"][0]["ip_address"], address]
    # disassociated: gone from the addresses; associated again by update, then the floating IP deleted
    off = project.network.put(f"/floatingips/{fip.json()['floatingip']['id']}",
                              json={"floatingip": {"port_id": None}})
    assert off.status_code == 200, off.text
    assert [a["OS-EXT-IPS:type"] for a in _addresses_until(project, server["id"], net["name"], 1)] == ["fixed"]
    on = project.network.put(f"/floatingips/{fip.json()['floatingip']['id']}",
                             json={"floatingip": {"port_id": p["id"]}})
    assert on.status_code == 200, on.text
    assert _addresses_until(project, server["id"], net["name"], 2)[1]["addr"] == address
    assert project.network.delete(f"/floatingips/{fip.json()['floatingip']['id']}").status_code == 204
    assert [a["addr"] for a in _addresses_until(project, server["id"], net["name"], 1)] == [
        p["fixed_ips"][0]["ip_address"]]


def test_metadata_network_data_and_ec2_addresses_come_from_the_info_cache(net_cloud: Cloud, project: Project,
                                                                         image_id: str) -> None:
    net, sub = project.net("10.40.0.0/24")
    server = boot(project.compute, image_id, networks=[{"uuid": net["id"], "fixed_ip": "10.40.0.9"}]).json()
    server = wait_for_status(project.compute, server["server"]["id"], {"ACTIVE", "ERROR"})
    (p,) = project.ports_of(server["id"])
    signature = hmac.new(SECRET.encode(), server["id"].encode(), hashlib.sha256).hexdigest()
    headers = {"X-Instance-ID": server["id"], "X-Tenant-ID": project.id, "X-Instance-ID-Signature": signature,
               "X-Forwarded-For": "10.40.0.9"}
    doc = httpx.get(net_cloud.metadata_url + "/openstack/latest/network_data.json", headers=headers, timeout=10)
    assert doc.status_code == 200, doc.text
    body = doc.json()
    assert [link["vif_id"] for link in body["links"]] == [p["id"]]
    assert body["links"][0]["ethernet_mac_address"] == p["mac_address"] and body["links"][0]["type"] == "bridge"
    assert body["networks"][0]["network_id"] == net["id"] and body["networks"][0]["type"] == "ipv4_dhcp"
    ec2 = httpx.get(net_cloud.metadata_url + "/latest/meta-data/local-ipv4", headers=headers, timeout=10)
    assert ec2.text == "10.40.0.9"
    assert sub["gateway_ip"] == "10.40.0.1"


def test_networks_auto_gets_the_projects_auto_allocated_network(net_cloud: Cloud, project: Project,
                                                                image_id: str) -> None:
    assert _fault(boot(project.compute, image_id, networks="auto"), 400) == (
        f"Unable to automatically allocate a network for project {project.id}")
    with net_cloud.network_client("admin:admin") as admin:
        public = network(admin, **{"router:external": True, "is_default": True})
        subnet(admin, public["id"], "172.31.0.0/24")
    resp = boot(project.compute, image_id, networks="auto")
    assert resp.status_code == 202, resp.text
    server = wait_for_status(project.compute, resp.json()["server"]["id"], {"ACTIVE", "ERROR"})
    assert server["status"] == "ACTIVE", server
    topology = project.network.get(f"/auto-allocated-topology/{project.id}").json()["auto_allocated_topology"]
    (p,) = project.ports_of(server["id"])
    assert p["network_id"] == topology["id"] and len(server["addresses"]) == 1


def test_the_port_quota_limits_how_many_servers_boot(net_cloud: Cloud, project: Project, image_id: str) -> None:
    net, _ = project.net("10.50.0.0/24")
    with net_cloud.network_client("admin:admin") as admin:
        assert admin.put(f"/quotas/{project.id}", json={"quota": {"port": 1}}).status_code == 200
    assert _fault(boot(project.compute, image_id, networks=[{"uuid": net["id"]}], min_count=2), 403) == (
        "Maximum number of ports exceeded")
    resp = boot(project.compute, image_id, networks=[{"uuid": net["id"]}], min_count=1, max_count=3)
    assert resp.status_code == 202, resp.text
    listed = project.compute.get("/servers").json()["servers"]
    assert len(listed) == 1  # as many as the free ports allow
    wait_for_status(project.compute, listed[0]["id"], {"ACTIVE"})
    assert _fault(boot(project.compute, image_id, networks=[{"uuid": net["id"]}]), 403) == (
        "Maximum number of ports exceeded")


def test_the_proxies_up_to_235(net_cloud: Cloud) -> None:
    p = Project(net_cloud, version="2.35")
    try:
        net, _ = p.net("10.60.0.0/24", name="proxied")
        listed = p.compute.get("/os-networks").json()["networks"]
        assert {"id": net["id"], "label": "proxied"}.items() <= next(n for n in listed if n["id"] == net["id"]).items()
        assert p.compute.get(f"/os-networks/{net['id']}").json()["network"]["label"] == "proxied"
        assert _fault(p.compute.get(f"/os-networks/{uuid.uuid4()}"), 404) == "Network not found"
        created = p.compute.post("/os-security-groups", json={"security_group": {"name": "px", "description": "d"}})
        assert created.status_code == 200, created.text
        group = created.json()["security_group"]
        assert group["name"] == "px" and group["tenant_id"] == p.id and group["rules"] == []
        rule = p.compute.post("/os-security-group-rules", json={"security_group_rule": {
            "parent_group_id": group["id"], "ip_protocol": "tcp", "from_port": 22, "to_port": 22,
            "cidr": "10.0.0.0/8"}})
        assert rule.status_code == 200, rule.text
        assert rule.json()["security_group_rule"]["ip_range"] == {"cidr": "10.0.0.0/8"}
        shown = p.compute.get(f"/os-security-groups/{group['id']}").json()["security_group"]
        assert [(r["ip_protocol"], r["from_port"], r["to_port"]) for r in shown["rules"]] == [("tcp", 22, 22)]
        names = {g["name"] for g in p.compute.get("/os-security-groups").json()["security_groups"]}
        assert names == {"default", "px"}
        rule_id = rule.json()["security_group_rule"]["id"]
        assert p.compute.delete(f"/os-security-group-rules/{rule_id}").status_code == 202
        assert p.compute.delete(f"/os-security-groups/{group['id']}").status_code == 202
        assert p.compute.get(f"/os-security-groups/{group['id']}").status_code == 404
        with net_cloud.network_client("admin:admin") as admin:
            pool = network(admin, name=f"pool-{uuid.uuid4().hex[:6]}", **{"router:external": True})
            subnet(admin, pool["id"], "172.29.0.0/24")
        assert {"name": pool["name"]} in p.compute.get("/os-floating-ip-pools").json()["floating_ip_pools"]
        fip = p.compute.post("/os-floating-ips", json={"pool": pool["name"]})
        assert fip.status_code == 200, fip.text
        body = fip.json()["floating_ip"]
        assert body["pool"] == pool["name"] and body["ip"].startswith("172.29.0.") and body["instance_id"] is None
        assert [f["id"] for f in p.compute.get("/os-floating-ips").json()["floating_ips"]] == [body["id"]]
        assert p.compute.delete(f"/os-floating-ips/{body['id']}").status_code == 202
        tenant_nets = p.compute.get("/os-tenant-networks").json()["networks"]
        assert {"id": net["id"], "label": "proxied", "cidr": "None"} in tenant_nets  # Nova's str(None)
        assert p.compute.get(f"/os-tenant-networks/{net['id']}").json() == {
            "network": {"id": net["id"], "label": "proxied", "cidr": "None"}}
        assert _fault(p.compute.get(f"/os-tenant-networks/{uuid.uuid4()}"), 404) == "Network not found"
        later = {"OpenStack-API-Version": "compute 2.36"}
        for path in ("/os-networks", "/os-security-groups", "/os-floating-ip-pools", "/os-floating-ips",
                     "/os-tenant-networks", f"/os-tenant-networks/{net['id']}"):
            assert p.compute.get(path, headers=later).status_code == 404, path
    finally:
        p.close()


def test_only_admins_boot_on_an_external_network(net_cloud: Cloud, project: Project, image_id: str) -> None:
    with net_cloud.network_client("admin:admin") as admin:
        public = network(admin, **{"router:external": True})
        subnet(admin, public["id"], "172.28.0.0/24")
    with net_cloud.client(f"member:{project.id}", version="2.37") as member:
        assert _fault(boot(member, image_id, networks=[{"uuid": public["id"]}]), 403) == (
            f"It is not allowed to create an interface on external network {public['id']}")
    allowed = boot(project.compute, image_id, networks=[{"uuid": public["id"]}])  # the project's admin
    assert allowed.status_code == 202, allowed.text


HOST = "OS-EXT-SRV-ATTR:host"


def _act(project: Project, server_id: str, body: dict[str, Any]) -> httpx.Response:
    return project.compute.post(f"/servers/{server_id}/action", json=body)


def _bound_to(project: Project, server_id: str) -> list[str]:
    return [p["binding:host_id"] for p in project.ports_of(server_id)]


def test_a_moved_server_has_its_ports_bound_where_it_runs(project: Project, image_id: str) -> None:
    """Cold migration, its revert, live migration and evacuation leave every port bound to the host the server
    runs on (Nova's migrate_instance_finish / setup_instance_network_on_host), with the same address."""
    net, _sub = project.net("10.61.0.0/24")
    server = boot(project.compute, image_id, networks=[{"uuid": net["id"]}]).json()["server"]
    sid = server["id"]
    first = wait_for_status(project.compute, sid, {"ACTIVE"})
    address = first["addresses"][net["name"]][0]["addr"]
    assert _bound_to(project, sid) == [first[HOST]]

    assert _act(project, sid, {"migrate": None}).status_code == 202
    moved = wait_for_status(project.compute, sid, {"VERIFY_RESIZE"}, timeout=60)
    assert moved[HOST] != first[HOST] and _bound_to(project, sid) == [moved[HOST]]
    assert _act(project, sid, {"revertResize": None}).status_code == 202
    back = wait_for_status(project.compute, sid, {"ACTIVE"}, timeout=60)
    assert back[HOST] == first[HOST] and _bound_to(project, sid) == [first[HOST]]

    assert _act(project, sid, {"os-migrateLive": {"host": None, "block_migration": "auto"}}).status_code == 202
    deadline = time.monotonic() + 60
    while True:
        live = project.compute.get(f"/servers/{sid}").json()["server"]
        if live["status"] == "ACTIVE" and live[HOST] != first[HOST]:
            break
        assert time.monotonic() < deadline, live
        time.sleep(0.2)
    deadline = time.monotonic() + 30
    while _bound_to(project, sid) != [live[HOST]]:
        assert time.monotonic() < deadline, (_bound_to(project, sid), live[HOST])
        time.sleep(0.2)
    assert live["addresses"][net["name"]][0]["addr"] == address


def _routed_network(cloud: Cloud, project: Project, cidr: str, public_cidr: str
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A network of the project routed to a new external network (floating IPs come from it): both networks."""
    net, sub = project.net(cidr)
    with cloud.network_client("admin:admin") as admin:
        public = network(admin, **{"router:external": True})
        subnet(admin, public["id"], public_cidr)
    router = project.network.post("/routers", json={"router": {
        "name": "r", "external_gateway_info": {"network_id": public["id"]}}}).json()["router"]
    assert project.network.put(f"/routers/{router['id']}/add_router_interface",
                               json={"subnet_id": sub["id"]}).status_code == 200
    return net, public


def test_add_and_remove_floating_ip_actions_up_to_243(net_cloud: Cloud, image_id: str) -> None:
    p = Project(net_cloud, version="2.43")
    try:
        net, public = _routed_network(net_cloud, p, "10.70.0.0/24", "172.28.0.0/24")
        first, second = (wait_for_status(p.compute, boot(p.compute, image_id, networks=[{"uuid": net["id"]}]).json()[
            "server"]["id"], {"ACTIVE"}) for _ in range(2))
        fips = [p.network.post("/floatingips", json={"floatingip": {"floating_network_id": public["id"]}}).json()[
            "floatingip"] for _ in range(2)]
        address = fips[0]["floating_ip_address"]

        def act(server: dict[str, Any], name: str, value: dict[str, Any], **headers: str) -> httpx.Response:
            return p.compute.post(f"/servers/{server['id']}/action", json={name: value}, headers=headers)

        def floating(server: dict[str, Any]) -> list[str]:
            shown = p.compute.get(f"/servers/{server['id']}").json()["server"]["addresses"][net["name"]]
            return [a["addr"] for a in shown if a["OS-EXT-IPS:type"] == "floating"]

        assert act(first, "addFloatingIp", {"address": address}).status_code == 202
        assert floating(first) == [address]  # the info cache is refreshed by the action itself
        shown = p.compute.get(f"/os-floating-ips/{fips[0]['id']}", headers={"OpenStack-API-Version": "compute 2.35"})
        assert shown.json()["floating_ip"]["instance_id"] == first["id"]
        # a second floating IP of the same network on the same port: the Networking service refuses, Nova's 400
        assert _fault(act(first, "addFloatingIp", {"address": fips[1]["floating_ip_address"]}), 400)
        # an associated one moves to the other server
        assert act(second, "addFloatingIp", {"address": address}).status_code == 202
        assert floating(second) == [address] and floating(first) == []
        assert _fault(act(first, "removeFloatingIp", {"address": address}), 409) == (
            f"Floating IP {address} is not associated with instance {first['id']}.")
        assert act(second, "removeFloatingIp", {"address": address}).status_code == 202
        assert floating(second) == []
        assert _fault(act(first, "addFloatingIp", {"address": "0.0.0.0"}), 404) == "floating IP not found"
        assert _fault(act(first, "removeFloatingIp", {"address": "0.0.0.0"}), 404) == "floating IP not found"
        assert _fault(act(first, "addFloatingIp", {"address": address, "fixed_address": "10.70.0.250"}), 400) == (
            "Specified fixed address not assigned to instance")
        for bad in ({"address": ""}, {}, {"address": address, "x": 1}):
            _fault(act(first, "addFloatingIp", bad), 400)
        assert act(first, "addFloatingIp", {"address": address},
                   **{"OpenStack-API-Version": "compute 2.44"}).status_code == 404
        assert floating(first) == []  # nothing refused changed anything
    finally:
        p.close()


def _strip_floating(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: [] if k == "floating_ips" else _strip_floating(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_floating(v) for v in value]
    return value


def _forget_floating_ips(cloud: Cloud, server_id: str) -> None:
    """The server's info cache without its floating IPs, written into the cloud's database directly."""
    with contextlib.closing(sqlite3.connect(Path(cloud.state_path) / "stratus.sqlite", timeout=30)) as db, db:
        (stored,) = db.execute("select network_info from instance_info_caches where instance_uuid = ?",
                               (server_id,)).fetchone()
        db.execute("update instance_info_caches set network_info = ? where instance_uuid = ?",
                   (json.dumps(_strip_floating(json.loads(stored))), server_id))


def test_inject_network_info_refreshes_the_info_cache_and_ip_filters(net_cloud: Cloud, project: Project,
                                                                     image_id: str) -> None:
    """A floating IP put on the port in the Networking service directly shows in ``addresses`` once
    ``injectNetworkInfo`` (admin) had the host read the port again; ``ip`` filters the list on fixed IPs."""
    net, public = _routed_network(net_cloud, project, "10.80.0.0/24", "172.27.0.0/24")
    servers = [wait_for_status(project.compute, boot(project.compute, image_id, networks=[
        {"uuid": net["id"], "fixed_ip": address}]).json()["server"]["id"], {"ACTIVE"})
        for address in ("10.80.0.5", "10.80.0.50")]
    (p,) = project.ports_of(servers[0]["id"])
    fip = project.network.post("/floatingips", json={"floatingip": {
        "floating_network_id": public["id"], "port_id": p["id"]}}).json()["floatingip"]

    def kinds() -> list[str]:
        shown = project.compute.get(f"/servers/{servers[0]['id']}").json()["server"]["addresses"][net["name"]]
        return [a["OS-EXT-IPS:type"] for a in shown]

    # the Networking service tells Nova of the floating IP (network-changed) and the host refreshes the cache;
    # then the cache is made stale as on a host that missed that event, which only injectNetworkInfo mends
    deadline = time.monotonic() + 10
    while kinds() != ["fixed", "floating"]:
        assert time.monotonic() < deadline, "network-changed of the floating IP"
        time.sleep(0.1)
    _forget_floating_ips(net_cloud, servers[0]["id"])
    assert kinds() == ["fixed"]
    with net_cloud.client(f"member:{project.id}") as member:
        assert _fault(member.post(f"/servers/{servers[0]['id']}/action", json={"injectNetworkInfo": None}),
                      403) == "Policy doesn't allow os_compute_api:os-admin-actions:inject_network_info to be " \
                              "performed."
    resp = project.compute.post(f"/servers/{servers[0]['id']}/action", json={"injectNetworkInfo": None})
    assert resp.status_code == 202 and resp.content == b""
    deadline = time.monotonic() + 10
    while kinds() != ["fixed", "floating"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kinds() == ["fixed", "floating"], fip

    def listed(**query: str) -> list[str]:
        found = project.compute.get("/servers", params=query).json()["servers"]
        return sorted(s["id"] for s in found)

    first, second = servers[0]["id"], servers[1]["id"]
    assert listed(ip="10.80.0.5") == sorted([first, second])  # a pattern matched at the start, as Nova's
    assert listed(ip="10.80.0.50") == [second] and listed(ip=r"10\.80\.0\.5$") == [first]
    assert listed(ip=fip["floating_ip_address"]) == []  # fixed IPs only
    assert listed(ip6="10.80") == [] and listed(ip="10.99") == []
    detail = project.compute.get("/servers/detail", params={"ip": "10.80.0.50"}).json()["servers"]
    assert [s["id"] for s in detail] == [second]  # the detail page filters the same way
