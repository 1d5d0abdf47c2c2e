"""A real cloud-init guest: the Debian image scripts/cloud-guest.sh builds, booted under QEMU TCG by the libvirt
driver with a key pair, ``#cloud-config`` user data, an injected file (2.56) and a config drive.

Everything is read where a user would look: the serial console through ``os-getConsoleOutput``. cloud-init must
find the ConfigDrive datasource, install the key (its fingerprint table, in MD5 as the key pair's), run the user
data (its marker) and write the injected file from the drive's ``openstack/content/``.
"""

from __future__ import annotations

import base64
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from tests.functional.helpers import boot, wait_for_status, wait_gone
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
