"""The whole path of guest networking, as a user drives it: the all-in-one with the libvirt driver (its libvirtd
inside the compute host's namespace), the embedded Networking API, its agents and data plane, and the metadata
proxy. Networks and ports through the Networking API, servers through the compute API; the test guest (TCG)
reports on its console what it got: a DHCP lease with its fixed IP, its peer answering ping, and its own
documents from the metadata service at 169.254.169.254. Nothing here touches the host's own network: every
address is inside the namespaces the cloud creates, and the test removes them all."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from stratus.network.dataplane import names
from tests.functional.helpers import wait_for_status, wait_gone
from tests.integration.conftest import SCRIPTS
from tests.integration.dataplane_env import require_root_tools
from tests.integration.guest import CMDLINE, upload_guest

pytestmark = pytest.mark.integration
libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (scripts/libvirt.sh install .venv)")
HOST = "nethost"
ADDRESSES = ("10.77.0.11", "10.77.0.12")


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


def _wait(what: str, check: Callable[[], Any], timeout: float = 240, interval: float = 1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def _console(api: httpx.Client, server_id: str) -> str:
    resp = api.post(f"/servers/{server_id}/action", json={"os-getConsoleOutput": {}})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["output"])


def test_guests_get_leases_reach_each_other_and_their_metadata(cloud: Cloud, test_guest: Path) -> None:
    started = time.monotonic()
    with cloud.image_client() as client:
        images = upload_guest(client, test_guest, cmdline=f"{CMDLINE} stratus.ping={','.join(ADDRESSES)}")
    with cloud.network_client() as net, cloud.client(version="2.64") as api:
        network = net.post("/networks", json={"network": {"name": "guests"}})
        assert network.status_code == 201, network.text
        network_id = network.json()["network"]["id"]
        subnet = net.post("/subnets", json={"subnet": {"network_id": network_id, "cidr": "10.77.0.0/24",
                                                       "ip_version": 4, "gateway_ip": "10.77.0.1"}})
        assert subnet.status_code == 201, subnet.text
        subnet_id = subnet.json()["subnet"]["id"]
        # ICMP in from the group's members (the default group already lets its members in)
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
        fingerprint = key.json()["keypair"]["fingerprint"]
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
        active = time.monotonic() - started
        macs = {p["fixed_ips"][0]["ip_address"]: p["mac_address"] for p in ports}
        for server_id, address, peer in ((servers[0], *ADDRESSES), (servers[1], *reversed(ADDRESSES))):
            text = _wait(f"{server_id}'s network report", lambda s=server_id: (lambda t: t if "STRATUS-PING-DONE"
                                                                                in t else None)(_console(api, s)))
            assert re.search(rf"STRATUS-IP: eth0 {re.escape(address)}/24 router=10\.77\.0\.1", text), text
            assert "169.254.169.254/32" in text, text   # the metadata route, by DHCP
            assert f"STRATUS-PING: {peer} ok" in text, text
            md = re.search(r"STRATUS-MD-NET: (\S+) (\S+) (\S+)", text)
            assert md is not None, text
            assert md.group(1) == server_id and md.group(3) == address, text   # its own documents, not its peer's
            assert f"STRATUS-MD-NET-KEY: {fingerprint}" in text, text
            assert "STRATUS-MD-NET-USERDATA: #!/bin/sh" in text, text
            assert f"STRATUS-MD-NET-MAC: {macs[address]}" in text, text   # network_data.json's link
        reported = time.monotonic() - started
        for port in ports:
            assert net.get(f"/ports/{port['id']}").json()["port"]["status"] == "ACTIVE"
        for server_id in servers:
            assert api.delete(f"/servers/{server_id}").status_code == 204
        for server_id in servers:
            wait_gone(api, server_id)
        # the user's ports stay, unbound, as Nova leaves them
        for port in ports:
            shown = net.get(f"/ports/{port['id']}").json()["port"]
            assert shown["device_id"] == "" and shown["binding:host_id"] == "", shown
    print(f"\nguest networking: both ACTIVE after {active:.1f} s, leases, pings and metadata by {reported:.1f} s")
