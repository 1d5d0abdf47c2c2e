"""The embedded Networking API through HTTP against a real all-in-one: networks, subnets, ports and their IPAM,
lists (filters, fields, sorting, paging), Neutron's error bodies and who sees what."""

from __future__ import annotations

import ipaddress
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import Cloud
from tests.functional.network_helpers import network, neutron_error, port, subnet


def test_root_versions_and_extensions(cloud: Cloud) -> None:
    root = httpx.get(cloud.network_url + "/", timeout=10)
    assert root.status_code == 200
    assert root.json()["versions"] == [{"id": "v2.0", "status": "CURRENT",
                                        "links": [{"href": cloud.network_url + "/v2.0/", "rel": "self"}]}]
    with cloud.network_client() as n:
        resources = n.get("/").json()["resources"]
        assert {r["collection"] for r in resources} >= {"networks", "subnets", "ports", "security-groups"}
        aliases = {e["alias"] for e in n.get("/extensions").json()["extensions"]}
        assert {"external-net", "provider", "binding", "security-group", "port-security",
                "allowed-address-pairs", "net-mtu"} <= aliases
        assert n.get("/extensions/binding").json()["extension"]["name"] == "Port Binding"
        neutron_error(n.get("/extensions/nope"), 404, "HTTPNotFound")
        neutron_error(n.get("/nothing-here"), 404, "HTTPNotFound")
    assert httpx.get(cloud.network_url + "/v2.0/networks", timeout=10).status_code == 401


