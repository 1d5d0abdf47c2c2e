"""Server, instance action, hypervisor, flavor and key pair changes of microversions 2.65-2.100, each at the version
before and at its own, through HTTP against the all-in-one, with tempest's schemas as the contract."""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from tempest.lib.api_schema.response.compute.v2_71 import servers as schema_271
from tempest.lib.api_schema.response.compute.v2_73 import servers as schema_273
from tempest.lib.api_schema.response.compute.v2_75 import servers as schema_275
from tempest.lib.api_schema.response.compute.v2_84 import servers as schema_284
from tempest.lib.api_schema.response.compute.v2_100 import servers as schema_2100

from tests.conftest import Cloud
from tests.functional.helpers import boot, fault, upload_image, wait_for_status, wait_gone
from tests.functional.helpers import check_schema as check

_SSH_KEY = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


@pytest.fixture(scope="module")
def image(cloud: Cloud) -> dict[str, Any]:
    with cloud.image_client() as img:
        return upload_image(img, hw_disk_bus="virtio", os_distro="cirros", color="blue")


def _project() -> str:
    return f"proj-mv2-{uuid.uuid4().hex[:8]}"


def _active(c: httpx.Client, resp: httpx.Response) -> str:
    assert resp.status_code == 202, resp.text
    server_id = str(resp.json()["server"]["id"])
    wait_for_status(c, server_id, {"ACTIVE"})
    return server_id


def _delete_all(c: httpx.Client) -> None:
    ids = [s["id"] for s in c.get("/servers").json()["servers"]]
    for server_id in ids:
        assert c.delete(f"/servers/{server_id}").status_code == 204
    for server_id in ids:
        wait_gone(c, server_id)


def test_changes_before_2_66(cloud: Cloud, image: dict[str, Any]) -> None:
    project = _project()
    with cloud.client(token=f"cb:{project}", version="2.66") as c:
        first = _active(c, boot(c, image["id"], networks="none"))
        updated = c.get(f"/servers/{first}").json()["server"]["updated"]  # whole seconds
        cut = (datetime.datetime.fromisoformat(updated.replace("Z", "+00:00")) + datetime.timedelta(seconds=1)
               ).strftime("%Y-%m-%dT%H:%M:%SZ")
        time.sleep(2.2)
        second = _active(c, boot(c, image["id"], networks="none"))
        listed = c.get("/servers", params={"changes-before": cut}).json()["servers"]
        assert [s["id"] for s in listed] == [first]
        assert second in [s["id"] for s in c.get("/servers", params={"changes-since": cut}).json()["servers"]]
        assert fault(c.get("/servers", params={"changes-since": "2030-01-01T00:00:00Z",
                                               "changes-before": "2020-01-01T00:00:00Z"}), 400, "badRequest") == (
            "The value of changes-since must be less than or equal to changes-before.")
        assert "is not a 'date-time'" in fault(c.get("/servers", params={"changes-before": "yesterday"}), 400,
                                               "badRequest")
        actions = c.get(f"/servers/{first}/os-instance-actions", params={"changes-before": "2000-01-01T00:00:00Z"})
        assert actions.status_code == 200 and actions.json()["instanceActions"] == []
        assert len(c.get(f"/servers/{first}/os-instance-actions",
                         params={"changes-before": "2999-01-01T00:00:00Z"}).json()["instanceActions"]) == 1
    with cloud.client(token=f"cb:{project}", version="2.65") as old:
        # before 2.66 the servers list ignores it, and the instance actions list refuses it
        assert len(old.get("/servers", params={"changes-before": cut}).json()["servers"]) == 2
        assert "'changes-before' was unexpected" in fault(
            old.get(f"/servers/{first}/os-instance-actions", params={"changes-before": cut}), 400, "badRequest")
        _delete_all(old)


def test_volume_type_2_67(cloud: Cloud, image: dict[str, Any]) -> None:
    bdm = [{"source_type": "image", "uuid": image["id"], "boot_index": 0, "destination_type": "local",
            "volume_type": "fast"}]
    with cloud.client(token=f"vt:{_project()}", version="2.66") as old:
        assert "'volume_type' was unexpected" in fault(
            boot(old, "", networks="none", block_device_mapping_v2=bdm), 400, "badRequest")
    with cloud.client(token=f"vt:{_project()}", version="2.67") as c:
        assert "volume_type needs a block storage service" in fault(
            boot(c, "", networks="none", block_device_mapping_v2=bdm), 400, "badRequest")
        assert c.get("/servers").json()["servers"] == []


