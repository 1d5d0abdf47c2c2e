"""scripts/multinode.sh: the whole cloud as processes on PostgreSQL and RabbitMQ (one API with 2 workers, 2
schedulers, 2 conductors, 5 computes) comes up, serves openstacksdk with the embedded identity's tokens from either
worker, and goes down leaving no process; `up` again on the same directory is idempotent. Then a build whose cast
no conductor could take (none ever listened on a fresh exchange) answers 202 and is scheduled by the recovery pass
of the conductor that starts later."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.local_cloud import free_port, stop_processes
from tests.functional.helpers import upload_image
from tests.integration.conftest import SCRIPTS, RabbitMQ
from tests.integration.test_multiprocess import _empty_database

pytestmark = pytest.mark.integration


def _env() -> dict[str, str]:
    return {**os.environ, "STRATUS_PYTHON": sys.executable}


def _multinode(action: str, directory: Path, timeout: float = 240) -> str:
    proc = subprocess.run([str(SCRIPTS / "multinode.sh"), action, str(directory)], capture_output=True, text=True,
                          timeout=timeout, env=_env())
    assert proc.returncode == 0, f"multinode.sh {action}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _pids(directory: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (directory / "run").glob("*.pid")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def cloud() -> Iterator[Path]:
    if os.geteuid() != 0 and not shutil.which("pg_ctl"):
        pytest.skip("PostgreSQL and RabbitMQ need root to install and start here")
    directory = Path(tempfile.mkdtemp(prefix="stratus-multinode-", dir="/tmp"))
    try:
        _multinode("up", directory)
        yield directory
    finally:
        subprocess.run([str(SCRIPTS / "multinode.sh"), "down", str(directory)], timeout=120, env=_env(),
                       check=False)
        shutil.rmtree(directory, ignore_errors=True)


def _connect(directory: Path) -> Any:
    import openstack.config
    import openstack.connection

    config = openstack.config.OpenStackConfig(config_files=[str(directory / "clouds.yaml")], load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud="stratus-multinode"))


def test_boot_list_delete_through_the_sdk(cloud: Path) -> None:
    conn = _connect(cloud)
    hosts = {s.host: s.state for s in conn.compute.services()}
    assert hosts == {**{f"compute-{i}": "up" for i in range(1, 6)}, "scheduler-1": "up", "scheduler-2": "up",
                     "conductor-1": "up", "conductor-2": "up"}
    image = conn.image.create_image(name="cirros", data=b"\0" * 4096, disk_format="raw", container_format="bare",
                                    allow_duplicates=True)
    flavor = next(f for f in conn.compute.flavors() if f.name == "m1.tiny")
    servers = [conn.compute.create_server(name=f"mn-{i}", image_id=image.id, flavor_id=flavor.id,
                                          networks="none") for i in range(6)]
    active = [conn.compute.wait_for_server(s, status="ACTIVE", wait=60, interval=0.5) for s in servers]
    listed = {s.id: s for s in conn.compute.servers(details=True)}
    assert {s.id for s in active} <= set(listed)
    assert all(listed[s.id].compute_host in {f"compute-{i}" for i in range(1, 6)} for s in active)
    for server in active:
        conn.compute.delete_server(server)
    for server in active:
        conn.compute.wait_for_delete(server, wait=60, interval=0.5)
    assert not [s for s in conn.compute.servers() if s.name.startswith("mn-")]


def test_a_server_on_a_network_gets_its_port_through_the_configured_neutron(cloud: Path) -> None:
    """The computes reach the Networking service through the [neutron] multinode.sh writes, and it reaches Nova
    through [nova]: a server on a network is ACTIVE (network-vif-plugged came back) with its port bound to its host
    and its address in the view, and the port goes with the server."""
    conn = _connect(cloud)
    net = conn.network.create_network(name=f"mn-net-{uuid.uuid4().hex[:6]}")
    conn.network.create_subnet(network_id=net.id, cidr="10.88.0.0/24", ip_version=4)
    image = conn.image.create_image(name="cirros-net", data=b"\0" * 4096, disk_format="raw",
                                    container_format="bare", allow_duplicates=True)
    flavor = next(f for f in conn.compute.flavors() if f.name == "m1.tiny")
    server = conn.compute.create_server(name="mn-net", image_id=image.id, flavor_id=flavor.id,
                                        networks=[{"uuid": net.id}])
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=60, interval=0.5)
    (port,) = list(conn.network.ports(device_id=server.id))
    assert port.binding_host_id == server.compute_host and port.status == "ACTIVE", port
    assert [a["addr"] for a in server.addresses[net.name]] == [port.fixed_ips[0]["ip_address"]]
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=60, interval=0.5)
    assert not list(conn.network.ports(device_id=server.id))
    conn.network.delete_network(net)


def test_api_workers_share_the_port_and_a_dead_worker_is_replaced(cloud: Path) -> None:
    """Two processes serve the compute port; killing one leaves the API answering and the supervisor starts
    another."""
    supervisor = _pids(cloud)["api"]
    workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True
                                              ).stdout.split()]
    assert len(workers) == 2, workers
    os.kill(workers[0], 9)
    conn = _connect(cloud)
    assert list(conn.compute.flavors())  # the other worker answers meanwhile
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = [int(p) for p in subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True,
                                              text=True).stdout.split()]
        if len(now) == 2 and workers[0] not in now:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no worker replaced {workers[0]}:\n{(cloud / 'log' / 'api.log').read_text()[-3000:]}")
    assert _connect(cloud).compute.get_server  # the replacement serves tokens of the shared database too
    assert [f.name for f in _connect(cloud).compute.flavors()]


def test_up_again_is_idempotent_and_down_stops_everything(cloud: Path) -> None:
    before = _pids(cloud)
    _multinode("up", cloud)
    assert _pids(cloud) == before  # nothing started twice
    _multinode("down", cloud)
    assert not list((cloud / "run").glob("*.pid"))
    assert not [pid for pid in before.values() if _alive(pid)]
    assert not (cloud / "postgres" / "postmaster.pid").exists()
    _multinode("up", cloud)  # and up once more, for the module's teardown to bring down
    assert set(_pids(cloud)) == set(before)


@contextlib.contextmanager
def _process(config: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    log = open(config.with_suffix(f".{args[0]}.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "stratus.cli", "--config-file", str(config), *args],
                            stdout=log, stderr=subprocess.STDOUT, cwd=config.parent)
    try:
        yield proc
    finally:
        stop_processes([proc])
        log.close()


def test_build_cast_nobody_took_is_scheduled_by_a_conductor_started_later(rabbitmq: RabbitMQ, postgres_url: str,
                                                                         tmp_path: Path) -> None:
    database = asyncio.run(_empty_database(postgres_url))
    compute_port, image_port, identity_port, network_port = free_port(), free_port(), free_port(), free_port()
    config = tmp_path / "stratus.conf"
    config.write_text(f"""\
