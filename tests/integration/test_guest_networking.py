"""The whole path of guest networking, as a user drives it: the all-in-one with the libvirt driver (its libvirtd
inside the compute host's namespace), the embedded Networking API, its agents and data plane, and the metadata
proxy. Networks, ports, security groups, routers and floating IPs through the Networking API, servers through the
compute API and the openstack CLI; the test guest (TCG) reports on its console what it got: a DHCP lease with its
fixed IP, its peer answering ping, its own documents from the metadata service at 169.254.169.254, and then, while
it runs, each change in whether its peer and the external network answer (``stratus.watch``) and each NIC
hot-plugged or unplugged.

The two guests boot once for the module; the tests after the first reuse them, in order: a security group rule
opens and closes ICMP between them, a floating IP reaches one from the external network (and both reach out
through the router), and ``openstack server add port`` / ``server remove port`` hot-plug a NIC. Nothing here
touches the host's own network: every address is inside the namespaces the cloud creates or the one the test
makes on the external network, and the test removes them all."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from stratus.network.dataplane import bridges, names
from stratus.network.dataplane import netns as nsutil
from tests.functional.helpers import openstack_cli, wait_for_status, wait_gone
from tests.integration.conftest import SCRIPTS
from tests.integration.dataplane_env import require_root_tools
from tests.integration.guest import CMDLINE, console, upload_guest, wait

pytestmark = pytest.mark.integration
libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (scripts/libvirt.sh install .venv)")
HOST = "nethost"
ADDRESSES = ("10.77.0.11", "10.77.0.12")
OUTSIDE = "172.24.4.1"   # the test's own address on the external network (its subnet's gateway, as upstream)
#: what each guest keeps pinging: its peer's address (guest 0 watches guest 1) and the external network's
WATCH = (ADDRESSES[1], OUTSIDE)


@pytest.fixture(scope="module")
def netns_libvirt() -> Iterator[str]:
    """A private libvirtd inside ``stratus-host-nethost``, the compute host's namespace (its guests' taps live
    there, beside the bridges the agents make)."""
    require_root_tools()
    directory = tempfile.mkdtemp(prefix="lvn", dir="/tmp")
    proc = subprocess.run([str(SCRIPTS / "libvirt.sh"), "start", directory, names.host_namespace(HOST)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"libvirt.sh failed:\n{proc.stdout}\n{proc.stderr}")
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(SCRIPTS / "libvirt.sh"), "stop", directory], check=False, timeout=120)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def cloud(netns_libvirt: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    cloud = start_cloud(tmp_path_factory.mktemp("net-cloud"), f"""
        [DEFAULT]
        host = {HOST}
        compute_driver = libvirt.LibvirtDriver
        shutdown_timeout = 5
        reserved_host_memory_mb = 256
        [libvirt]
        connection_uri = {netns_libvirt}
        virt_type = qemu
        [neutron]
        service_metadata_proxy = True
        metadata_proxy_shared_secret = guest-networking-test
        """)
    try:
        yield cloud
    finally:
        stop_cloud(cloud)
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "stratus"), "netns-cleanup"],
                       check=False, timeout=120, capture_output=True)
        if os.environ.get("STRATUS_SHOW_LOG"):
            print(cloud.log())


@dataclasses.dataclass
class Guests:
    """The two running guests of the module and what they were booted with."""

    api: httpx.Client
    net: httpx.Client
    servers: list[str]
    ports: list[dict[str, Any]]
    network_id: str
    subnet_id: str
    fingerprint: str
    timings: dict[str, float]


@pytest.fixture(scope="module")
def guests(cloud: Cloud, test_guest: Path) -> Iterator[Guests]:
    """Two guests on one network, each on a port the test made (in the project's default group, which lets its
    members in), booted through the compute API and ACTIVE."""
    started = time.monotonic()
    with cloud.image_client() as client:
        images = upload_guest(client, test_guest, cmdline=f"{CMDLINE} stratus.ping={','.join(ADDRESSES)} "
                                                          f"stratus.watch={','.join(WATCH)}")
    with cloud.network_client() as net, cloud.client(version="2.64") as api:
        network = net.post("/networks", json={"network": {"name": "guests"}})
        assert network.status_code == 201, network.text
        network_id = network.json()["network"]["id"]
        subnet = net.post("/subnets", json={"subnet": {"network_id": network_id, "cidr": "10.77.0.0/24",
                                                       "ip_version": 4, "gateway_ip": "10.77.0.1"}})
        assert subnet.status_code == 201, subnet.text
        subnet_id = subnet.json()["subnet"]["id"]
        ports = []
        for address in ADDRESSES:
            port = net.post("/ports", json={"port": {"network_id": network_id,
                                                     "fixed_ips": [{"subnet_id": subnet_id, "ip_address": address}]}})
            assert port.status_code == 201, port.text
            ports.append(port.json()["port"])
        flavor = api.post("/flavors", json={"flavor": {"name": "net-tiny", "ram": 128, "vcpus": 1, "disk": 1}})
        assert flavor.status_code == 200, flavor.text
        key = api.post("/os-keypairs", json={"keypair": {"name": "guest-key"}})
        assert key.status_code in (200, 201), key.text
        servers = []
        for i, port in enumerate(ports):
            resp = api.post("/servers", json={"server": {
                "name": f"guest{i}", "imageRef": images.disk_id, "flavorRef": flavor.json()["flavor"]["id"],
                "networks": [{"port": port["id"]}], "key_name": "guest-key",
                "user_data": base64.b64encode(f"#!/bin/sh\necho guest{i}\n".encode()).decode()}})
            assert resp.status_code == 202, resp.text
            servers.append(resp.json()["server"]["id"])
        for server_id in servers:
            server = wait_for_status(api, server_id, "ACTIVE", timeout=240)
            assert [a["addr"] for a in server["addresses"]["guests"]] in ([ADDRESSES[0]], [ADDRESSES[1]])
        yield Guests(api=api, net=net, servers=servers, ports=ports, network_id=network_id, subnet_id=subnet_id,
                     fingerprint=key.json()["keypair"]["fingerprint"],
                     timings={"active": time.monotonic() - started})


def _reach(api: httpx.Client, server_id: str, address: str) -> str | None:
    """What the guest last said of ``address`` (``ok`` or ``fail``): it prints each change."""
    found = re.findall(rf"STRATUS-REACH: {re.escape(address)} (ok|fail)\b", console(api, server_id))
    return found[-1] if found else None


def _until_reach(g: Guests, server: int, address: str, state: str, timeout: float = 60) -> float:
    """Wait until guest ``server`` finds ``address`` ``state``; returns the seconds it took."""
    started = time.monotonic()
    wait(f"guest{server} to find {address} {state}", lambda: _reach(g.api, g.servers[server], address) == state,
         timeout=timeout, interval=1)
    return time.monotonic() - started


def _console_with(g: Guests, server: int, marker: str) -> str | None:
    """Guest ``server``'s console once it shows ``marker``, else None."""
    text = console(g.api, g.servers[server])
    return text if marker in text else None


