"""scripts/all-in-one.sh and scripts/lib/install.sh in a copy of the repository whose ``.venv`` is a stand-in.

The stand-in ``pip`` and ``uv`` record how they were called (and "install" by creating the console scripts), the
stand-in ``stratus`` prints what the real ``cli.prepare`` makes of its arguments; so the scripts' own logic runs for
real (which installer, with which index settings, when, and what reaches the parser) without a download.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).parents[2]

_TOOL = """\
import json, os, pathlib, sys
bin_dir = pathlib.Path(sys.argv[0]).parent
name = pathlib.Path(sys.argv[0]).name
with open(os.environ["STAND_IN_LOG"], "a") as log:
    log.write(json.dumps({"tool": name, "args": sys.argv[1:], "SSL_CERT_FILE": os.environ.get("SSL_CERT_FILE"),
                          "UV_HTTP_TIMEOUT": os.environ.get("UV_HTTP_TIMEOUT")}) + "\\n")
args = sys.argv[1:]
if name == "pip" and args[:2] == ["config", "list"]:
    print(os.environ.get("STAND_IN_PIP_CONFIG", ""), end="")
elif name == "pip" and args == ["install", "-q", "uv"]:
    (bin_dir / "uv").write_text((bin_dir / "pip").read_text())
    (bin_dir / "uv").chmod(0o755)
elif "install" in args and "-e" in args:
    for script in ("openstack", "nova"):
        (bin_dir / script).write_text("#!/bin/sh\\n")
        (bin_dir / script).chmod(0o755)
"""

_SHOW = """\
import json, sys
from stratus import cli
run = cli.prepare(sys.argv[1:])
print(json.dumps({"command": run.command, "hosts": run.hosts, "state_path": run.conf.state_path,
                  "host_count": run.conf.fake_driver.host_count}))
"""


@dataclass
class StandIn:
    repo: Path
    log: Path
    tmp: Path

    @property
    def bin(self) -> Path:
        return self.repo / ".venv" / "bin"

    def run(self, *args: str, pip_config: str = "", **env: str) -> dict[str, Any]:
        full = {**os.environ, "PYTHONPATH": str(REPO), "STAND_IN_LOG": str(self.log),
                "STAND_IN_PIP_CONFIG": pip_config, **env}
        for name in ("STRATUS_STATE_PATH", "STRATUS_INSTALLER", "SSL_CERT_FILE", "UV_HTTP_TIMEOUT"):
            if name not in env:
                full.pop(name, None)
        proc = subprocess.run([str(self.repo / "scripts" / "all-in-one.sh"), *args], capture_output=True, text=True,
                              env=full, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def stand_in(tmp_path: Path) -> StandIn:
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "scripts", repo / "scripts")
    shutil.copy(REPO / "pyproject.toml", repo / "pyproject.toml")
    os.utime(repo / "pyproject.toml", (0, 0))  # older than any marker
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    _script(bin_dir / "python", "#!/bin/sh\nexit 0\n")  # there, so no venv is made; never run
    _script(bin_dir / "pip", f"#!{sys.executable}\n{_TOOL}")
    (tmp_path / "show.py").write_text(_SHOW)
    _script(bin_dir / "stratus", f'#!/bin/sh\nexec {sys.executable} {tmp_path / "show.py"} "$@"\n')
    return StandIn(repo, tmp_path / "calls.jsonl", tmp_path)


def _installed(stand_in: StandIn) -> None:
    for script in ("openstack", "nova"):
        _script(stand_in.bin / script, "#!/bin/sh\n")
    (stand_in.repo / ".venv" / ".installed").touch()


def test_common_options_reach_the_parser(stand_in: StandIn) -> None:
    _installed(stand_in)
    conf_file = stand_in.tmp / "aio.conf"
    conf_file.write_text("[fake_driver]\nhost_count = 2\n")
    seen = stand_in.run("--config-file", str(conf_file))
    assert seen == {"command": "all-in-one", "hosts": ["compute-1", "compute-2"],
                    "state_path": str(stand_in.repo / "data"), "host_count": 2}
    assert stand_in.calls() == []  # installed and current: nothing installed
    elsewhere = str(stand_in.tmp / "elsewhere")
    assert stand_in.run("--state-path", elsewhere)["state_path"] == elsewhere


PIP_CONFIG = """\
:env:.cache-dir='/tmp/pip-cache'
:env:.cert='/etc/ssl/certs/ca.pem'
:env:.default-timeout='180'
:env:.disable-pip-version-check='1'
:env:.find-links='/opt/env-wheels'
freeze.exclude='setuptools'
global.cert='/etc/ssl/certs/other.pem'
global.constraint='/etc/pip/constraints.txt'
global.extra-index-url='file:///opt/a/simple file:///opt/b/simple'
global.find-links='/opt/wheels'
global.index-url='https://global.invalid/simple'
install.index-url='https://install.invalid/simple'
"""


def test_a_venv_without_the_clients_gets_them_with_uv_and_pips_settings(stand_in: StandIn) -> None:
    """A venv from before the clients were part of it (stratus there, openstack missing) is completed; uv is
    installed by pip, then given pip's index settings, each as pip ranks them (environment, [install], [global])."""
    (stand_in.repo / ".venv" / ".installed").touch()
    stand_in.run(pip_config=PIP_CONFIG)
    calls = stand_in.calls()
    assert [c["tool"] for c in calls] == ["pip", "pip", "uv"]
    assert calls[1]["args"] == ["install", "-q", "uv"]
    uv = calls[2]
    assert uv["args"] == ["pip", "install", "-q", "--python", ".venv/bin/python",
                          "--index-strategy", "unsafe-best-match",
                          "--index-url", "https://install.invalid/simple",
                          "--extra-index-url", "file:///opt/a/simple", "--extra-index-url", "file:///opt/b/simple",
                          "--find-links", "/opt/env-wheels",
                          "--constraint", "/etc/pip/constraints.txt",
                          "-e", ".[clients]"]
    assert (uv["SSL_CERT_FILE"], uv["UV_HTTP_TIMEOUT"]) == ("/etc/ssl/certs/ca.pem", "180")
    assert (stand_in.bin / "openstack").exists() and (stand_in.bin / "nova").exists()
    marker = stand_in.repo / ".venv" / ".installed"
    assert marker.stat().st_mtime > (stand_in.repo / "pyproject.toml").stat().st_mtime
    stand_in.log.unlink()
    stand_in.run(pip_config=PIP_CONFIG)
    assert stand_in.calls() == []  # now complete: the next start installs nothing


def test_pip_installs_when_its_settings_cannot_be_handed_to_uv(stand_in: StandIn) -> None:
    stand_in.run(pip_config="global.only-binary=':all:'\n")
    assert [(c["tool"], c["args"]) for c in stand_in.calls()] == [
        ("pip", ["config", "list"]), ("pip", ["install", "-q", "--upgrade", "pip"]),
        ("pip", ["install", "-q", "-e", ".[clients]"])]


def test_stratus_installer_pip_chooses_pip(stand_in: StandIn) -> None:
    stand_in.run(STRATUS_INSTALLER="pip")
    assert [c["tool"] for c in stand_in.calls()] == ["pip", "pip"]


def test_the_clients_extra_names_both_clients() -> None:
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {r.split(">")[0] for r in extras["clients"]} == {"python-openstackclient", "python-novaclient"}