def test_server_bodies_2_71_to_2_100(cloud: Cloud, image: dict[str, Any]) -> None:
    """server_groups (2.71, show and update only), locked_reason (2.73), pinned_availability_zone (2.96), the
    image's standard properties (2.98) and scheduler_hints (2.100), each against tempest's schema."""
    project = _project()
    with cloud.client(token=f"sb:{project}", version="2.100") as c:
        group = c.post("/os-server-groups", json={"server_group": {"name": "g", "policy": "soft-affinity"}})
        group_id = group.json()["server_group"]["id"]
        resp = c.post("/servers", json={"server": {"name": "sb", "imageRef": image["id"], "flavorRef": "1",
                                                   "networks": "none", "availability_zone": "nova"},
                                        "os:scheduler_hints": {"group": group_id, "same_host": []}})
        server_id = _active(c, resp)
        shown = check(schema_2100.get_server, c.get(f"/servers/{server_id}"))["server"]
        assert shown["server_groups"] == [group_id]
        assert shown["locked_reason"] is None
        assert shown["pinned_availability_zone"] == "nova"
        assert shown["scheduler_hints"] == {"group": group_id, "same_host": []}
        assert shown["image"]["properties"] == {"hw_disk_bus": "virtio", "os_distro": "cirros"}
        detail = check(schema_2100.list_servers_detail, c.get("/servers/detail"))["servers"]
        assert "server_groups" not in detail[0]  # Nova leaves them out of the list
        assert detail[0]["scheduler_hints"] == {"group": group_id, "same_host": []}
        assert detail[0]["pinned_availability_zone"] == "nova"
        updated = check(schema_2100.update_server, c.put(f"/servers/{server_id}", json={"server": {"name": "n"}}))
        assert updated["server"]["server_groups"] == [group_id]
        unpinned = _active(c, boot(c, image["id"], networks="none"))
        other = check(schema_2100.get_server, c.get(f"/servers/{unpinned}"))["server"]
        assert other["pinned_availability_zone"] is None and other["scheduler_hints"] == {}
        assert other["server_groups"] == []
    with cloud.client(token=f"sb:{project}", version="2.70") as old:
        body = old.get(f"/servers/{server_id}").json()["server"]
        assert not {"server_groups", "locked_reason", "pinned_availability_zone", "scheduler_hints"} & set(body)
        assert "properties" not in body["image"]
    with cloud.client(token=f"sb:{project}", version="2.71") as c71:
        check(schema_271.get_server, c71.get(f"/servers/{server_id}"))
        _delete_all(c71)


def test_lock_reason_2_73(cloud: Cloud, image: dict[str, Any]) -> None:
    project = _project()
    with cloud.client(token=f"lr:{project}", version="2.73") as c:
        locked = _active(c, boot(c, image["id"], networks="none"))
        free = _active(c, boot(c, image["id"], networks="none"))
        for bad in ({"locked_reason": ""}, {"locked_reason": "x" * 256}, {"reason": "no"}, "why"):
            fault(c.post(f"/servers/{locked}/action", json={"lock": bad}), 400, "badRequest")
        assert c.post(f"/servers/{locked}/action", json={"lock": {"locked_reason": "maintenance"}}).status_code == 202
        shown = check(schema_273.get_server, c.get(f"/servers/{locked}"))["server"]
        assert shown["locked"] is True and shown["locked_reason"] == "maintenance"
        detail = {s["id"]: s for s in check(schema_273.list_servers_detail, c.get("/servers/detail"))["servers"]}
        assert detail[locked]["locked_reason"] == "maintenance" and detail[free]["locked_reason"] is None
        assert [s["id"] for s in c.get("/servers", params={"locked": "true"}).json()["servers"]] == [locked]
        assert [s["id"] for s in c.get("/servers", params={"locked": "false"}).json()["servers"]] == [free]
        fault(c.get("/servers", params={"locked": "maybe"}), 400, "badRequest")
        assert c.post(f"/servers/{locked}/action", json={"unlock": None}).status_code == 202
        assert c.get(f"/servers/{locked}").json()["server"]["locked_reason"] is None
        assert c.post(f"/servers/{free}/action", json={"lock": None}).status_code == 202  # no reason: null
        assert c.get(f"/servers/{free}").json()["server"]["locked_reason"] is None
        assert c.post(f"/servers/{free}/action", json={"unlock": None}).status_code == 202
    with cloud.client(token=f"lr:{project}", version="2.72") as old:
        # before 2.73 the lock body is anything, and the non-admin's locked filter is ignored
        assert old.post(f"/servers/{locked}/action", json={"lock": {"locked_reason": "x"}}).status_code == 202
        assert len(old.get("/servers", params={"locked": "false"}).json()["servers"]) == 2
        assert old.post(f"/servers/{locked}/action", json={"unlock": None}).status_code == 202
        _delete_all(old)


