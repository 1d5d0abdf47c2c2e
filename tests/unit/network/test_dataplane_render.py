"""What the data plane writes into the kernel, rendered from Neutron's dicts: the security group tables, the
dnsmasq files and the router's NAT table (the integration tests load them into real namespaces)."""

from __future__ import annotations

from stratus.network.dataplane import dhcp, firewall, names, router

NET = {"id": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", "provider:segmentation_id": 1001, "mtu": 1450}
SUBNET = {"id": "s1", "cidr": "10.0.0.0/24", "ip_version": 4, "gateway_ip": "10.0.0.1", "enable_dhcp": True,
          "dns_nameservers": ["10.0.0.53"], "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.9"}]}


def _port(pid: str, ip: str, **kw: object) -> dict[str, object]:
    return {"id": pid, "network_id": NET["id"], "mac_address": "fa:16:3e:00:00:0" + pid[-1],
            "fixed_ips": [{"subnet_id": "s1", "ip_address": ip}], **kw}


def test_names_are_neutrons() -> None:
    assert names.bridge_name(NET["id"]) == "brq0b1c2d3e-4f"
    assert names.tap_name("a6b0c3d4-1111-2222") == "tapa6b0c3d4-11"
    assert names.segmentation_id(NET) == 1001
    assert names.segmentation_id({"id": "x"}) == names.segmentation_id({"id": "x"}) > 0
    assert len(names.fabric_port_name("a-very-long-compute-host-name.example.org")) <= 15


def test_security_group_rules_become_port_chains() -> None:
    rules = [{"direction": "egress", "ethertype": "IPv4"},
             {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22,
              "port_range_max": 22, "remote_ip_prefix": "192.0.2.0/24"},
             {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp", "port_range_min": 8},
             {"direction": "ingress", "ethertype": "IPv4", "remote_group_id": "g", "remote_ips": ["10.0.0.7"]},
             {"direction": "ingress", "ethertype": "IPv4", "remote_group_id": "empty", "remote_ips": []}]
    ports = [_port("p1", "10.0.0.5", security_group_rules=rules,
                   allowed_address_pairs=[{"ip_address": "10.0.0.100/32", "mac_address": "fa:16:3e:aa:aa:aa"}]),
             _port("p2", "10.0.0.6", port_security_enabled=False)]
    tables = firewall.render(ports)
    inet, bridge = tables[firewall.INET_TABLE], tables[firewall.BRIDGE_TABLE]
    assert "meta nfproto ipv4 tcp dport 22 ip saddr 192.0.2.0/24 accept" in inet
    assert "meta l4proto 1 icmp type 8 accept" in inet
    assert "ip saddr { 10.0.0.7 } accept" in inet
    accepted = [line for line in inet.splitlines() if line.endswith(" accept")]
    assert len(accepted) == 6  # established, DHCP, ND and the 3 rules that can match (not the empty group)
    assert "ct state established,related return" in inet  # stateful egress
    assert 'iifname "brq0b1c2d3e-4f" counter ct zone set 1' in inet
    # Only p1 is filtered: p2 has port security off.
    assert '"tapp1"' in bridge and '"tapp2"' not in bridge and "egress-2" not in inet
    assert "ether saddr fa:16:3e:00:00:01 ip saddr 10.0.0.5/32 accept" in bridge
    assert "ether saddr fa:16:3e:aa:aa:aa ip saddr 10.0.0.100/32 accept" in bridge
    assert bridge.rstrip().endswith("    counter drop\n  }")  # anything else from the tap is spoofed


def test_icmp_in_an_ipv6_rule_is_icmpv6() -> None:
    rules = [{"direction": "ingress", "ethertype": "IPv6", "protocol": "icmp", "remote_ip_prefix": "2001:db8::/64"},
             {"direction": "ingress", "ethertype": "IPv6", "protocol": "tcp", "remote_ip_prefix": "192.0.2.0/24"}]
    inet = firewall.render([_port("p1", "10.0.0.5", security_group_rules=rules)])[firewall.INET_TABLE]
    assert "meta nfproto ipv6 meta l4proto 58 ip6 saddr 2001:db8::/64 accept" in inet
    assert "192.0.2.0" not in inet   # an IPv4 prefix in an IPv6 rule matches nothing


def test_no_filtered_ports_leaves_no_bridge_table() -> None:
    assert firewall.render([])[firewall.BRIDGE_TABLE] == ""
    assert firewall.render([_port("p2", "10.0.0.6", port_security_enabled=False)])[firewall.BRIDGE_TABLE] == ""


def test_dnsmasq_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = dhcp.DhcpServer(str(tmp_path), "h", NET["id"])
    ports = [_port("p9", "10.0.0.2", device_owner="network:dhcp"), _port("p1", "10.0.0.5")]
    files = server.render(NET, [SUBNET], ports)
    assert files["host"] == "fa:16:3e:00:00:01,host-10-0-0-5,10.0.0.5\nfa:16:3e:00:00:09,host-10-0-0-2,10.0.0.2\n"
    opts = files["opts"].splitlines()
    assert "tag:subnet-s1,option:router,10.0.0.1" in opts
    assert "tag:subnet-s1,option:dns-server,10.0.0.53" in opts
    assert ("tag:subnet-s1,option:classless-static-route,169.254.169.254/32,10.0.0.2,192.168.0.0/16,10.0.0.9,"
            "0.0.0.0/0,10.0.0.1") in opts
    assert "tag:subnet-s1,option:mtu,1450" in opts
    assert files["args"] == "--dhcp-range=set:subnet-s1,10.0.0.0,static,255.255.255.0,86400s\n"
    no_gateway = server.render(NET, [{**SUBNET, "gateway_ip": None, "host_routes": []}], ports)
    assert "tag:subnet-s1,option:router" in no_gateway["opts"].splitlines()   # an empty router option


def test_router_nat() -> None:
    ext_subnet = {"id": "e1", "cidr": "172.24.4.0/24", "gateway_ip": "172.24.4.1"}
    gateway = {"id": "g1234567890abc", "fixed_ips": [{"subnet_id": "e1", "ip_address": "172.24.4.10"}],
               "subnets": [ext_subnet]}
    inside = {**_port("r1", "10.0.0.1"), "subnets": [SUBNET]}
    fip = {"floating_ip_address": "172.24.4.20", "fixed_ip_address": "10.0.0.5"}
    nat = router.render_nat({"id": "r"}, [inside], gateway, [fip])
    assert "ip daddr 172.24.4.20 dnat to 10.0.0.5" in nat
    assert 'oifname "qg-g1234567890" ip saddr 10.0.0.5 snat to 172.24.4.20' in nat
    assert 'oifname "qg-g1234567890" ip saddr { 10.0.0.0/24 } snat to 172.24.4.10' in nat
    no_snat = router.render_nat({"id": "r", "external_gateway_info": {"enable_snat": False}}, [inside], gateway, [])
    assert "snat" not in no_snat
    assert router.render_nat({"id": "r"}, [inside], None, [fip]) == ""
