"""The real `openstack` CLI, as a user runs it from the README, against a running all-in-one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import Cloud
from tests.functional.helpers import openstack_cli

OPENSTACK = str(Path(sys.executable).with_name("openstack"))


@pytest.fixture(scope="module")
def cli(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("cli")
    return openstack_cli(cloud.clouds_yaml(tmp / "clouds.yaml"), tmp)


def test_boot_list_show_delete_with_the_cli(cli) -> None:  # type: ignore[no-untyped-def]
    disk = cli.tmp / "disk.raw"
    disk.write_bytes(b"\0" * 65536)
    image = cli("image", "create", "--file", str(disk), "--disk-format", "raw", "--container-format", "bare",
                "--public", "cli-image", "-f", "json")
    assert image["status"] == "active"
    flavors = {f["Name"] for f in cli("flavor", "list", "-f", "json")}
    assert {"m1.tiny", "m1.small"} <= flavors
    key = cli("keypair", "create", "cli-key")
    assert "PRIVATE KEY" in key.stdout
    server = cli("server", "create", "--image", "cli-image", "--flavor", "m1.tiny", "--key-name", "cli-key",
                 "--nic", "none", "--wait", "cli-vm", "-f", "json")
    assert server["status"] == "ACTIVE"
    assert server["key_name"] == "cli-key"
    listed = cli("server", "list", "-f", "json")
    assert any(s["Name"] == "cli-vm" and s["Status"] == "ACTIVE" for s in listed)
    shown = cli("server", "show", "cli-vm", "-f", "json")
    assert shown["id"] == server["id"]
    cli("server", "delete", "--wait", "cli-vm")
    assert not any(s["Name"] == "cli-vm" for s in cli("server", "list", "-f", "json"))
    cli("keypair", "delete", "cli-key")
    cli("image", "delete", "cli-image")


def test_cli_reports_errors(cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("server", "create", "--image", "no-such-image", "--flavor", "m1.tiny", "x", check=False)
    assert proc.returncode != 0
    assert "No Image found" in proc.stderr or "no-such-image" in proc.stderr
    proc = cli("server", "show", "no-such-server", check=False)
    assert proc.returncode != 0