def test_network_lifecycle_and_segments(cloud: Cloud) -> None:
    with cloud.network_client() as n:
        one, two = network(n), network(n, shared=True, mtu=1400, description="d")
        assert one["status"] == "ACTIVE" and one["admin_state_up"] is True and one["subnets"] == []
        assert one["mtu"] == 1450  # VXLAN: 1500 less 50
        assert two["shared"] is True and two["mtu"] == 1400 and two["description"] == "d"
        assert one["provider:network_type"] == "vxlan"
        assert one["provider:segmentation_id"] != two["provider:segmentation_id"]
        neutron_error(n.post("/networks", json={"network": {"mtu": 9000}}), 400, "InvalidInput")
        neutron_error(n.post("/networks", json={"network": {"bogus": 1}}), 400, "HTTPBadRequest")
        neutron_error(n.post("/networks", json={"network": {"admin_state_up": "maybe"}}), 400, "HTTPBadRequest")
        neutron_error(n.post("/networks", json={"net": {}}), 400, "HTTPBadRequest")
        neutron_error(n.post("/networks", content=b"{", headers={"Content-Type": "application/json"}), 400,
                      "HTTPBadRequest")
        vlan = network(n, **{"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                             "provider:segmentation_id": 3000})
        assert vlan["mtu"] == 1500 and vlan["provider:segmentation_id"] == 3000
        assert "VLAN 3000" in neutron_error(n.post("/networks", json={"network": {
            "provider:network_type": "vlan", "provider:physical_network": "physnet1",
            "provider:segmentation_id": 3000}}), 409, "VlanIdInUse")
        neutron_error(n.post("/networks", json={"network": {"provider:network_type": "vlan",
                                                            "provider:segmentation_id": 5000}}), 400, "InvalidInput")
        updated = n.put(f"/networks/{one['id']}", json={"network": {"name": "renamed", "admin_state_up": False}})
        assert updated.status_code == 200, updated.text
        assert updated.json()["network"]["name"] == "renamed"
        assert updated.json()["network"]["revision_number"] == one["revision_number"] + 1
        neutron_error(n.put(f"/networks/{one['id']}", json={"network": {"provider:network_type": "flat"}}), 400,
                      "HTTPBadRequest")
        for net in (one, two, vlan):
            assert n.delete(f"/networks/{net['id']}").status_code == 204
        assert "could not be found" in neutron_error(n.get(f"/networks/{one['id']}"), 404, "NetworkNotFound")


def test_projects_see_their_own_shared_and_external_networks(cloud: Cloud) -> None:
    alice_project, bob_project = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    with cloud.network_client(f"alice:{alice_project}") as alice, cloud.network_client(f"bob:{bob_project}") as bob, \
            cloud.network_client() as admin:
        private = network(alice)
        assert "provider:network_type" not in private  # provider attributes are for admins
        shared = network(admin, shared=True)
        external = network(admin, **{"router:external": True})
        neutron_error(bob.get(f"/networks/{private['id']}"), 404, "NetworkNotFound")
        neutron_error(bob.delete(f"/networks/{private['id']}"), 404, "NetworkNotFound")
        seen = {x["id"] for x in bob.get("/networks").json()["networks"]}
        assert shared["id"] in seen and external["id"] in seen and private["id"] not in seen
        assert "disallowed by policy" in neutron_error(
            alice.post("/networks", json={"network": {"shared": True}}), 403, "PolicyNotAuthorized")
        neutron_error(bob.put(f"/networks/{shared['id']}", json={"network": {"name": "x"}}), 403,
                      "PolicyNotAuthorized")
        neutron_error(bob.post("/networks", json={"network": {"project_id": alice_project}}), 400, "HTTPBadRequest")
        # a port on a shared network, but not a chosen address on it
        subnet(admin, shared["id"], "10.77.0.0/24")
        mine = port(bob, shared["id"])
        assert mine["project_id"] == bob_project and "binding:vif_type" not in mine
        neutron_error(bob.post("/ports", json={"port": {"network_id": shared["id"], "fixed_ips": [
            {"ip_address": "10.77.0.50"}]}}), 403, "PolicyNotAuthorized")
        neutron_error(alice.get(f"/ports/{mine['id']}"), 404, "PortNotFound")
        assert bob.delete(f"/ports/{mine['id']}").status_code == 204
        for net in (shared, external):
            assert admin.delete(f"/networks/{net['id']}").status_code == 204


def test_subnets_pools_gateways_and_validation(cloud: Cloud) -> None:
    with cloud.network_client() as n:
        net = network(n)
        sub = subnet(n, net["id"], "10.10.0.0/24", dns_nameservers=["8.8.8.8"],
                     host_routes=[{"destination": "10.20.0.0/24", "nexthop": "10.10.0.254"}])
        assert sub["gateway_ip"] == "10.10.0.1" and sub["enable_dhcp"] is True
        assert sub["allocation_pools"] == [{"start": "10.10.0.2", "end": "10.10.0.254"}]
        assert n.get(f"/networks/{net['id']}").json()["network"]["subnets"] == [sub["id"]]
        assert "overlaps with another subnet" in neutron_error(n.post("/subnets", json={"subnet": {
            "network_id": net["id"], "cidr": "10.10.0.128/25", "ip_version": 4}}), 400, "InvalidInput")
        pools = subnet(n, net["id"], "10.11.0.5/24", gateway_ip=None,
                       allocation_pools=[{"start": "10.11.0.10", "end": "10.11.0.20"}])
        assert pools["cidr"] == "10.11.0.0/24" and pools["gateway_ip"] is None
        cases = [
            ({"cidr": "10.12.0.0/33"}, "HTTPBadRequest"),
            ({"cidr": "10.12.0.0/24", "ip_version": 6}, "InvalidInput"),
            ({"cidr": "10.12.0.0/24", "gateway_ip": "10.12.0.0"}, "InvalidInput"),
            ({"cidr": "10.12.0.0/24", "allocation_pools": [{"start": "10.12.1.1", "end": "10.12.1.5"}]},
             "OutOfBoundsAllocationPool"),
            ({"cidr": "10.12.0.0/24", "allocation_pools": [{"start": "10.12.0.1", "end": "10.12.0.5"}]},
             "GatewayConflictWithAllocationPools"),
            ({"cidr": "10.12.0.0/24", "allocation_pools": [{"start": "10.12.0.9", "end": "10.12.0.5"}]},
             "InvalidAllocationPool"),
            ({"cidr": "10.12.0.0/24", "dns_nameservers": [f"10.0.0.{i}" for i in range(6)]},
             "DNSNameServersExhausted"),
            ({"cidr": "10.12.0.0/24", "ipv6_address_mode": "slaac"}, "InvalidInput"),
            ({"cidr": "fd12::/80", "ip_version": 6, "ipv6_address_mode": "slaac"}, "InvalidInput"),
            ({"cidr": "10.12.0.0/24", "ip_version": 5}, "HTTPBadRequest"),
        ]
        for extra, kind in cases:
            body = {"network_id": net["id"], "ip_version": 4, **extra}
            resp = n.post("/subnets", json={"subnet": body})
            code = 409 if kind == "GatewayConflictWithAllocationPools" else 400
            neutron_error(resp, code, kind)
        neutron_error(n.post("/subnets", json={"subnet": {"network_id": str(uuid.uuid4()), "cidr": "10.1.0.0/24",
                                                          "ip_version": 4}}), 404, "NetworkNotFound")
        updated = n.put(f"/subnets/{sub['id']}", json={"subnet": {"name": "s", "dns_nameservers": []}})
        assert updated.status_code == 200 and updated.json()["subnet"]["dns_nameservers"] == []
        neutron_error(n.put(f"/subnets/{sub['id']}", json={"subnet": {"cidr": "10.99.0.0/24"}}), 400,
                      "HTTPBadRequest")
        p = port(n, net["id"], fixed_ips=[{"subnet_id": sub["id"]}])
        assert "ports have an IP allocation" in neutron_error(n.delete(f"/subnets/{sub['id']}"), 409, "SubnetInUse")
        assert n.delete(f"/ports/{p['id']}").status_code == 204
        assert n.delete(f"/subnets/{sub['id']}").status_code == 204
        assert n.delete(f"/networks/{net['id']}").status_code == 204


def test_ipv6_slaac_addresses_come_from_the_mac(cloud: Cloud) -> None:
    with cloud.network_client() as n:
        net = network(n)
        v4 = subnet(n, net["id"], "10.30.0.0/24")
        before = port(n, net["id"], mac_address="fa:16:3e:11:22:33")
        v6 = subnet(n, net["id"], "fd30::/64", ipv6_address_mode="slaac", ipv6_ra_mode="slaac")
        after = port(n, net["id"])
        got = {ip["subnet_id"]: ip["ip_address"] for ip in
               n.get(f"/ports/{before['id']}").json()["port"]["fixed_ips"]}
        assert got == {v4["id"]: before["fixed_ips"][0]["ip_address"], v6["id"]: "fd30::f816:3eff:fe11:2233"}
        mac = after["mac_address"].split(":")
        assert {"subnet_id": v6["id"], "ip_address": str(ipaddress.IPv6Address(
            f"fd30::{int(mac[0], 16) ^ 2:02x}{mac[1]}:{mac[2]}ff:fe{mac[3]}:{mac[4]}{mac[5]}"))} in after["fixed_ips"]
        moved = n.put(f"/ports/{before['id']}", json={"port": {"mac_address": "fa:16:3e:44:55:66"}}).json()["port"]
        assert {"subnet_id": v6["id"], "ip_address": "fd30::f816:3eff:fe44:5566"} in moved["fixed_ips"]
        assert "is in use" in neutron_error(n.put(f"/ports/{after['id']}", json={"port": {
            "mac_address": "fa:16:3e:44:55:66"}}), 409, "MacAddressInUse")
        assert "configured for automatic addresses" in neutron_error(n.post("/ports", json={"port": {
            "network_id": net["id"], "fixed_ips": [{"subnet_id": v6["id"], "ip_address": "fd30::5"}]}}), 400,
            "AllocationOnAutoAddressSubnet")
        for p in (before, after):
            n.delete(f"/ports/{p['id']}")
        assert n.delete(f"/networks/{net['id']}").status_code == 204


def test_ports_addresses_macs_and_conflicts(cloud: Cloud) -> None:
    with cloud.network_client() as n:
        net = network(n)
        sub = subnet(n, net["id"], "10.40.0.0/28")
        first = port(n, net["id"], name="p1", device_id="vm-1", device_owner="compute:nova",
                     fixed_ips=[{"ip_address": "10.40.0.9"}])
        assert first["status"] == "DOWN" and first["mac_address"].startswith("fa:16:3e:")
        assert first["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.40.0.9"}]
        assert first["binding:vif_type"] == "unbound" and first["binding:vnic_type"] == "normal"
        assert len(first["security_groups"]) == 1  # the project's default group
        assert "already allocated" in neutron_error(n.post("/ports", json={"port": {
            "network_id": net["id"], "fixed_ips": [{"subnet_id": sub["id"], "ip_address": "10.40.0.9"}]}}), 409,
            "IpAddressAlreadyAllocated")
        assert "is in use" in neutron_error(n.post("/ports", json={"port": {
            "network_id": net["id"], "mac_address": first["mac_address"]}}), 409, "MacAddressInUse")
        neutron_error(n.post("/ports", json={"port": {"network_id": net["id"], "mac_address": "nope"}}), 400,
                      "HTTPBadRequest")
        neutron_error(n.post("/ports", json={"port": {"network_id": net["id"], "fixed_ips": [
            {"ip_address": "10.41.0.9"}]}}), 400, "InvalidIpForNetwork")
        neutron_error(n.post("/ports", json={"port": {"network_id": net["id"], "fixed_ips": [
            {"subnet_id": sub["id"], "ip_address": "10.40.0.15"}]}}), 400, "InvalidIpForSubnet")
        neutron_error(n.post("/ports", json={"port": {"network_id": net["id"], "port_security_enabled": False,
                                                      "allowed_address_pairs": [{"ip_address": "10.0.0.1"}]}}), 409,
                      "AddressPairAndPortSecurityRequired")
        moved = n.put(f"/ports/{first['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.40.0.10"}],
                                                              "name": "p1b"}})
        assert moved.status_code == 200, moved.text
        assert moved.json()["port"]["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.40.0.10"}]
        again = port(n, net["id"], fixed_ips=[{"ip_address": "10.40.0.9"}])  # released by the update
        pairs = port(n, net["id"], allowed_address_pairs=[{"ip_address": "10.40.0.0/28"}])
        assert pairs["allowed_address_pairs"] == [{"ip_address": "10.40.0.0/28"}]
        assert "ports still in use" in neutron_error(n.delete(f"/networks/{net['id']}"), 409, "NetworkInUse")
        for p in (first, again, pairs):
            assert n.delete(f"/ports/{p['id']}").status_code == 204
        neutron_error(n.delete(f"/ports/{first['id']}"), 404, "PortNotFound")
        assert n.delete(f"/networks/{net['id']}").status_code == 204
        assert n.get(f"/subnets/{sub['id']}").status_code == 404


