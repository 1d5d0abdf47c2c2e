"""Routers and floating IPs through HTTP: a gateway on an external network, interfaces by subnet and by port,
floating IPs associated through the router that reaches the port's subnet (404 without one), and what may not be
removed while in use."""

from __future__ import annotations

import uuid

from tests.conftest import Cloud
from tests.functional.network_helpers import create, network, neutron_error, port, subnet


def test_router_gateway_interfaces_and_floating_ips(cloud: Cloud) -> None:
    project = f"l{uuid.uuid4().hex[:8]}"
    with cloud.network_client() as admin, cloud.network_client(f"u:{project}") as n:
        public = network(admin, **{"router:external": True})
        pub_subnet = subnet(admin, public["id"], "172.24.4.0/28")
        private = network(n)
        sub = subnet(n, private["id"], "10.70.0.0/24")
        other = subnet(n, network(n)["id"], "10.71.0.0/24")
        vm = port(n, private["id"], device_id=str(uuid.uuid4()), device_owner="compute:nova")
        # no router yet: the floating IP cannot reach the port
        fip = create(n, "floatingips", "floatingip", floating_network_id=public["id"])
        assert fip["status"] == "DOWN" and fip["port_id"] is None
        assert fip["floating_ip_address"].startswith("172.24.4.")
        assert "is not reachable from subnet" in neutron_error(n.put(f"/floatingips/{fip['id']}", json={
            "floatingip": {"port_id": vm["id"]}}), 404, "ExternalGatewayForFloatingIPNotFound")
        neutron_error(n.post("/floatingips", json={"floatingip": {"floating_network_id": private["id"]}}), 400,
                      "BadRequest")
        router = create(n, "routers", "router", name="r1",
                        external_gateway_info={"network_id": public["id"]})
        gw = router["external_gateway_info"]
        assert gw["network_id"] == public["id"] and gw["enable_snat"] is True
        assert gw["external_fixed_ips"][0]["subnet_id"] == pub_subnet["id"]
        neutron_error(n.put(f"/routers/{router['id']}", json={"router": {"external_gateway_info": {
            "network_id": public["id"], "enable_snat": False}}}), 403, "PolicyNotAuthorized")
        added = n.put(f"/routers/{router['id']}/add_router_interface", json={"subnet_id": sub["id"]})
        assert added.status_code == 200, added.text
        info = added.json()
        assert info["subnet_id"] == sub["id"] and info["id"] == router["id"] and info["subnet_ids"] == [sub["id"]]
        interface = n.get(f"/ports/{info['port_id']}").json()["port"]
        assert interface["device_owner"] == "network:router_interface"
        assert interface["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.70.0.1"}]
        assert "already has a port" in neutron_error(n.put(f"/routers/{router['id']}/add_router_interface",
                                                           json={"subnet_id": sub["id"]}), 400, "BadRequest")
        neutron_error(n.put(f"/routers/{router['id']}/add_router_interface", json={}), 400, "BadRequest")
        by_port = port(n, other["network_id"])
        added2 = n.put(f"/routers/{router['id']}/add_router_interface", json={"port_id": by_port["id"]})
        assert added2.status_code == 200 and added2.json()["port_id"] == by_port["id"]
        neutron_error(n.delete(f"/ports/{info['port_id']}"), 409, "ServicePortInUse")
        # now it reaches
        associated = n.put(f"/floatingips/{fip['id']}", json={"floatingip": {"port_id": vm["id"]}})
        assert associated.status_code == 200, associated.text
        body = associated.json()["floatingip"]
        assert body["router_id"] == router["id"] and body["fixed_ip_address"] == vm["fixed_ips"][0]["ip_address"]
        assert body["status"] == "ACTIVE"
        neutron_error(n.post("/floatingips", json={"floatingip": {"floating_network_id": public["id"],
                                                                  "port_id": vm["id"]}}), 409,
                      "FloatingIPPortAlreadyAssociated")
        neutron_error(n.put(f"/routers/{router['id']}/remove_router_interface", json={"subnet_id": sub["id"]}),
                      409, "RouterInterfaceInUseByFloatingIP")
        neutron_error(n.put(f"/routers/{router['id']}", json={"router": {"external_gateway_info": {}}}), 409,
                      "RouterExternalGatewayInUseByFloatingIp")
        assert "still has ports" in neutron_error(n.delete(f"/routers/{router['id']}"), 409, "RouterInUse")
        # the port goes: its floating IP stays, unassociated
        assert n.delete(f"/ports/{vm['id']}").status_code == 204
        kept = n.get(f"/floatingips/{fip['id']}").json()["floatingip"]
        assert kept["port_id"] is None and kept["router_id"] is None
        for body_ in ({"subnet_id": sub["id"]}, {"port_id": by_port["id"]}):
            removed = n.put(f"/routers/{router['id']}/remove_router_interface", json=body_)
            assert removed.status_code == 200, removed.text
        neutron_error(n.put(f"/routers/{router['id']}/remove_router_interface", json={"subnet_id": sub["id"]}),
                      404, "RouterInterfaceNotFoundForSubnet")
        assert n.delete(f"/floatingips/{fip['id']}").status_code == 204
        assert n.delete(f"/routers/{router['id']}").status_code == 204
        neutron_error(n.get(f"/routers/{router['id']}"), 404, "RouterNotFound")
        with cloud.network_client(f"x:x{uuid.uuid4().hex[:6]}") as stranger:
            neutron_error(stranger.get(f"/floatingips/{fip['id']}"), 404, "FloatingIPNotFound")
        n.delete(f"/ports/{by_port['id']}")
        for net in n.get("/networks", params={"tenant_id": project}).json()["networks"]:
            assert n.delete(f"/networks/{net['id']}").status_code == 204, net
        assert admin.delete(f"/networks/{public['id']}").status_code == 204


def test_floating_ips_run_out(cloud: Cloud) -> None:
    with cloud.network_client() as admin:
        public = network(admin, **{"router:external": True})
        subnet(admin, public["id"], "172.25.0.0/30", gateway_ip=None)  # two addresses
        made = [create(admin, "floatingips", "floatingip", floating_network_id=public["id"]) for _ in range(2)]
        assert "Unable to find any IP address" in neutron_error(admin.post("/floatingips", json={"floatingip": {
            "floating_network_id": public["id"]}}), 400, "ExternalIpAddressExhausted")
        for fip in made:
            admin.delete(f"/floatingips/{fip['id']}")
        assert admin.delete(f"/networks/{public['id']}").status_code == 204