[DEFAULT]
state_path = {tmp_path / 'data'}
transport_url = {rabbitmq.url}
control_exchange = stratus-{uuid.uuid4().hex[:8]}
rpc_response_timeout = 5
report_interval = 1
osapi_compute_listen_port = {compute_port}
[database]
connection = {database}
[api]
auth_strategy = noauth2
workers = 1
[image_store]
listen_port = {image_port}
[identity]
listen_port = {identity_port}
[network_server]
listen_port = {network_port}
[conductor]
build_recovery_interval = 2
""")
    headers = {"X-Auth-Token": "admin:admin"}
    api_url = f"http://127.0.0.1:{compute_port}/v2.1"
    with _process(config, "api") as api, _process(config, "compute", "--host", "late-1"):
        deadline = time.monotonic() + 60
        while True:
            assert api.poll() is None, config.with_suffix(".api.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{api_url}/flavors", headers=headers).status_code == 200:
                    break
            assert time.monotonic() < deadline, config.with_suffix(".api.log").read_text()
            time.sleep(0.3)
        with httpx.Client(base_url=f"http://127.0.0.1:{image_port}", headers=headers) as image_client:
            image = upload_image(image_client)
        with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
            created = client.post("/servers", json={"server": {
                "name": "late", "imageRef": image["id"], "flavorRef": "1"}})
            assert created.status_code == 202, created.text  # no conductor queue: the cast found no listener
            server_id = created.json()["server"]["id"]
            assert client.get(f"/servers/{server_id}").json()["server"]["status"] == "BUILD"
            assert "not handed to a conductor" in config.with_suffix(".api.log").read_text()
            with _process(config, "scheduler"):
                # the scheduler first: the conductor's first recovery pass calls it
                deadline = time.monotonic() + 60
                while not [s for s in client.get("/os-services").json()["services"]
                           if s["binary"] == "nova-scheduler" and s["state"] == "up"]:
                    assert time.monotonic() < deadline, config.with_suffix(".scheduler.log").read_text()[-3000:]
                    time.sleep(0.3)
                with _process(config, "conductor"):
                    deadline = time.monotonic() + 60
                    while (server := client.get(f"/servers/{server_id}").json()["server"])["status"] == "BUILD":
                        assert time.monotonic() < deadline, config.with_suffix(".conductor.log").read_text()[-3000:]
                        time.sleep(0.3)
                assert server["status"] == "ACTIVE", server
                assert server["OS-EXT-SRV-ATTR:host"] == "late-1"


def test_database_lost_and_back_under_load(rabbitmq: RabbitMQ, tmp_path: Path) -> None:
    """A private PostgreSQL stopped in the middle of a stream of boots and started again: meanwhile the API answers
    503 with Nova's body (not a 500) and writes nothing, every service process keeps running, and once the database
    is back every accepted server ends ACTIVE or ERROR (none left in BUILD) and a new boot is ACTIVE."""
    parent = Path(tempfile.mkdtemp(prefix="stratus-pg-loss-", dir="/tmp"))
    parent.chmod(0o755)
    pg_dir, pg_port = parent / "data", free_port()

    def postgres(action: str) -> str:
        args = [str(SCRIPTS / "postgres.sh"), action, str(pg_dir)] + ([str(pg_port)] if action == "start" else [])
        proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().splitlines()[-1] if action == "start" else ""

    try:
        database = postgres("start")
        compute_port, image_port, identity_port, network_port = free_port(), free_port(), free_port(), free_port()
        config = tmp_path / "stratus.conf"
        config.write_text(f"""\