def _ping(namespace: str, address: str) -> bool:
    return nsutil.run(namespace, ["busybox", "ping", "-c", "1", "-W", "1", address], check=False,
                      timeout=30).returncode == 0


def _ping_until(namespace: str, address: str, expect: bool, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        ok = _ping(namespace, address)
        if ok == expect or time.monotonic() > deadline:
            return ok
        time.sleep(0.3)


def _created(resp: httpx.Response, code: int = 201) -> dict[str, Any]:
    assert resp.status_code == code, resp.text
    (body,) = resp.json().values()
    return dict(body)


def test_guests_get_leases_reach_each_other_and_their_metadata(guests: Guests) -> None:
    g, started = guests, time.monotonic()
    macs = {p["fixed_ips"][0]["ip_address"]: p["mac_address"] for p in g.ports}
    for server_id, address, peer in ((g.servers[0], *ADDRESSES), (g.servers[1], *reversed(ADDRESSES))):
        text = wait(f"{server_id}'s network report", lambda i=g.servers.index(server_id): _console_with(
            g, i, "STRATUS-PING-DONE"), timeout=240, interval=1)
        assert re.search(rf"STRATUS-IP: eth0 {re.escape(address)}/24 router=10\.77\.0\.1", text), text
        assert "169.254.169.254/32" in text, text   # the metadata route, by DHCP
        assert f"STRATUS-PING: {peer} ok" in text, text
        md = re.search(r"STRATUS-MD-NET: (\S+) (\S+) (\S+)", text)
        assert md is not None, text
        assert md.group(1) == server_id and md.group(3) == address, text   # its own documents, not its peer's
        assert f"STRATUS-MD-NET-KEY: {g.fingerprint}" in text, text
        assert "STRATUS-MD-NET-USERDATA: #!/bin/sh" in text, text
        assert f"STRATUS-MD-NET-MAC: {macs[address]}" in text, text   # network_data.json's link
    for port in g.ports:
        assert g.net.get(f"/ports/{port['id']}").json()["port"]["status"] == "ACTIVE"
    print(f"\nguest networking: both ACTIVE after {g.timings['active']:.1f} s, leases, pings and metadata "
          f"{time.monotonic() - started:.1f} s later")


def test_a_security_group_rule_opens_and_closes_icmp_between_the_guests(guests: Guests) -> None:
    """Guest 1's port moves to a group of its own that lets nothing in: guest 0's pings stop; an ingress ICMP rule
    from the guests' subnet lets them through, and deleting it stops them again."""
    g = guests
    opened = _until_reach(g, 0, ADDRESSES[1], "ok")   # in the default group together: members let each other in
    group = _created(g.net.post("/security-groups", json={"security_group": {"name": "icmp-gate"}}))
    default = g.ports[1]["security_groups"]
    moved = g.net.put(f"/ports/{g.ports[1]['id']}", json={"port": {"security_groups": [group["id"]]}})
    assert moved.status_code == 200, moved.text
    closed = _until_reach(g, 0, ADDRESSES[1], "fail")
    rule = _created(g.net.post("/security-group-rules", json={"security_group_rule": {
        "security_group_id": group["id"], "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
        "remote_ip_prefix": "10.77.0.0/24"}}))
    by_rule = _until_reach(g, 0, ADDRESSES[1], "ok")
    assert g.net.delete(f"/security-group-rules/{rule['id']}").status_code == 204
    without = _until_reach(g, 0, ADDRESSES[1], "fail")
    back = g.net.put(f"/ports/{g.ports[1]['id']}", json={"port": {"security_groups": default}})
    assert back.status_code == 200, back.text
    _until_reach(g, 0, ADDRESSES[1], "ok")
    assert g.net.delete(f"/security-groups/{group['id']}").status_code == 204
    print(f"\nsecurity groups: first answer {opened:.1f} s, closed by the empty group {closed:.1f} s, opened by the "
          f"rule {by_rule:.1f} s, closed by its delete {without:.1f} s")


def test_a_floating_ip_reaches_a_guest_from_the_external_network(guests: Guests) -> None:
    """An external network, a router with its gateway there and an interface on the guests' subnet, and a
    floating IP on guest 0's port, all through the Networking API: a namespace the test puts on the external
    network (it knows only that subnet) pings the floating IP while guest 0's group lets ICMP in from there, and
    not once the floating IP is disassociated. Both guests reach that namespace too, through the router's NAT
    (guest 0 as its floating IP, guest 1 as the router's gateway address): it could not answer them otherwise."""
    g, started = guests, time.monotonic()
    ext = _created(g.net.post("/networks", json={"network": {"name": "public", "router:external": True}}))
    ext_subnet = _created(g.net.post("/subnets", json={"subnet": {
        "network_id": ext["id"], "cidr": "172.24.4.0/24", "ip_version": 4, "gateway_ip": OUTSIDE,
        "enable_dhcp": False, "allocation_pools": [{"start": "172.24.4.10", "end": "172.24.4.100"}]}}))
    router = _created(g.net.post("/routers", json={"router": {
        "name": "edge", "external_gateway_info": {"network_id": ext["id"]}}}))
    added = g.net.put(f"/routers/{router['id']}/add_router_interface", json={"subnet_id": g.subnet_id})
    assert added.status_code == 200, added.text
    rule = _created(g.net.post("/security-group-rules", json={"security_group_rule": {
        "security_group_id": g.ports[0]["security_groups"][0], "direction": "ingress", "ethertype": "IPv4",
        "protocol": "icmp", "remote_ip_prefix": ext_subnet["cidr"]}}))
    outside = f"gn-out-{uuid.uuid4().hex[:8]}"
    fake_port = str(uuid.uuid4())
    try:
        mac = "fa:16:3e:" + ":".join(fake_port.replace("-", "")[i:i + 2] for i in (0, 2, 4))
        bridges.plug_veth(HOST, g.net.get(f"/networks/{ext['id']}").json()["network"], fake_port, outside, "eth0",
                          mac)
        nsutil.run(outside, ["ip", "addr", "add", f"{OUTSIDE}/24", "dev", "eth0"])
        fip = _created(g.net.post("/floatingips", json={"floatingip": {
            "floating_network_id": ext["id"], "port_id": g.ports[0]["id"]}}))
        address = fip["floating_ip_address"]
        assert _ping_until(outside, address, True), f"{address} does not answer from the external network"
        reached = time.monotonic() - started
        # the compute heard network-changed: the server shows its floating IP
        shown = wait("the floating IP in the server's addresses", lambda: [
            a for a in g.api.get(f"/servers/{g.servers[0]}").json()["server"]["addresses"]["guests"]
            if a["OS-EXT-IPS:type"] == "floating"], timeout=30)
        assert [a["addr"] for a in shown] == [address]
        _until_reach(g, 0, OUTSIDE, "ok")   # out as its floating IP
        _until_reach(g, 1, OUTSIDE, "ok")   # out as the router's gateway address (SNAT)
        off = g.net.put(f"/floatingips/{fip['id']}", json={"floatingip": {"port_id": None}})
        assert off.status_code == 200, off.text
        assert not _ping_until(outside, address, False), f"{address} still answers after the disassociation"
        assert g.net.delete(f"/floatingips/{fip['id']}").status_code == 204
        print(f"\nfloating IP: router and floating IP answering {reached:.1f} s, NAT both ways and the "
              f"disassociation checked by {time.monotonic() - started:.1f} s")
    finally:
        bridges.unplug(HOST, fake_port)
        nsutil.remove(outside)
        g.net.delete(f"/security-group-rules/{rule['id']}")


def test_openstack_server_add_and_remove_port_hot_plug_a_nic(cloud: Cloud, guests: Guests, tmp_path: Path) -> None:
    """The real openstack CLI plugs a port of another network into guest 0 while it runs: the guest sees eth1 with
    the port's MAC and gets the port's address on it by DHCP; removing the port takes the NIC away again, and the
    port, the user's, stays unbound."""
    g, started = guests, time.monotonic()
    other = _created(g.net.post("/networks", json={"network": {"name": "plugged"}}))
    # no gateway: the second lease routes nothing the first one does
    sub = _created(g.net.post("/subnets", json={"subnet": {"network_id": other["id"], "cidr": "10.78.0.0/24",
                                                           "ip_version": 4, "gateway_ip": None}}))
    port = _created(g.net.post("/ports", json={"port": {
        "network_id": other["id"], "fixed_ips": [{"subnet_id": sub["id"], "ip_address": "10.78.0.11"}]}}))
    cli = openstack_cli(cloud.clouds_yaml(tmp_path / "clouds.yaml"), tmp_path)
    cli("server", "add", "port", g.servers[0], port["id"])
    text = wait("eth1's lease", lambda: _console_with(g, 0, "STRATUS-IP: eth1 "), timeout=120, interval=1)
    assert f"STRATUS-NET: eth1 {port['mac_address']}" in text, text
    assert "STRATUS-IP: eth1 10.78.0.11/24" in text, text
    plugged = time.monotonic() - started
    shown = cli("server", "show", g.servers[0], "-f", "json")
    assert shown["addresses"]["plugged"] == ["10.78.0.11"], shown["addresses"]
    assert g.net.get(f"/ports/{port['id']}").json()["port"]["status"] == "ACTIVE"
    cli("server", "remove", "port", g.servers[0], port["id"])
    wait("eth1 to go", lambda: _console_with(g, 0, "STRATUS-NET-GONE: eth1"), timeout=120, interval=1)
    wait("the port unbound", lambda: g.net.get(f"/ports/{port['id']}").json()["port"]["device_id"] == "",
         timeout=30)
    kept = g.net.get(f"/ports/{port['id']}").json()["port"]
    assert kept["binding:host_id"] == "", kept
    assert set(cli("server", "show", g.servers[0], "-f", "json")["addresses"]) == {"guests"}
    print(f"\nhot plug: eth1 with its lease {plugged:.1f} s, gone again by {time.monotonic() - started:.1f} s")


def test_deleting_the_guests_leaves_the_users_ports_unbound(guests: Guests) -> None:
    g = guests
    for server_id in g.servers:
        assert g.api.delete(f"/servers/{server_id}").status_code == 204
    for server_id in g.servers:
        wait_gone(g.api, server_id)
    for port in g.ports:   # the user's ports stay, unbound, as Nova leaves them
        shown = g.net.get(f"/ports/{port['id']}").json()["port"]
        assert shown["device_id"] == "" and shown["binding:host_id"] == "", shown
