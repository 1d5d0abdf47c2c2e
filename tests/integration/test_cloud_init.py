"""A real cloud-init: the Debian guest scripts/cloud-guest.sh builds.

- Booted under QEMU TCG by the libvirt driver with a key pair, ``#cloud-config`` user data, an injected file
  (2.56) and a config drive. Everything is read where a user would look: the serial console through
  ``os-getConsoleOutput``. cloud-init must find the ConfigDrive datasource, install the key (its fingerprint
  table, in MD5 as the key pair's), run the user data (its marker) and write the injected file from the drive's
  ``openstack/content/``.
- The same cloud-init's OpenStack and EC2 metadata readers, run in a chroot of the guest's root file system on
  the host's loopback, reading the metadata API through the per-network proxy (until guests have networks, the
  way the OpenStack datasource is checked without a NIC).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from stratus.metadata import proxy
from tests.functional.helpers import boot, upload_image, wait_for_status, wait_gone
from tests.integration.guest import upload_guest

pytestmark = pytest.mark.integration
pytest.importorskip("libvirt", reason="libvirt-python is not installed (scripts/libvirt.sh install .venv)")

DONE = "STRATUS-CLOUD-INIT: done"


@pytest.fixture(scope="module")
def ci_cloud(libvirt_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    cloud = start_cloud(tmp_path_factory.mktemp("ci-cloud"), f"""
        [DEFAULT]
        compute_driver = libvirt.LibvirtDriver
        shutdown_timeout = 5
        reserved_host_memory_mb = 256
        [libvirt]
        connection_uri = {libvirt_uri}
        virt_type = qemu
        """)
    try:
        yield cloud
    finally:
        stop_cloud(cloud)
        if os.environ.get("STRATUS_SHOW_LOG"):
            print(cloud.log())


def _console(api: httpx.Client, server_id: str) -> str:
    resp = api.post(f"/servers/{server_id}/action", json={"os-getConsoleOutput": {"length": None}})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["output"])


def test_cloud_init_reads_the_config_drive(ci_cloud: Cloud, cloud_guest: Path) -> None:
    token = uuid.uuid4().hex[:12]
    user_data = f"""#cloud-config
authkey_hash: md5
write_files:
  - path: /var/tmp/stratus-marker
    content: |
      STRATUS-CLOUD-CONFIG: {token}
runcmd:
  - cat /var/tmp/stratus-marker /etc/stratus-injected > /dev/console
"""
    injected = f"STRATUS-INJECTED: {token}\n".encode()
    with ci_cloud.image_client() as images:
        guest = upload_guest(images, cloud_guest, name="cloud-init-guest",
                             cmdline=(cloud_guest / "cmdline").read_text().strip())
    with ci_cloud.client(version="2.56") as api:  # personality (injected files) ends at 2.56
        flavor = api.post("/flavors", json={"flavor": {"name": "ci.small", "ram": 512, "vcpus": 1, "disk": 2}})
        assert flavor.status_code == 200, flavor.text
        key = api.post("/os-keypairs", json={"keypair": {"name": "ci-key"}})
        assert key.status_code == 201, key.text
        keypair = key.json()["keypair"]
        started = time.monotonic()
        resp = boot(api, guest.disk_id, flavor=str(flavor.json()["flavor"]["id"]), name="ci-guest",
                    networks="none", key_name="ci-key", config_drive=True,
                    user_data=base64.b64encode(user_data.encode()).decode(),
                    personality=[{"path": "/etc/stratus-injected", "contents": base64.b64encode(injected).decode()}])
        assert resp.status_code == 202, resp.text
        server_id = str(resp.json()["server"]["id"])
        server = wait_for_status(api, server_id, {"ACTIVE", "ERROR"}, timeout=180)
        assert server["status"] == "ACTIVE", server
        active = time.monotonic() - started
        deadline = time.monotonic() + 420
        output = _console(api, server_id)
        while DONE not in output:
            assert time.monotonic() < deadline, f"cloud-init did not finish in time; console:\n{output[-4000:]}"
            time.sleep(2)
            output = _console(api, server_id)
        finished = time.monotonic() - started
        print(f"\ncloud-init guest: ACTIVE after {active:.1f}s, cloud-init done {finished:.1f}s after the POST")

        assert "Datasource DataSourceConfigDrive" in output, output[-4000:]
        assert f"STRATUS-CLOUD-CONFIG: {token}" in output  # the #cloud-config user data ran
        assert f"STRATUS-INJECTED: {token}" in output  # cloud-init wrote the drive's injected file
        # the key is installed for the default user: cloud-init's table shows its MD5 fingerprint
        assert re.search(r"Authorized keys from /home/debian/\.ssh/authorized_keys", output), output[-4000:]
        assert f"| ssh-rsa | {keypair['fingerprint']} |" in output, output[-4000:]
        done = next(line for line in output.splitlines() if line.startswith(DONE))
        assert f"instance-id {server_id} " in done + " "  # the datasource's instance id is the server's uuid
        assert re.search(r"hostname ci-guest(\.novalocal)?$", done.strip()), done

        assert api.delete(f"/servers/{server_id}").status_code == 204
        wait_gone(api, server_id, timeout=60)


SECRET = "ci-proxy-secret"
#: run by the guest's python3 in a chroot: cloud-init's own readers of the OpenStack and EC2 metadata trees (the
#: EC2 one pointed at the given URL, not at 169.254.169.254), their results as JSON
READER = """
import json, sys
from cloudinit.sources.helpers import ec2, openstack
url = sys.argv[1]
class Reader(openstack.MetadataReader):
    def _read_ec2_metadata(self):
        return ec2.get_instance_metadata(metadata_address=url, timeout=5, retries=0)
