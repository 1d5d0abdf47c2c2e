"""Every service its own process, on RabbitMQ and PostgreSQL started by the project's scripts: migrations safe when
services start together on an empty database, the boot flow through openstacksdk across processes, and a broker
restart during a stream of boots leaves every server ACTIVE or ERROR, none stuck in BUILD."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.local_cloud import free_port, stop_processes
from tests.functional.helpers import upload_image
from tests.integration.conftest import RabbitMQ

pytestmark = pytest.mark.integration


async def _empty_database(postgres_url: str) -> str:
    """A new, empty database on the test server; its URL."""
    import asyncpg

    name = f"stratus_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


def _stratus(config: Path, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "wb") if log else subprocess.PIPE  # the child writes to it
    return subprocess.Popen([sys.executable, "-m", "stratus.cli", "--config-file", str(config), *args],
                            stdout=out, stderr=subprocess.STDOUT, cwd=config.parent)


def test_concurrent_db_sync_on_empty_postgres(postgres_url: str, tmp_path: Path) -> None:
    url = asyncio.run(_empty_database(postgres_url))
    config = tmp_path / "stratus.conf"
    config.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n[database]\nconnection = {url}\n")
    procs = [_stratus(config, "db", "sync") for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(outputs)
    assert all("database schema is up to date" in o for o in outputs)


@contextlib.contextmanager
def _services(tmp_path: Path, conf: str, roles: list[list[str]]) -> Iterator[list[subprocess.Popen[bytes]]]:
    config = tmp_path / "stratus.conf"
    config.write_text(conf)
    procs = [_stratus(config, *role, log=tmp_path / f"{'-'.join(role)}.log") for role in roles]
    try:
        yield procs
    finally:
        # longer than an API supervisor gives its workers before it kills them (workers.STOP_TIMEOUT)
        stop_processes(procs, timeout=30)


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"==> {f.name} <==\n{f.read_text(errors='replace')[-2500:]}" for f in tmp_path.glob("*.log"))


def _wait(check: Any, seconds: float, what: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"{p.args} exited {p.returncode}:\n{_logs(tmp_path)}"
        with contextlib.suppress(httpx.HTTPError):
            if result := check():
                return result
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {seconds} s:\n{_logs(tmp_path)}")


def test_services_as_processes_survive_a_broker_restart(rabbitmq: RabbitMQ, postgres_url: str,
                                                        tmp_path: Path) -> None:
    import openstack

    database = asyncio.run(_empty_database(postgres_url))
    compute_port, image_port, identity_port = free_port(), free_port(), free_port()
    conf = f"""\
[DEFAULT]
state_path = {tmp_path / 'data'}
transport_url = {rabbitmq.url}
control_exchange = stratus-{uuid.uuid4().hex[:8]}
rpc_response_timeout = 15
report_interval = 1
osapi_compute_listen_port = {compute_port}
[oslo_messaging_rabbit]
rabbit_retry_interval = 0.5
[database]
connection = {database}
[api]
auth_strategy = noauth2
[image_store]
listen_port = {image_port}
[identity]
listen_port = {identity_port}
[fake_driver]
host_count = 1
[quota]
instances = -1
cores = -1
ram = -1
"""
    compute_url, image_url = f"http://127.0.0.1:{compute_port}/v2.1", f"http://127.0.0.1:{image_port}"
    roles = [["api"], ["conductor"], ["scheduler"], ["compute", "--host", "hostA"], ["compute", "--host", "hostB"]]
    # all at once on the empty database: they meet in the migrations
    with _services(tmp_path, conf, roles) as procs:
        headers = {"X-Auth-Token": "admin:admin", "OpenStack-API-Version": "compute 2.53"}
        api = httpx.Client(base_url=compute_url, headers=headers, timeout=30)

        def hypervisors() -> bool:
            found = api.get("/os-hypervisors/detail").json().get("hypervisors", [])
            return sorted(h["service"]["host"] for h in found) == ["hostA", "hostB"]

        _wait(hypervisors, 60, "both compute hosts registered", tmp_path, procs)
        with httpx.Client(base_url=image_url, headers={"X-Auth-Token": "admin:admin"}, timeout=30) as img:
            image = upload_image(img)
        sdk = openstack.connect(auth_type="admin_token", auth={"endpoint": compute_url, "token": "demo:demo"},
                                compute_endpoint_override=compute_url, image_endpoint_override=image_url,
                                identity_api_version="3", load_yaml_config=False, load_envvars=False)

        def boot(name: str) -> str:
            return str(sdk.compute.create_server(name=name, image_id=image["id"], flavor_id="1",
                                                 networks="none").id)

        first = [boot(f"mp-{i}") for i in range(4)]
        for server_id in first:
            sdk.compute.wait_for_server(sdk.compute.get_server(server_id), status="ACTIVE", wait=60)
        placed = api.get("/servers/detail", params={"all_tenants": "1"}).json()["servers"]
        assert {s["OS-EXT-SRV-ATTR:host"] for s in placed} <= {"hostA", "hostB"}
        assert {s.name for s in sdk.compute.servers()} == {f"mp-{i}" for i in range(4)}

        # a stream of boots, and the broker restarted in the middle of it
        stream: list[str] = []
        errors: list[str] = []

        def boots() -> None:
            for i in range(12):
                try:
                    stream.append(boot(f"stream-{i}"))
                except Exception as exc:  # an API that refused a boot: said so, nothing left behind
                    errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.4)

        booter = threading.Thread(target=boots)
        booter.start()
        time.sleep(1.5)
        rabbitmq.stop()
        rabbitmq.start()
        booter.join(timeout=120)
        assert not booter.is_alive()

        def settled() -> list[Any] | None:
            servers = [s for s in sdk.compute.servers() if s.name.startswith("stream-")]
            return servers if all(s.status in ("ACTIVE", "ERROR") for s in servers) else None

        servers = _wait(settled, 60, "every streamed server ACTIVE or ERROR", tmp_path, procs)
        assert sorted(s.id for s in servers) == sorted(stream)
        assert len(stream) + len(errors) == 12
        assert sum(s.status == "ACTIVE" for s in servers) >= 1, [(s.name, s.status, s.fault) for s in servers]
        print(f"streamed boots: {len(stream)} accepted, {len(errors)} refused ({errors}); "
              f"{sum(s.status == 'ACTIVE' for s in servers)} ACTIVE")

        # after the restart the cloud works as before: boot, list, delete
        after = boot("after-restart")
        sdk.compute.wait_for_server(sdk.compute.get_server(after), status="ACTIVE", wait=60)
        everyone = [*first, *stream, after]
        for server_id in everyone:
            sdk.compute.delete_server(server_id)
        _wait(lambda: not list(sdk.compute.servers()), 60, "every server deleted", tmp_path, procs)
