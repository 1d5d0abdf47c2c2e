"""Nova's network info model built from Neutron's resources, and the server views read from it."""

from __future__ import annotations

from stratus.api import server_view
from stratus.metadata import network_data
from stratus.network import model

NET = {"id": "9d3c7f4e-1111-4a5b-8c6d-000000000001", "name": "private", "project_id": "p1", "mtu": 1450}
SUBNET = {"id": "s1", "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1", "ip_version": 4, "enable_dhcp": True,
          "dns_nameservers": ["10.0.0.2"], "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}],
          "dhcp_server": "10.0.0.3"}
PORT = {"id": "6a1f2b3c-2222-4a5b-8c6d-000000000002", "network_id": NET["id"], "mac_address": "fa:16:3e:00:00:01",
        "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.5"}], "status": "ACTIVE",
        "binding:vif_type": "bridge", "binding:vif_details": {"port_filter": True, "connectivity": "l2"}}
FIP = {"port_id": PORT["id"], "fixed_ip_address": "10.0.0.5", "floating_ip_address": "172.24.4.10"}


def _vif() -> dict:
    return model.vif(PORT, NET, {"s1": SUBNET}, [FIP], preserve_on_delete=True)


def test_vif_is_novas_model() -> None:
    vif = _vif()
    assert vif["id"] == PORT["id"] and vif["address"] == PORT["mac_address"] and vif["type"] == "bridge"
    assert vif["devname"] == "tap6a1f2b3c-22" and len(vif["devname"]) == 14
    assert vif["active"] is True and vif["preserve_on_delete"] is True and vif["vnic_type"] == "normal"
    net = vif["network"]
    assert net["bridge"] == "brq9d3c7f4e-11"  # linuxbridge's name when the binding gives none
    assert net["label"] == "private" and net["meta"]["tenant_id"] == "p1" and net["meta"]["mtu"] == 1450
    subnet = net["subnets"][0]
    assert subnet["gateway"] == {"address": "10.0.0.1", "type": "gateway", "version": 4, "meta": {}}
    assert subnet["dns"][0]["address"] == "10.0.0.2" and subnet["meta"]["dhcp_server"] == "10.0.0.3"
    assert subnet["routes"][0]["cidr"] == "192.168.0.0/16"
    assert subnet["ips"][0]["address"] == "10.0.0.5" and subnet["ips"][0]["type"] == "fixed"
    assert subnet["ips"][0]["floating_ips"][0]["address"] == "172.24.4.10"


def test_binding_bridge_name_wins_and_unbound_ports_are_inactive() -> None:
    port = {**PORT, "status": "DOWN", "binding:vif_details": {"bridge_name": "brqcustom"}}
    vif = model.vif(port, NET, {"s1": SUBNET}, [], preserve_on_delete=False)
    assert vif["network"]["bridge"] == "brqcustom" and vif["active"] is False
    unbound = model.vif({**PORT, "binding:vif_type": None, "binding:vif_details": {}}, NET, {}, [],
                        preserve_on_delete=False, default_bridge="br-int")
    assert unbound["type"] == "unbound" and unbound["network"]["bridge"] == "br-int"


def test_addresses_view_per_label_fixed_then_floating() -> None:
    info = [_vif()]
    assert server_view.addresses(info) == {"private": [
        {"version": 4, "addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": PORT["mac_address"]},
        {"version": 4, "addr": "172.24.4.10", "OS-EXT-IPS:type": "floating",
         "OS-EXT-IPS-MAC:mac_addr": PORT["mac_address"]}]}
    assert server_view.addresses(info, extended=False) == {"private": [{"version": 4, "addr": "10.0.0.5"},
                                                                       {"version": 4, "addr": "172.24.4.10"}]}


def test_metadata_reads_the_same_model() -> None:
    info = [_vif()]
    assert network_data.ec2_ip_info(info) == (["10.0.0.5"], ["172.24.4.10"])
    doc = network_data.network_metadata(info)
    assert doc is not None
    assert doc["links"][0]["vif_id"] == PORT["id"] and doc["links"][0]["type"] == "bridge"
    assert doc["networks"][0]["type"] == "ipv4_dhcp" and doc["networks"][0]["network_id"] == NET["id"]