def _nodes(cloud: Cloud) -> dict[str, str]:
    with cloud.client(version="2.53") as admin:
        detail = admin.get("/os-hypervisors/detail").json()["hypervisors"]
    return {h["service"]["host"]: h["hypervisor_hostname"] for h in detail}


def test_requested_destination_2_74(cloud: Cloud, image: dict[str, Any]) -> None:
    nodes = _nodes(cloud)
    host = sorted(nodes)[-1]
    project = _project()
    with cloud.client(token=f"rd:{project}", version="2.74") as user:
        assert fault(boot(user, image["id"], networks="none", host=host), 403, "forbidden")
    with cloud.client(token="admin:admin", version="2.73") as old:
        assert "'host' was unexpected" in fault(boot(old, image["id"], networks="none", host=host), 400,
                                                "badRequest")
    with cloud.client(token="admin:admin", version="2.74") as admin:
        for bad in ({"host": "no-such-host"}, {"hypervisor_hostname": "no-such-node"},
                    {"host": host, "hypervisor_hostname": nodes[sorted(nodes)[0]]}):
            assert "could not be found" in fault(boot(admin, image["id"], networks="none", **bad), 400,
                                                 "badRequest")
        assert "mutually exclusive" in fault(
            boot(admin, image["id"], networks="none", host=host, availability_zone=f"nova:{host}"), 400, "badRequest")
        ids = [_active(admin, boot(admin, image["id"], networks="none", host=host)),
               _active(admin, boot(admin, image["id"], networks="none", hypervisor_hostname=nodes[host]))]
        for server_id in ids:
            assert admin.get(f"/servers/{server_id}").json()["server"]["OS-EXT-SRV-ATTR:host"] == host
            assert admin.delete(f"/servers/{server_id}").status_code == 204
        for server_id in ids:
            wait_gone(admin, server_id)


def test_strict_query_and_full_update_2_75(cloud: Cloud, image: dict[str, Any]) -> None:
    project = _project()
    with cloud.client(token=f"sq:{project}", version="2.74") as old:
        server_id = _active(old, boot(old, image["id"], networks="none",
                                      accessIPv6="0000:0000:0000:0000:0000:babe:220.12.22.2"))
        assert old.get(f"/servers/{server_id}").json()["server"]["accessIPv6"] == "::babe:dc0c:1602"
        assert old.get("/servers", params={"bogus": "1"}).status_code == 200
        assert "Invalid filter field: metadata." == fault(old.get("/servers", params={"metadata": "x"}), 400,
                                                          "badRequest")
        updated = old.put(f"/servers/{server_id}", json={"server": {"name": "u1"}}).json()["server"]
        assert "OS-EXT-STS:vm_state" not in updated
        assert old.get("/flavors/1").json()["flavor"]["swap"] == ""
    with cloud.client(token=f"sq:{project}", version="2.75") as c:
        assert "'bogus' was unexpected" in fault(c.get("/servers/detail", params={"bogus": "1"}), 400,
                                                 "badRequest")
        assert c.get("/servers", params={"limit": "1", "status": "ACTIVE"}).status_code == 200
        updated = check(schema_275.update_server, c.put(f"/servers/{server_id}", json={"server": {
            "name": "u2", "accessIPv6": "::ffff:0102:0304"}}))
        assert updated["server"]["accessIPv6"] == "::ffff:1.2.3.4"
        assert updated["server"]["OS-EXT-STS:vm_state"] == "active" and updated["server"]["name"] == "u2"
        assert c.get("/flavors/1").json()["flavor"]["swap"] == 0
        assert c.get("/flavors/detail").json()["flavors"][0]["swap"] == 0
        _delete_all(c)


