"""tempest's own compute and network API tests against an all-in-one with the embedded identity (dynamic
credentials: tempest creates a project and user per test class through our Keystone API). Every test in
tests/tempest/include-list.txt must pass; the list grows with each feature. The network tests run in a tempest of
their own with the network service on, the compute tests with it off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from tests.functional.helpers import upload_image
from tests.tempest.config import tempest_conf

INCLUDE_LIST = Path(__file__).resolve().parents[1] / "tempest" / "include-list.txt"


def _admin_token(cloud: Cloud) -> str:
    resp = httpx.post(f"{cloud.identity_url}/auth/tokens?nocatalog", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": cloud.admin_password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}, timeout=30)
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"]


NETWORK_TESTS = "tempest.api.network."


#: compute tests of a server's networking (its addresses, the security group proxies and actions): they run with
#: the network service on, in the network tests' tempest
NETWORKED_COMPUTE_TESTS = ("tempest.api.compute.servers.test_server_addresses",
                           "tempest.api.compute.security_groups.")


def _listed(network: bool) -> list[str]:
    """The include list's compute tests, or the tests that run with the network service on: the network tests and
    the compute tests of servers' networking."""
    return [t for t in INCLUDE_LIST.read_text().split()
            if t.startswith((NETWORK_TESTS, *NETWORKED_COMPUTE_TESTS)) == network]


def _run_tempest(tmp_path: Path, tests: list[str], with_network: bool) -> None:
    (tmp_path / "cloud").mkdir()
    cloud = start_cloud(tmp_path / "cloud", auth_strategy="embedded")
    try:
        token = _admin_token(cloud)
        with cloud.image_client(token) as images:
            image, alt = upload_image(images), upload_image(images)
        public = None
        if with_network:  # the external network tempest's floating IP and router tests use
            with httpx.Client(base_url=cloud.network_url + "/v2.0", headers={"X-Auth-Token": token}) as n:
                created = n.post("/networks", json={"network": {"name": "public", "router:external": True}})
                public = created.json()["network"]["id"]
                n.post("/subnets", json={"subnet": {"network_id": public, "cidr": "172.24.0.0/16",
                                                    "ip_version": 4}}).raise_for_status()
        workspace = tmp_path / "tempest"
        bindir = Path(sys.executable).parent
        # a private workspace registry: tempest's ~/.tempest one refuses a name it has seen with another path
        subprocess.run([str(bindir / "tempest"), "init", "--workspace-path", str(tmp_path / "workspace.yaml"),
                        str(workspace)], check=True, capture_output=True)
        (workspace / "etc" / "tempest.conf").write_text(tempest_conf(
            cloud.identity_url, cloud.admin_password, image["id"], alt["id"], str(workspace), public))
        listed = tmp_path / "include-list.txt"
        listed.write_text("\n".join(tests) + "\n")
        proc = subprocess.run([str(bindir / "tempest"), "run", "--concurrency", "2", "--include-list",
                               str(listed)], cwd=workspace, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}"})
        summary = proc.stdout[proc.stdout.rfind("Totals"):]
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        assert f"Passed: {len(tests)}" in summary, summary
    finally:
        stop_cloud(cloud)


def test_tempest_compute_api(tmp_path: Path) -> None:
    """The compute tests with no network service (the compute API has no networking of its own yet)."""
    _run_tempest(tmp_path, _listed(network=False), with_network=False)


def test_tempest_network_api(tmp_path: Path) -> None:
    """The network tests, with ``[service_available] neutron = true`` and an external network."""
    _run_tempest(tmp_path, _listed(network=True), with_network=True)
