"""A transport_url or [database] connection the process cannot use stops the start with one line and exit code 2,
and a bad transport stops it before the migrations touch the database; so do networking options the networking
server cannot use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stratus.local_cloud import free_port


def _start(tmp_path: Path, conf: str, command: str = "conductor") -> subprocess.CompletedProcess[str]:
    config = tmp_path / "stratus.conf"
    config.write_text(f"[DEFAULT]\nstate_path = {tmp_path / 'data'}\n{conf}")
    return subprocess.run([sys.executable, "-m", "stratus.cli", "--config-file", str(config), *command.split()],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


@pytest.mark.parametrize(("conf", "line"), [
    ("transport_url = kafka://u:secret@127.0.0.1/\n",
     "stratus: transport_url kafka://u:***@127.0.0.1/: no transport for scheme 'kafka'"),
    ("transport_url = rabbit://u:secret@mq:5x/\n",
     "stratus: transport_url rabbit://u:***@mq:5x/: port '5x' of mq is not a number"),
    ("transport_url = rabbit://u:secret@127.0.0.1:{port},u:secret@127.0.0.1:{port2}/\n"
     "[oslo_messaging_rabbit]\nrabbit_retry_interval = 0.1\n",
     "stratus: transport_url rabbit://u@127.0.0.1:{port},u@127.0.0.1:{port2}/: no broker answered after 3 rounds"),
])
def test_bad_transport_is_one_line_before_migrations(tmp_path: Path, conf: str, line: str) -> None:
    port, port2 = free_port(), free_port()  # nothing listens there
    proc = _start(tmp_path, conf.format(port=port, port2=port2))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "secret" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(line.format(port=port, port2=port2)), proc.stderr
    assert not (tmp_path / "data" / "stratus.sqlite").exists()  # the migrations never ran


@pytest.mark.parametrize(("connection", "line"), [
    ("nosuchdb://x/y",
     "stratus: [database] connection nosuchdb://x/y: Can't load plugin: sqlalchemy.dialects:nosuchdb"),
    ("not a url", "stratus: [database] connection: Could not parse SQLAlchemy URL"),
    ("postgresql://stratus:secret@127.0.0.1:{port}/stratus",
     "stratus: [database] connection postgresql+asyncpg://stratus:***@127.0.0.1:{port}/stratus: cannot connect:"),
])
@pytest.mark.parametrize("command", ["scheduler", "db sync"])
def test_bad_database_is_one_line(tmp_path: Path, connection: str, line: str, command: str) -> None:
    port = free_port()
    proc = _start(tmp_path, f"[database]\nconnection = {connection.format(port=port)}\n", command=command)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "secret" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(line.format(port=port)), proc.stderr


@pytest.mark.parametrize(("conf", "line"), [
    ("[network_server]\nvni_ranges = 5:1\n", "stratus: [network_server] vni_ranges = 5:1: want min:max"),
    ("[network_server]\nauto_allocate_cidr = 10.0.0.0/99\n",
     "stratus: [network_server] auto_allocate_cidr = 10.0.0.0/99: not a CIDR"),
    ("[network_server]\nbase_mac = 01:00:00:00:00:00\n",
     "stratus: [network_server] base_mac = 01:00:00:00:00:00: not a unicast MAC address"),
])
def test_bad_networking_options_are_one_line(tmp_path: Path, conf: str, line: str) -> None:
    ports = {"DEFAULT": "osapi_compute_listen_port", "image_store": "listen_port", "identity": "listen_port"}
    listen = "".join(f"[{group}]\n{option} = {free_port()}\n" for group, option in ports.items())
    proc = _start(tmp_path, "[DEFAULT]\n" + listen.replace("[DEFAULT]\n", "", 1) + conf, command="api")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(line), proc.stderr