def test_topology_2_78(cloud: Cloud, image: dict[str, Any]) -> None:
    project = _project()
    with cloud.client(token=f"tp:{project}", version="2.78") as c:
        server_id = _active(c, boot(c, image["id"], networks="none"))
        assert c.get(f"/servers/{server_id}/topology").json() == {"nodes": [], "pagesize_kb": None}
        fault(c.get(f"/servers/{uuid.uuid4()}/topology"), 404, "itemNotFound")
    with cloud.client(token=f"other:{_project()}", version="2.78") as stranger:
        fault(stranger.get(f"/servers/{server_id}/topology"), 404, "itemNotFound")
    with cloud.client(token=f"tp:{project}", version="2.77") as old:
        fault(old.get(f"/servers/{server_id}/topology"), 404, "itemNotFound")
        _delete_all(old)


def test_non_admin_filters_2_83(cloud: Cloud, image: dict[str, Any]) -> None:
    project = _project()
    with cloud.client(token=f"nf:{project}", version="2.83") as c:
        assert c.post("/os-keypairs", json={"keypair": {"name": "k1", "public_key": _SSH_KEY}}).status_code == 201
        keyed = _active(c, boot(c, image["id"], networks="none", key_name="k1"))
        plain = _active(c, boot(c, image["id"], networks="none"))
        assert c.post(f"/servers/{plain}/action", json={"os-stop": None}).status_code == 202
        wait_for_status(c, plain, {"SHUTOFF"})
        assert [s["id"] for s in c.get("/servers", params={"key_name": "k1"}).json()["servers"]] == [keyed]
        assert [s["id"] for s in c.get("/servers", params={"vm_state": "stopped"}).json()["servers"]] == [plain]
        assert [s["id"] for s in c.get("/servers", params={"power_state": "1"}).json()["servers"]] == [keyed]
        assert fault(c.get("/servers", params={"vm_state": "deleted"}), 403, "forbidden") == (
            "Only administrators may list deleted instances")
    with cloud.client(token=f"nf:{project}", version="2.82") as old:
        assert len(old.get("/servers", params={"key_name": "k1"}).json()["servers"]) == 2  # ignored
        assert len(old.get("/servers", params={"vm_state": "stopped"}).json()["servers"]) == 2
        _delete_all(old)


def test_event_details_2_84(cloud: Cloud, image: dict[str, Any]) -> None:
    project = _project()
    with cloud.client(token=f"ed:{project}", version="2.84") as c:
        server_id = _active(c, boot(c, image["id"], networks="none"))
        request_id = c.get(f"/servers/{server_id}/os-instance-actions").json()["instanceActions"][0]["request_id"]
        mine = c.get(f"/servers/{server_id}/os-instance-actions/{request_id}").json()["instanceAction"]
        assert mine["events"] and all("details" not in e for e in mine["events"])  # an admin's field
    with cloud.client(version="2.84") as admin:
        shown = check(schema_284.show_instance_action,
                      admin.get(f"/servers/{server_id}/os-instance-actions/{request_id}"))["instanceAction"]
        assert shown["events"] and all("details" in e for e in shown["events"])
    with cloud.client(version="2.83") as old:
        events = old.get(f"/servers/{server_id}/os-instance-actions/{request_id}").json()["instanceAction"]["events"]
        assert all("details" not in e for e in events)
    with cloud.client(token=f"ed:{project}") as c:
        _delete_all(c)


def test_hypervisors_2_88(cloud: Cloud) -> None:
    with cloud.client(version="2.87") as old:
        detail = old.get("/os-hypervisors/detail").json()["hypervisors"]
        assert "vcpus" in detail[0] and "uptime" not in detail[0]
        assert old.get("/os-hypervisors/statistics").status_code == 200
        assert old.get(f"/os-hypervisors/{detail[0]['id']}/uptime").status_code == 200
    with cloud.client(version="2.88") as c:
        detail = c.get("/os-hypervisors/detail").json()["hypervisors"]
        assert all("vcpus" not in h and "cpu_info" not in h and "running_vms" not in h for h in detail)
        assert all(isinstance(h["uptime"], str) and h["uptime"] for h in detail)
        shown = c.get(f"/os-hypervisors/{detail[0]['id']}").json()["hypervisor"]
        assert "uptime" in shown and "free_ram_mb" not in shown
        fault(c.get("/os-hypervisors/statistics"), 404, "itemNotFound")
        fault(c.get(f"/os-hypervisors/{detail[0]['id']}/uptime"), 404, "itemNotFound")


