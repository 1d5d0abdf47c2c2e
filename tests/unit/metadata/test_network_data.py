"""network_data.json from Nova's network info model, the shape cloud-init reads (nova/virt/netutils.py)."""

from __future__ import annotations

from stratus.metadata import network_data


def _vif(**subnet: object) -> dict[str, object]:
    return {"id": "vif-1", "address": "fa:16:3e:aa:bb:cc", "type": "bridge", "devname": "tapvif-1",
            "network": {"id": "net-1", "meta": {"mtu": 1450}, "subnets": [{
                "cidr": "10.0.0.0/24", "gateway": {"address": "10.0.0.1"}, "dns": [{"address": "10.0.0.2"}],
                "routes": [{"cidr": "192.168.0.0/16", "gateway": {"address": "10.0.0.254"}}],
                "ips": [{"address": "10.0.0.5", "version": 4, "floating_ips": [{"address": "203.0.113.9"}]}],
                "meta": {}, **subnet}]}}


def test_none_without_vifs() -> None:
    assert network_data.network_metadata([]) is None
    assert network_data.ec2_ip_info([]) == ([], [])


def test_static_ipv4() -> None:
    doc = network_data.network_metadata([_vif()])
    assert doc == {
        "links": [{"id": "tapvif-1", "vif_id": "vif-1", "type": "bridge", "mtu": 1450,
                   "ethernet_mac_address": "fa:16:3e:aa:bb:cc"}],
        "networks": [{"id": "network0", "type": "ipv4", "link": "tapvif-1", "ip_address": "10.0.0.5",
                      "netmask": "255.255.255.0",
                      "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
                                 {"network": "192.168.0.0", "netmask": "255.255.0.0", "gateway": "10.0.0.254"}],
                      "network_id": "net-1", "services": [{"type": "dns", "address": "10.0.0.2"}]}],
        "services": [{"type": "dns", "address": "10.0.0.2"}]}
    assert network_data.ec2_ip_info([_vif()]) == (["10.0.0.5"], ["203.0.113.9"])


def test_dhcp_subnet_and_physical_link() -> None:
    vif = _vif(meta={"dhcp_server": "10.0.0.3"})
    vif["type"], vif["devname"] = "other", None
    doc = network_data.network_metadata([vif])
    assert doc is not None
    assert doc["links"][0]["id"] == "interface0" and doc["links"][0]["type"] == "phy"
    assert doc["links"][0]["mtu"] is None  # the DHCP server tells the guest its MTU
    assert doc["networks"] == [{"id": "network0", "type": "ipv4_dhcp", "link": "interface0", "network_id": "net-1"}]
