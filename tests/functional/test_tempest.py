"""tempest's own compute API tests against an all-in-one with the embedded identity (dynamic credentials: tempest
creates a project and user per test class through our Keystone API). Every test in
tests/tempest/include-list.txt must pass; the list grows with each feature."""

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


def test_tempest_compute_api(tmp_path: Path) -> None:
    (tmp_path / "cloud").mkdir()
    cloud = start_cloud(tmp_path / "cloud", auth_strategy="embedded")
    try:
        with cloud.image_client(_admin_token(cloud)) as images:
            image, alt = upload_image(images), upload_image(images)
        workspace = tmp_path / "tempest"
        bindir = Path(sys.executable).parent
        # a private workspace registry: tempest's ~/.tempest one refuses a name it has seen with another path
        subprocess.run([str(bindir / "tempest"), "init", "--workspace-path", str(tmp_path / "workspace.yaml"),
                        str(workspace)], check=True, capture_output=True)
        (workspace / "etc" / "tempest.conf").write_text(tempest_conf(
            cloud.identity_url, cloud.admin_password, image["id"], alt["id"], str(workspace)))
        proc = subprocess.run([str(bindir / "tempest"), "run", "--concurrency", "2", "--include-list",
                               str(INCLUDE_LIST)], cwd=workspace, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}"})
        summary = proc.stdout[proc.stdout.rfind("Totals"):]
        expected = len(INCLUDE_LIST.read_text().split())
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        assert f"Passed: {expected}" in summary, summary
    finally:
        stop_cloud(cloud)
