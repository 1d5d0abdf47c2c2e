"""The real ``openstack`` CLI against the all-in-one's Networking API, found in the catalog of the embedded
identity service (only the clouds.yaml the cloud wrote): network, subnet, port, security group rule, router and
floating IP commands, and their errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Cloud
from tests.functional.helpers import openstack_cli


@pytest.fixture(scope="module")
def cli(embedded_cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Any:
    assert embedded_cloud.clouds_yaml_path is not None
    return openstack_cli(embedded_cloud.clouds_yaml_path, tmp_path_factory.mktemp("cli-network"))


def test_openstack_network_commands(cli: Any) -> None:
    public = cli("network", "create", "--external", "cli-public", "-f", "json")
    assert public["router:external"] is True
    cli("subnet", "create", "--network", "cli-public", "--subnet-range", "203.0.113.0/24", "--no-dhcp",
        "cli-public-subnet", "-f", "json")
    net = cli("network", "create", "cli-net", "-f", "json")
    assert net["status"] == "ACTIVE" and net["mtu"] == 1450
    sub = cli("subnet", "create", "--network", "cli-net", "--subnet-range", "192.168.50.0/24",
              "--dns-nameserver", "192.0.2.53", "--allocation-pool", "start=192.168.50.10,end=192.168.50.20",
              "cli-subnet", "-f", "json")
    assert sub["gateway_ip"] == "192.168.50.1" and sub["dns_nameservers"] == ["192.0.2.53"]
    port = cli("port", "create", "--network", "cli-net", "--fixed-ip", "subnet=cli-subnet,ip-address=192.168.50.15",
               "cli-port", "-f", "json")
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "192.168.50.15"}]
    assert port["mac_address"].startswith("fa:16:3e:")
    taken = cli("port", "create", "--network", "cli-net", "--fixed-ip", "ip-address=192.168.50.15", "again",
                check=False)
    assert taken.returncode != 0 and "192.168.50.15 already allocated" in taken.stderr
    cli("security", "group", "create", "cli-web", "-f", "json")
    rule = cli("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", "--ingress",
               "cli-web", "-f", "json")
    assert (rule["protocol"], rule["port_range_min"], rule["port_range_max"]) == ("tcp", 22, 22)
    duplicate = cli("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", "--ingress",
                    "cli-web", check=False)
    assert duplicate.returncode != 0 and "Security group rule already exists" in duplicate.stderr
    router = cli("router", "create", "cli-router", "-f", "json")
    cli("router", "set", "--external-gateway", "cli-public", "cli-router")
    cli("router", "add", "subnet", "cli-router", "cli-subnet")
    shown = cli("router", "show", "cli-router", "-f", "json")
    assert shown["external_gateway_info"]["network_id"] == public["id"]
    fip = cli("floating", "ip", "create", "--port", "cli-port", "cli-public", "-f", "json")
    assert fip["fixed_ip_address"] == "192.168.50.15" and fip["router_id"] == router["id"]
    assert fip["floating_ip_address"].startswith("203.0.113.")
    listed = cli("port", "list", "--network", "cli-net", "-f", "json")
    assert "cli-port" in {p["Name"] for p in listed}
    cli("floating", "ip", "delete", fip["id"])
    cli("router", "remove", "subnet", "cli-router", "cli-subnet")
    cli("router", "unset", "--external-gateway", "cli-router")
    cli("router", "delete", "cli-router")
    cli("port", "delete", "cli-port")
    cli("security", "group", "delete", "cli-web")
    cli("network", "delete", "cli-net")
    cli("network", "delete", "cli-public")
    assert "cli-net" not in {n["Name"] for n in cli("network", "list", "-f", "json")}
