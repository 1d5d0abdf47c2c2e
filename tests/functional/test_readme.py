"""The README's walkthrough, run as written against a real all-in-one with the embedded identity service.

The shell blocks of "Logging in" run line by line: ``openstack`` commands through ``helpers.openstack_cli`` with
the clouds.yaml the cloud wrote (entry ``stratus``, as ``export OS_CLOUD=stratus`` selects it), other commands in a
shell; the openstacksdk block runs as a program. The clouds.yaml and the first-start line the README shows are
compared with what the cloud wrote and printed. A line this test does not know how to run fails it, so the README
cannot gain a step nobody checks.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Cloud
from tests.functional.helpers import openstack_cli

README = Path(__file__).parents[2] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.DOTALL)


def _shape(value: Any) -> Any:
    """The keys of a mapping, nested; leaves stand for themselves only where they do not vary per cloud."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return "…"


@pytest.fixture(scope="module")
def cli(embedded_cloud: Cloud, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    assert embedded_cloud.clouds_yaml_path is not None
    return openstack_cli(embedded_cloud.clouds_yaml_path, tmp_path_factory.mktemp("readme"))


def test_the_first_start_line_and_clouds_yaml_are_what_the_cloud_writes(embedded_cloud: Cloud) -> None:
    section = _section("Logging in")
    shown_line = _blocks(section, "")[0].strip()
    pattern = re.escape(shown_line)
    pattern = pattern.replace(re.escape("3hJ…Qx"), r"\S+").replace(re.escape("/home/you/stratus/"), r"/\S+/")
    assert re.search(pattern, embedded_cloud.log()), (shown_line, embedded_cloud.log()[:2000])
    shown = yaml.safe_load(_blocks(section, "yaml")[0])
    assert embedded_cloud.clouds_yaml_path is not None
    written = yaml.safe_load(embedded_cloud.clouds_yaml_path.read_text())
    assert _shape(shown) == _shape(written)
    entry, real = shown["clouds"]["stratus"], written["clouds"]["stratus"]
    for key in ("auth_type", "region_name", "identity_api_version"):
        assert entry[key] == real[key], key
    for key in ("username", "project_name", "user_domain_name", "project_domain_name"):
        assert entry["auth"][key] == real["auth"][key], key
    assert real["auth"]["password"] == embedded_cloud.admin_password
    assert entry["auth"]["auth_url"].endswith("/v3") and real["auth"]["auth_url"] == embedded_cloud.identity_url


def _run_line(cli: Any, line: str) -> None:
    words = shlex.split(line, comments=True)
    if not words:
        return
    if words == [".", ".venv/bin/activate"]:
        assert Path(sys.executable).with_name("openstack").exists()  # the venv's own CLI is the one run
        return
    if words[0] == "export":
        assert words[1:] == ["OS_CLOUD=stratus"], line  # openstack_cli passes --os-cloud stratus
        return
    target = None
    if ">" in words:
        at = words.index(">")
        words, target = words[:at], words[at + 1]
    if words[0] == "openstack":
        proc = cli(*words[1:])
        if target:
            (cli.tmp / target).write_text(proc.stdout)
        return
    if words[0] == "head":
        subprocess.run(line, shell=True, check=True, cwd=cli.tmp, timeout=30)
        return
    pytest.fail(f"the README runs {line!r}, which this test does not know how to check")


def test_the_walkthrough_runs_as_written(cli, embedded_cloud: Cloud) -> None:  # type: ignore[no-untyped-def]
    section = _section("Logging in")
    walkthrough, administration = _blocks(section, "sh")
    for line in walkthrough.splitlines():
        _run_line(cli, line)
    admin = embedded_cloud.connect()  # checks and clean-up in process: each CLI run costs a second or two
    assert "PRIVATE KEY" in (cli.tmp / "my-key.pem").read_text()
    assert (cli.tmp / "disk.raw").stat().st_size == 64 << 20
    image = admin.image.find_image("my-image")
    assert image.status == "active" and image.visibility == "public"
    assert admin.compute.find_server("my-server") is None
    for line in administration.splitlines():
        _run_line(cli, line)
    demo = embedded_cloud.connect("demo", "s3cret", "demo")
    assert list(demo.compute.servers()) == []
    credentials = list(admin.identity.application_credentials(admin.current_user_id))
    assert [c.name for c in credentials] == ["ci"]

    # the openstacksdk block, as a program in the same directory (it reads disk.raw and clouds.yaml)
    program = _blocks(section, "python")[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(embedded_cloud.clouds_yaml_path)
    proc = subprocess.run([sys.executable, "-c", program], cwd=cli.tmp, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ACTIVE", "m1.tiny"]

    # nova, with the OS_* variables the README gives it (the README's URL is the default port; this cloud's differs)
    export = re.search(r"`(export OS_AUTH_URL=[^`]+)`", section)
    assert export is not None
    script = export.group(1).replace("http://127.0.0.1:5000/v3", embedded_cloud.identity_url)
    nova = Path(sys.executable).with_name("nova")
    for command in re.findall(r"`nova ([a-z-]+)`", section):
        proc = subprocess.run(["bash", "-c", f"{script}; exec {nova} {command}"], capture_output=True, text=True,
                              cwd=embedded_cloud.state_path.parent, env=env, timeout=60)
        assert proc.returncode == 0, (command, proc.stderr)
        assert "| ID" in proc.stdout, proc.stdout
        if command == "flavor-list":
            assert "m1.tiny" in proc.stdout

    # leave the shared cloud as it was
    admin.identity.delete_application_credential(admin.current_user_id, credentials[0].id)
    admin.identity.delete_user(admin.identity.find_user("demo"))
    admin.identity.delete_project(admin.identity.find_project("demo"))
    admin.compute.delete_keypair("my-key")
    for found in admin.image.images(name="my-image"):
        admin.image.delete_image(found)