def test_last_addresses_raced_by_threads(cloud: Cloud) -> None:
    """12 concurrent creates for the 5 addresses of a /29: 5 ports with distinct addresses, 7 409s, and a
    port asking for a taken address sees it taken."""
    with cloud.network_client() as n:
        net = network(n)
        subnet(n, net["id"], "10.50.0.0/29")

    def one(i: int) -> tuple[int, str]:
        with cloud.network_client() as c:
            resp = c.post("/ports", json={"port": {"network_id": net["id"], "name": f"race-{i}"}})
            if resp.status_code == 201:
                return 201, resp.json()["port"]["fixed_ips"][0]["ip_address"]
            neutron_error(resp, 409, "IpAddressGenerationFailure")
            return 409, ""

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(one, range(12)))
    addresses = [ip for code, ip in results if code == 201]
    assert sorted(addresses) == [f"10.50.0.{i}" for i in range(2, 7)]
    assert [code for code, _ in results].count(409) == 7
    with cloud.network_client() as n:
        assert len(n.get("/ports", params={"network_id": net["id"]}).json()["ports"]) == 5
        for p in n.get("/ports", params={"network_id": net["id"]}).json()["ports"]:
            n.delete(f"/ports/{p['id']}")
        n.delete(f"/networks/{net['id']}")