def test_hypervisor_servers_always_2_75(cloud: Cloud) -> None:
    with cloud.client(version="2.74") as old:
        listed = old.get("/os-hypervisors", params={"with_servers": "true"}).json()["hypervisors"]
        idle = [h for h in listed if "servers" not in h]
    with cloud.client(version="2.75") as c:
        listed = c.get("/os-hypervisors", params={"with_servers": "true"}).json()["hypervisors"]
        assert all("servers" in h for h in listed)
        assert {h["id"] for h in listed if h["servers"] == []} >= {h["id"] for h in idle}
        assert all("servers" not in h for h in c.get("/os-hypervisors").json()["hypervisors"])


def test_hostname_2_90_and_fqdn_2_94(cloud: Cloud, image: dict[str, Any]) -> None:
    project = _project()
    with cloud.client(token=f"hn:{project}", version="2.89") as old:
        assert "'hostname' was unexpected" in fault(boot(old, image["id"], networks="none", hostname="web-1"), 400,
                                                    "badRequest")
    with cloud.client(token=f"hn:{project}", version="2.90") as c:
        for bad in ("-web", "a", "web_1", "web.example.com", "x" * 64):
            fault(boot(c, image["id"], networks="none", hostname=bad), 400, "badRequest")
        assert fault(boot(c, image["id"], networks="none", hostname="web-1", min_count=2), 400, "badRequest") == (
            "Unable to allocate a single hostname to multiple instances")
        server_id = _active(c, boot(c, image["id"], name="Some Name", networks="none", hostname="web-1"))
        assert c.get(f"/servers/{server_id}").json()["server"]["OS-EXT-SRV-ATTR:hostname"] == "web-1"
        assert "OS-EXT-SRV-ATTR:host" not in c.get(f"/servers/{server_id}").json()["server"]
        fault(c.put(f"/servers/{server_id}", json={"server": {"hostname": "db.example.com"}}), 400, "badRequest")
        updated = c.put(f"/servers/{server_id}", json={"server": {"hostname": "db-1"}}).json()["server"]
        assert updated["OS-EXT-SRV-ATTR:hostname"] == "db-1"
        listed = c.get("/servers", params={"hostname": "^db-"}).json()["servers"]
        assert [s["id"] for s in listed] == [server_id]
    with cloud.client(token=f"hn:{project}", version="2.89") as old:
        assert "OS-EXT-SRV-ATTR:hostname" not in old.get(f"/servers/{server_id}").json()["server"]
    with cloud.client(token=f"hn:{project}", version="2.94") as c:
        fqdn = _active(c, boot(c, image["id"], networks="none", hostname="web.example.com"))
        assert c.get(f"/servers/{fqdn}").json()["server"]["OS-EXT-SRV-ATTR:hostname"] == "web.example.com"
        updated = c.put(f"/servers/{server_id}", json={"server": {"hostname": "db.example.org"}}).json()["server"]
        assert updated["OS-EXT-SRV-ATTR:hostname"] == "db.example.org"
        fault(boot(c, image["id"], networks="none", hostname="a b"), 400, "badRequest")
        _delete_all(c)


