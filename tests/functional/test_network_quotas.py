"""Quotas of the networking service (``/v2.0/quotas``: set, shown with usage, enforced as 409 OverQuota), bulk
creates (all or none) and the auto-allocated topology (Nova's ``networks: auto``)."""

from __future__ import annotations

import uuid

from tests.conftest import Cloud
from tests.functional.network_helpers import network, neutron_error, subnet


def test_quotas_are_counted_and_enforced(cloud: Cloud) -> None:
    project = f"q{uuid.uuid4().hex[:8]}"
    with cloud.network_client() as admin, cloud.network_client(f"u:{project}") as n:
        assert n.get(f"/quotas/{project}").json()["quota"]["network"] == 100
        neutron_error(n.put(f"/quotas/{project}", json={"quota": {"network": 1000}}), 403, "PolicyNotAuthorized")
        set_ = admin.put(f"/quotas/{project}", json={"quota": {"network": 2, "port": 1}})
        assert set_.status_code == 200 and set_.json()["quota"]["network"] == 2
        neutron_error(admin.put(f"/quotas/{project}", json={"quota": {"network": -2}}), 400, "HTTPBadRequest")
        neutron_error(admin.put(f"/quotas/{project}", json={"quota": {"bogus": 1}}), 400, "HTTPBadRequest")
        assert project in {q["project_id"] for q in admin.get("/quotas").json()["quotas"]}
        first, second = network(n), network(n)
        assert "Quota exceeded for resources: ['network']" in neutron_error(
            n.post("/networks", json={"network": {}}), 409, "OverQuota")
        details = n.get(f"/quotas/{project}/details").json()["quota"]
        assert details["network"] == {"limit": 2, "used": 2, "reserved": 0}
        subnet(n, first["id"], "10.80.0.0/24")
        n.post("/ports", json={"port": {"network_id": first["id"]}})
        neutron_error(n.post("/ports", json={"port": {"network_id": first["id"]}}), 409, "OverQuota")
        with cloud.network_client(f"other:o{uuid.uuid4().hex[:6]}") as other:
            neutron_error(other.get(f"/quotas/{project}"), 404, "HTTPNotFound")
        assert admin.delete(f"/quotas/{project}").status_code == 204
        assert n.get(f"/quotas/{project}").json()["quota"]["network"] == 100
        assert n.get(f"/quotas/{project}/default").json()["quota"]["port"] == 500
        for p in n.get("/ports").json()["ports"]:
            n.delete(f"/ports/{p['id']}")
        for net in (first, second):
            n.delete(f"/networks/{net['id']}")


def test_bulk_create_is_all_or_nothing(cloud: Cloud) -> None:
    project = f"b{uuid.uuid4().hex[:8]}"
    with cloud.network_client(f"u:{project}") as n:
        made = n.post("/networks", json={"networks": [{"name": "bulk-1"}, {"name": "bulk-2"}]})
        assert made.status_code == 201 and [x["name"] for x in made.json()["networks"]] == ["bulk-1", "bulk-2"]
        neutron_error(n.post("/networks", json={"networks": [{"name": "bulk-3"}, {"mtu": 1}]}), 400,
                      "HTTPBadRequest")
        assert sorted(x["name"] for x in n.get("/networks").json()["networks"]) == ["bulk-1", "bulk-2"]
        neutron_error(n.post("/networks", json={"networks": []}), 400, "HTTPBadRequest")
        for x in made.json()["networks"]:
            n.delete(f"/networks/{x['id']}")