[DEFAULT]
state_path = {tmp_path / 'data'}
transport_url = {rabbitmq.url}
control_exchange = stratus-{uuid.uuid4().hex[:8]}
rpc_response_timeout = 10
report_interval = 1
instance_build_timeout = 40
osapi_compute_listen_port = {compute_port}
[database]
connection = {database}
[api]
auth_strategy = noauth2
workers = 1
[image_store]
listen_port = {image_port}
[identity]
listen_port = {identity_port}
[network_server]
listen_port = {network_port}
[conductor]
build_recovery_interval = 3
[quota]
instances = -1
cores = -1
ram = -1
""")
        headers = {"X-Auth-Token": "admin:admin"}
        roles = [["api"], ["scheduler"], ["conductor"], ["compute", "--host", "db-loss-1"]]
        with contextlib.ExitStack() as stack:
            procs = [stack.enter_context(_process(config, *role)) for role in roles]
            client = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{compute_port}/v2.1",
                                                      headers=headers, timeout=30))
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    services = client.get("/os-services").json()["services"]
                    if len([s for s in services if s["state"] == "up"]) == 3:
                        break
                assert time.monotonic() < deadline and all(p.poll() is None for p in procs), _tails(config)
                time.sleep(0.3)
            with httpx.Client(base_url=f"http://127.0.0.1:{image_port}", headers=headers) as image_client:
                image = upload_image(image_client)

            def boot(name: str) -> httpx.Response:
                return client.post("/servers", json={"server": {"name": name, "imageRef": image["id"],
                                                                "flavorRef": "1"}})

            accepted = [boot(f"before-{i}").json()["server"]["id"] for i in range(5)]
            postgres("stop")
            down = [client.get("/servers/detail"), boot("during")]
            for response in down:
                assert response.status_code == 503, response.text
                assert response.json()["serviceUnavailable"]["code"] == 503
            time.sleep(4)  # heartbeats, recovery passes and periodic tasks fail meanwhile
            assert all(p.poll() is None for p in procs), _tails(config)
            postgres("start")
            deadline = time.monotonic() + 30
            while (resp := client.get("/servers/detail")).status_code != 200:
                assert time.monotonic() < deadline, resp.text
                time.sleep(0.3)
            assert "during" not in {s["name"] for s in resp.json()["servers"]}  # the refused boot wrote nothing
            accepted.append(boot("after").json()["server"]["id"])
            deadline = time.monotonic() + 75
            while True:
                statuses = {s["id"]: s["status"] for s in client.get("/servers/detail").json()["servers"]}
                if all(statuses.get(u) in ("ACTIVE", "ERROR") for u in accepted):
                    break
                assert time.monotonic() < deadline, f"{statuses}\n{_tails(config)}"
                time.sleep(0.5)
            assert statuses[accepted[-1]] == "ACTIVE"
            assert all(p.poll() is None for p in procs), _tails(config)
    finally:
        subprocess.run([str(SCRIPTS / "postgres.sh"), "stop", str(pg_dir)], check=False, timeout=120)
        shutil.rmtree(parent, ignore_errors=True)


def _tails(config: Path) -> str:
    return "\n".join(f"==> {f.name} <==\n{f.read_text(errors='replace')[-2500:]}"
                     for f in config.parent.glob("*.log"))