def test_filters_fields_sorting_and_pages(cloud: Cloud) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    with cloud.network_client(f"u:{project}") as n:
        nets = [network(n, name=f"page-{i}") for i in range(5)]
        assert [x["id"] for x in n.get("/networks", params={"name": "page-3"}).json()["networks"]] == \
            [nets[3]["id"]]
        two = n.get("/networks", params=[("name", "page-1"), ("name", "page-2"), ("fields", "id"),
                                         ("fields", "name")]).json()["networks"]
        assert sorted(two, key=lambda x: x["name"]) == [{"id": nets[1]["id"], "name": "page-1"},
                                                        {"id": nets[2]["id"], "name": "page-2"}]
        down = n.get("/networks", params={"sort_key": "name", "sort_dir": "desc"}).json()["networks"]
        assert [x["name"] for x in down] == [f"page-{i}" for i in (4, 3, 2, 1, 0)]
        first = n.get("/networks", params={"sort_key": "name", "sort_dir": "asc", "limit": 2}).json()
        assert [x["name"] for x in first["networks"]] == ["page-0", "page-1"]
        (link,) = first["networks_links"]
        assert link["rel"] == "next"
        second = n.get(link["href"]).json()
        assert [x["name"] for x in second["networks"]] == ["page-2", "page-3"]
        assert {x["rel"] for x in second["networks_links"]} == {"next", "previous"}
        neutron_error(n.get("/networks", params={"limit": "-1"}), 400, "HTTPBadRequest")
        neutron_error(n.get("/networks", params={"sort_key": "nope"}), 400, "HTTPBadRequest")
        neutron_error(n.get("/networks", params={"sort_key": "name", "sort_dir": "up"}), 400, "HTTPBadRequest")
        neutron_error(n.get("/networks", params={"colour": "red"}), 400, "HTTPBadRequest")
        neutron_error(n.get("/networks", params={"shared": "perhaps"}), 400, "HTTPBadRequest")
        assert n.get("/networks", params={"shared": "false", "name": "page-0"}).json()["networks"][0]["id"] == \
            nets[0]["id"]
        neutron_error(n.get("/networks", params={"marker": str(uuid.uuid4()), "limit": 1}), 404, "NetworkNotFound")
        for net in nets:
            n.delete(f"/networks/{net['id']}")