def test_auto_allocated_topology(cloud: Cloud) -> None:
    project = f"t{uuid.uuid4().hex[:8]}"
    with cloud.network_client() as admin, cloud.network_client(f"u:{project}") as n:
        assert "No default router:external network" in neutron_error(
            n.get(f"/auto-allocated-topology/{project}"), 409, "AutoAllocationFailure")
        public = network(admin, **{"router:external": True, "is_default": True})
        subnet(admin, public["id"], "198.51.100.0/24")
        assert "already exists" in neutron_error(admin.post("/networks", json={"network": {
            "router:external": True, "is_default": True}}), 409, "DefaultExternalNetworkExists")
        dry = n.get(f"/auto-allocated-topology/{project}", params={"fields": "dry-run"})
        assert dry.status_code == 200 and dry.json()["auto_allocated_topology"]["id"] == "dry-run=pass"
        neutron_error(n.get(f"/auto-allocated-topology/{project}", params={"fields": "x"}), 400, "BadRequest")
        got = n.get(f"/auto-allocated-topology/{project}")
        assert got.status_code == 200, got.text
        net_id = got.json()["auto_allocated_topology"]["id"]
        assert n.get(f"/auto-allocated-topology/{project}").json()["auto_allocated_topology"]["id"] == net_id
        net = n.get(f"/networks/{net_id}").json()["network"]
        assert net["name"] == "auto_allocated_network" and len(net["subnets"]) == 1
        (router,) = n.get("/routers").json()["routers"]
        assert router["external_gateway_info"]["network_id"] == public["id"]
        neutron_error(n.get(f"/auto-allocated-topology/{uuid.uuid4().hex}"), 403, "NotAuthorized")
        assert n.delete(f"/auto-allocated-topology/{project}").status_code == 204
        neutron_error(n.get(f"/networks/{net_id}"), 404, "NetworkNotFound")
        assert n.get("/routers").json()["routers"] == []
        assert admin.delete(f"/networks/{public['id']}").status_code == 204


def test_tags(cloud: Cloud) -> None:
    with cloud.network_client() as n:
        net = network(n)
        url = f"/networks/{net['id']}/tags"
        assert n.put(f"{url}/red").status_code == 201
        assert n.get(f"{url}/red").status_code == 204
        neutron_error(n.get(f"{url}/blue"), 404, "TagNotFound")
        replaced = n.put(url, json={"tags": ["a", "b", "a"]})
        assert replaced.status_code == 200 and replaced.json()["tags"] == ["a", "b"]
        shown = n.get(f"/networks/{net['id']}").json()["network"]
        assert shown["tags"] == ["a", "b"] and shown["revision_number"] == 2
        assert [x["id"] for x in n.get("/networks", params={"tags": "a,b"}).json()["networks"]] == [net["id"]]
        assert net["id"] not in {x["id"] for x in n.get("/networks", params={"not-tags-any": "a"}).json()["networks"]}
        assert n.delete(f"{url}/a").status_code == 204
        neutron_error(n.delete(f"{url}/a"), 404, "TagNotFound")
        neutron_error(n.put(f"{url}/{'x' * 300}"), 400, "InvalidInput")
        assert n.delete(url).status_code == 204 and n.get(url).json()["tags"] == []
        neutron_error(n.get(f"/widgets/{net['id']}/tags"), 404, "HTTPNotFound")
        with cloud.network_client(f"o:o{uuid.uuid4().hex[:6]}") as other:
            neutron_error(other.put(f"{url}/mine"), 404, "NetworkNotFound")
        n.delete(f"/networks/{net['id']}")


def test_network_ip_availabilities(cloud: Cloud) -> None:
    with cloud.network_client() as n:
        net = network(n)
        sub = subnet(n, net["id"], "10.85.0.0/29")
        n.post("/ports", json={"port": {"network_id": net["id"]}})
        shown = n.get(f"/network-ip-availabilities/{net['id']}").json()["network_ip_availability"]
        assert (shown["total_ips"], shown["used_ips"]) == (5, 1)
        assert shown["subnet_ip_availability"] == [{"subnet_id": sub["id"], "subnet_name": "",
                                                    "cidr": "10.85.0.0/29", "ip_version": 4, "total_ips": 5,
                                                    "used_ips": 1}]
        listed = n.get("/network-ip-availabilities", params={"network_id": net["id"]}).json()
        assert [x["network_id"] for x in listed["network_ip_availabilities"]] == [net["id"]]
        with cloud.network_client(f"o:o{uuid.uuid4().hex[:6]}") as other:
            neutron_error(other.get("/network-ip-availabilities"), 403, "PolicyNotAuthorized")
        for p in n.get("/ports", params={"network_id": net["id"]}).json()["ports"]:
            n.delete(f"/ports/{p['id']}")
        n.delete(f"/networks/{net['id']}")