def test_keypair_import_only_2_92(cloud: Cloud) -> None:
    user = f"kp-{uuid.uuid4().hex[:6]}"
    with cloud.client(token=f"{user}:{_project()}", version="2.91") as old:
        generated = old.post("/os-keypairs", json={"keypair": {"name": "gen"}})
        assert generated.status_code == 201 and "private_key" in generated.json()["keypair"]
        fault(old.post("/os-keypairs", json={"keypair": {"name": "a@b.c", "public_key": _SSH_KEY}}), 400,
              "badRequest")
    with cloud.client(token=f"{user}:{_project()}", version="2.92") as c:
        assert "'public_key' is a required property" in fault(
            c.post("/os-keypairs", json={"keypair": {"name": "gen2"}}), 400, "badRequest")
        imported = c.post("/os-keypairs", json={"keypair": {"name": "me@host.example", "public_key": _SSH_KEY}})
        assert imported.status_code == 201, imported.text
        assert "private_key" not in imported.json()["keypair"]
        fault(c.post("/os-keypairs", json={"keypair": {"name": "bad/name", "public_key": _SSH_KEY}}), 400,
              "badRequest")
        assert {k["keypair"]["name"] for k in c.get("/os-keypairs").json()["keypairs"]} == {"gen", "me@host.example"}
        assert c.delete("/os-keypairs/me@host.example").status_code == 204
        assert c.delete("/os-keypairs/gen").status_code == 204


def test_every_version_negotiates(cloud: Cloud) -> None:
    with cloud.client(version="2.100") as c:
        resp = c.get("/flavors")
        assert resp.status_code == 200 and resp.headers["OpenStack-API-Version"] == "compute 2.100"
    with cloud.client(version="2.101") as c:
        assert c.get("/flavors").status_code == 406
    with cloud.client(version="latest") as c:
        assert c.get("/flavors").headers["OpenStack-API-Version"] == "compute 2.100"


def test_extra_spec_validation_2_86(cloud: Cloud) -> None:
    name = f"fx-{uuid.uuid4().hex[:6]}"
    with cloud.client(version="2.86") as c:
        created = c.post("/flavors", json={"flavor": {"name": name, "ram": 64, "vcpus": 1, "disk": 1}})
        flavor_id = created.json()["flavor"]["id"]
        specs = f"/flavors/{flavor_id}/os-extra_specs"
        refused = {
            "hw:cpu_policy": ("bogus", "Validation failed; 'bogus' is not one of: dedicated, shared, mixed."),
            "hw:numa_nodes": ("0", "Validation failed; '0' is less than the min value of '1'."),
            "hw:cpu_cores": ("two", "Validation failed; 'two' is not a valid integer value."),
            "hw:locked_memory": ("maybe", "Validation failed; 'maybe' is not a valid boolean-like value."),
            "hw:cpu_polcy": ("dedicated", "Validation failed; extra spec 'hw:cpu_polcy' does not appear to be a "
                                          "valid extra spec."),
            "trait:NO_SUCH_TRAIT": ("required", "Validation failed; extra spec 'trait:NO_SUCH_TRAIT' does not "
                                                "appear to be a valid extra spec."),
            "trait:HW_CPU_X86_AVX2": ("wanted", "Validation failed; 'wanted' is not one of: required, forbidden."),
            "resources1:VCPU": ("x", "Validation failed; 'x' is not a valid integer value."),
        }
        for key, (value, message) in refused.items():
            assert fault(c.post(specs, json={"extra_specs": {key: value}}), 400, "badRequest") == message, key
            assert fault(c.put(f"{specs}/{key}", json={key: value}), 400, "badRequest") == message, key
        assert c.get(specs).json() == {"extra_specs": {}}
        accepted = {"hw:cpu_policy": "dedicated", "hw:numa_nodes": "2", "hw:numa_cpus.0": "0-1",
                    "hw:locked_memory": "True", "trait:HW_CPU_X86_AVX2": "required",
                    "trait1:CUSTOM_GOLD": "forbidden", "resources:VCPU": "2", "resources_g1:CUSTOM_FPGA": "1",
                    "quota:cpu_shares": "1024", "aggregate_instance_extra_specs:ssd": "true",
                    "my-own:anything": "goes", "no_namespace": "goes"}
        assert c.post(specs, json={"extra_specs": accepted}).status_code == 200
        assert c.put(f"{specs}/hw:numa_nodes", json={"hw:numa_nodes": 1}).status_code == 200
        assert c.get(specs).json()["extra_specs"] == {**accepted, "hw:numa_nodes": "1"}
    with cloud.client(version="2.85") as old:
        # before 2.86 anything goes
        assert old.post(specs, json={"extra_specs": {"hw:cpu_polcy": "bogus"}}).status_code == 200
        assert old.delete(f"/flavors/{flavor_id}").status_code == 202