def test_security_groups_default_rules_and_validation(cloud: Cloud) -> None:
    project = f"s{uuid.uuid4().hex[:8]}"
    with cloud.network_client(f"u:{project}") as n:
        (default,) = n.get("/security-groups").json()["security_groups"]
        assert default["name"] == "default"
        rules = {(r["direction"], r["ethertype"], r["remote_group_id"]) for r in default["security_group_rules"]}
        assert rules == {("ingress", "IPv4", default["id"]), ("ingress", "IPv6", default["id"]),
                         ("egress", "IPv4", None), ("egress", "IPv6", None)}
        web = n.post("/security-groups", json={"security_group": {"name": "web"}})
        assert web.status_code == 201, web.text
        group = web.json()["security_group"]
        assert {(r["direction"], r["ethertype"]) for r in group["security_group_rules"]} == \
            {("egress", "IPv4"), ("egress", "IPv6")}
        rule = {"security_group_id": group["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 80,
                "port_range_max": 80, "remote_ip_prefix": "0.0.0.0/0"}
        created = n.post("/security-group-rules", json={"security_group_rule": rule})
        assert created.status_code == 201, created.text
        rule_id = created.json()["security_group_rule"]["id"]
        assert rule_id in neutron_error(n.post("/security-group-rules", json={"security_group_rule": rule}), 409,
                                        "SecurityGroupRuleExists")
        bad = [({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80}, "SecurityGroupInvalidPortRange"),
               ({"protocol": None, "port_range_min": 80}, "SecurityGroupProtocolRequiredWithPorts"),
               ({"protocol": "icmp", "port_range_min": 300}, "SecurityGroupInvalidIcmpValue"),
               ({"protocol": "icmp", "port_range_max": 3, "port_range_min": None}, "SecurityGroupMissingIcmpType"),
               ({"protocol": "blah"}, "SecurityGroupRuleInvalidProtocol"),
               ({"ethertype": "IPv5"}, "SecurityGroupRuleInvalidEtherType"),
               ({"remote_ip_prefix": "fd00::/64"}, "SecurityGroupRuleParameterConflict"),
               ({"remote_group_id": default["id"]}, "SecurityGroupMultipleRemoteEntites"),
               ({"protocol": "gre", "port_range_min": 1, "port_range_max": 2}, "SecurityGroupInvalidProtocolForPort"),
               ({"port_range_min": 70000}, "SecurityGroupInvalidPortValue")]
        for change, kind in bad:
            neutron_error(n.post("/security-group-rules", json={"security_group_rule": {**rule, **change}}), 400,
                          kind)
        neutron_error(n.post("/security-group-rules", json={"security_group_rule": {
            **rule, "security_group_id": str(uuid.uuid4())}}), 404, "SecurityGroupNotFound")
        neutron_error(n.put(f"/security-groups/{default['id']}", json={"security_group": {"name": "x"}}), 409,
                      "SecurityGroupCannotUpdateDefault")
        net = network(n)
        p = port(n, net["id"], security_groups=[group["id"]])
        assert p["security_groups"] == [group["id"]]
        neutron_error(n.delete(f"/security-groups/{group['id']}"), 409, "SecurityGroupInUse")
        n.delete(f"/ports/{p['id']}")
        assert n.delete(f"/security-group-rules/{rule_id}").status_code == 204
        assert n.delete(f"/security-groups/{group['id']}").status_code == 204
        n.delete(f"/networks/{net['id']}")
    with cloud.network_client(f"other:o{uuid.uuid4().hex[:8]}") as other:
        neutron_error(other.get(f"/security-groups/{default['id']}"), 404, "SecurityGroupNotFound")


def test_body_and_integer_limits(cloud: Cloud) -> None:
    with cloud.network_client() as n:
        resp = n.post("/networks", json={"network": {"name": "x" * 200_000}})
        assert resp.status_code == 413
        neutron_error(n.post("/networks", json={"network": {"name": "x" * 256}}), 400, "HTTPBadRequest")
        neutron_error(n.post("/networks", json={"network": {"mtu": 2**70}}), 400, "HTTPBadRequest")
        deep: object = 1
        for _ in range(40):
            deep = [deep]
        neutron_error(n.post("/networks", json={"network": {"name": deep}}), 400, "HTTPBadRequest")


def test_nul_characters_are_refused(cloud: Cloud) -> None:
    with cloud.network_client() as n:
        neutron_error(n.post("/networks", json={"network": {"name": "a\u0000b"}}), 400, "HTTPBadRequest")
        neutron_error(n.get("/networks", params={"name": "a\u0000"}), 400, "HTTPBadRequest")