out = Reader(url, timeout=5, retries=0).read_v2()
print(json.dumps(out, default=lambda v: v.decode("latin-1") if isinstance(v, bytes) else repr(v)))
"""


@pytest.fixture(scope="module")
def md_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    cloud = start_cloud(tmp_path_factory.mktemp("ci-md-cloud"), f"""
        [neutron]
        service_metadata_proxy = True
        metadata_proxy_shared_secret = {SECRET}
        """)
    try:
        yield cloud
    finally:
        stop_cloud(cloud)


async def test_cloud_init_reads_the_metadata_api_through_the_proxy(md_cloud: Cloud, cloud_guest: Path) -> None:
    rootfs = cloud_guest / "rootfs"
    user_data = b"#cloud-config\nruncmd: [echo from-the-metadata-api]\n"
    with md_cloud.client(token="alice:p1", version="2.64") as api, md_cloud.image_client() as images:
        image = upload_image(images)
        key = api.post("/os-keypairs", json={"keypair": {"name": "md-key"}})
        assert key.status_code == 201, key.text
        public_key = key.json()["keypair"]["public_key"]
        resp = boot(api, image["id"], name="md-guest", networks="none", key_name="md-key",
                    user_data=base64.b64encode(user_data).decode())
        assert resp.status_code == 202, resp.text
        server = wait_for_status(api, resp.json()["server"]["id"], {"ACTIVE"})

    async def ports(network_id: str, address: str) -> proxy.Requester | None:
        if (network_id, address) == ("net-1", "127.0.0.1"):
            return proxy.Requester(server["id"], server["tenant_id"])
        return None

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    running = await proxy.serve(sock, "net-1", ports, SECRET, md_cloud.metadata_url)
    try:
        proc = await asyncio.create_subprocess_exec("chroot", str(rootfs), "python3", "-c", READER, url,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
    finally:
        await running.close()
    assert proc.returncode == 0, stderr.decode()
    out = json.loads(stdout)
    meta = out["metadata"]
    assert meta["uuid"] == server["id"] and meta["name"] == "md-guest" and meta["hostname"] == "md-guest.novalocal"
    assert meta["public_keys"] == {"md-key": public_key} and meta["project_id"] == server["tenant_id"]
    assert out["userdata"] == user_data.decode()
    assert out["vendordata"] == {} and out["networkdata"] == {} and out["files"] == {}
    ec2 = out["ec2-metadata"]  # cloud-init's crawl of the EC2 listings
    assert ec2["hostname"] == "md-guest.novalocal" and ec2["local-ipv4"] == "127.0.0.1"
    assert ec2["public-keys"] == {"md-key": public_key}  # "0=md-key" and its openssh-key, as cloud-init maps them
    assert ec2["placement"] == {"availability-zone": "nova"}
