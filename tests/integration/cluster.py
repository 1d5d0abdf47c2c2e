"""A cloud of separate processes for fault tests: ``stratus api|conductor|scheduler|compute`` on a shared
RabbitMQ and a fresh PostgreSQL database, each process with its own name, log, extra configuration and
environment (crash points), and the means to kill (SIGKILL), restart and inspect them.

The checks read the database directly: what the API shows is the user's picture, the allocation table is the
truth about capacity (no claim leaked, none doubled, no provider over-committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from stratus.local_cloud import free_port, stop_processes
from tests.functional.helpers import upload_image
from tests.integration.conftest import RabbitMQ

#: servers that settled: every one ACTIVE or ERROR
SETTLED = ("ACTIVE", "ERROR")


async def _sql(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(query, *args)]
    finally:
        await conn.close()


def empty_database(postgres_url: str) -> str:
    """A new, empty database on the test server; its URL."""
    name = f"stratus_{uuid.uuid4().hex[:12]}"
    asyncio.run(_sql(postgres_url, f'CREATE DATABASE "{name}"'))
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@dataclasses.dataclass
class Process:
    name: str
    args: list[str]
    config: list[Path]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None


class Cluster:
    """The processes of one cloud. ``conf`` is added to the common configuration (INI text)."""

    def __init__(self, tmp_path: Path, rabbitmq: RabbitMQ, postgres_url: str, conf: str = "") -> None:
        self.dir = tmp_path
        self.database = empty_database(postgres_url)
        compute_port, image_port, identity_port, network_port = free_port(), free_port(), free_port(), free_port()
        self.compute_url = f"http://127.0.0.1:{compute_port}/v2.1"
        self.image_url = f"http://127.0.0.1:{image_port}"
        self.config = tmp_path / "stratus.conf"
        self.config.write_text(f"""\
[DEFAULT]
state_path = {tmp_path / 'data'}
transport_url = {rabbitmq.url}
control_exchange = stratus-{uuid.uuid4().hex[:8]}
osapi_compute_listen_port = {compute_port}
[oslo_messaging_rabbit]
rabbit_retry_interval = 0.5
[database]
connection = {self.database}
[api]
auth_strategy = noauth2
[image_store]
listen_port = {image_port}
[identity]
listen_port = {identity_port}
[network_server]
listen_port = {network_port}
[quota]
instances = -1
cores = -1
ram = -1
""" + conf)
        self.processes: dict[str, Process] = {}
        headers = {"X-Auth-Token": "admin:admin", "OpenStack-API-Version": "compute 2.53"}
        self.api = httpx.Client(base_url=self.compute_url, headers=headers, timeout=60)

    # --- processes -------------------------------------------------------------------------------------------
    def start(self, name: str, *args: str, conf: str = "", env: dict[str, str] | None = None) -> Process:
        """Start ``stratus ARGS`` as ``name``, with ``conf`` (INI) after the common file and ``env`` added."""
        config = [self.config]
        if conf:
            extra = self.dir / f"{name}.conf"
            extra.write_text(conf)
            config.append(extra)
        proc = Process(name, list(args), config, env or {}, self.dir / f"{name}.log")
        self.processes[name] = proc
        self._spawn(proc)
        return proc

    def _spawn(self, proc: Process) -> None:
        files = [a for path in proc.config for a in ("--config-file", str(path))]
        environ = {k: v for k, v in os.environ.items() if k != "STRATUS_FAILPOINTS"} | proc.env
        with open(proc.log, "ab") as out:
            proc.popen = subprocess.Popen([sys.executable, "-m", "stratus.cli", *files, *proc.args], stdout=out,
                                          stderr=subprocess.STDOUT, cwd=self.dir, env=environ)

    def kill(self, name: str) -> None:
        """SIGKILL: no cleanup, no flush, no goodbye to the broker."""
        popen = self.processes[name].popen
        assert popen is not None
        popen.send_signal(signal.SIGKILL)
        popen.wait(timeout=30)

    def pause(self, name: str) -> None:
        """SIGSTOP: the process holds its broker connection and whatever was delivered to it, and does nothing
        (no heartbeat, no consumption) until ``resume``."""
        popen = self.processes[name].popen
        assert popen is not None
        popen.send_signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        popen = self.processes[name].popen
        assert popen is not None
        popen.send_signal(signal.SIGCONT)

    def restart(self, name: str, env: dict[str, str] | None = None) -> int:
        """The process started again; returns where its log stood, for :meth:`wait_ready`."""
        proc = self.processes[name]
        if env is not None:
            proc.env = env
        offset = proc.log.stat().st_size if proc.log.exists() else 0
        self._spawn(proc)
        return offset

    def wait_ready(self, name: str, offset: int, seconds: float = 90) -> None:
        """Until the process logged ``stratus ready`` past ``offset``: its start-up is over (a compute host's
        reconciliation included), which a service's state cannot show (the dead process's last heartbeat keeps
        it up for a while)."""
        log = self.processes[name].log

        def ready() -> bool:
            with open(log, "rb") as f:
                f.seek(offset)
                return b"stratus ready" in f.read()

        self.wait(ready, seconds, f"{name} ready")

    def returncode(self, name: str) -> int | None:
        popen = self.processes[name].popen
        return None if popen is None else popen.poll()

    def stop(self) -> None:
        self.api.close()
        stop_processes([p.popen for p in self.processes.values() if p.popen is not None], timeout=20)

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"==> {p.log.name} <==\n{p.log.read_text(errors='replace')[-tail:]}"
                         for p in self.processes.values() if p.log.exists())

    def wait(self, check: Callable[[], Any], seconds: float, what: str, expect_dead: tuple[str, ...] = ()) -> Any:
        """Poll ``check`` until it returns something true; every process not in ``expect_dead`` must stay up."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for p in self.processes.values():
                if p.name not in expect_dead and p.popen is not None:
                    assert p.popen.poll() is None, f"{p.name} exited {p.popen.returncode}:\n{self.logs()}"
            with contextlib.suppress(httpx.HTTPError):
                if result := check():
                    return result
            time.sleep(0.3)
        raise AssertionError(f"{what} not within {seconds} s:\n{self.logs()}")

    # --- the API ---------------------------------------------------------------------------------------------
    def wait_hypervisors(self, count: int, seconds: float = 90) -> None:
        def up() -> bool:
            found = self.api.get("/os-hypervisors", params={"limit": 100000}).json().get("hypervisors", [])
            return len(found) == count and all(h["state"] == "up" for h in found)

        self.wait(up, seconds, f"{count} hypervisors up")

    def image(self) -> str:
        with httpx.Client(base_url=self.image_url, headers={"X-Auth-Token": "admin:admin"}, timeout=60) as img:
            return str(upload_image(img)["id"])

    def boot(self, image: str, name: str, count: int = 1, **extra: Any) -> httpx.Response:
        body = {"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none",
                           "min_count": count, "max_count": count, **extra}}
        return self.api.post("/servers", json=body)

    def servers(self, prefix: str = "") -> list[dict[str, Any]]:
        found = self.api.get("/servers/detail", params={"all_tenants": "1", "limit": 100000}).json()["servers"]
        return [s for s in found if s["name"].startswith(prefix)]

    def settled(self, prefix: str, count: int, seconds: float) -> list[dict[str, Any]]:
        """Wait until ``count`` servers named ``prefix…`` exist and each is ACTIVE or ERROR."""
        def check() -> list[dict[str, Any]] | None:
            servers = self.servers(prefix)
            return servers if len(servers) == count and all(s["status"] in SETTLED for s in servers) else None

        try:
            return self.wait(check, seconds, f"{count} servers {prefix}* ACTIVE or ERROR",
                             expect_dead=tuple(self.processes))
        except AssertionError:
            stuck = [(s["name"], s["status"], s["OS-EXT-STS:task_state"], s["OS-EXT-SRV-ATTR:host"])
                     for s in self.servers(prefix)]
            raise AssertionError(f"not settled: {stuck}\n{self.logs()}") from None

    # --- the database ----------------------------------------------------------------------------------------
    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        return asyncio.run(_sql(self.database, query, *args))

    def allocation_problems(self) -> list[str]:
        """Every allocation that should not be there, and every claim missing or doubled: an ACTIVE instance holds
        the flavor's resources exactly once on its own node; an instance that is deleted, or in ERROR without a
        host, holds nothing; an instance in ERROR on a host holds at most its one claim there (Nova keeps it
        until the delete)."""
        rows = self.sql("""
            select i.uuid, rp.name, a.resource_class, a.used
            from allocations a join resource_providers rp on rp.id = a.resource_provider_id
            left join instances i on i.uuid = a.consumer_id""")
        held: dict[str, list[tuple[str, str, int]]] = {}
        for uuid_, provider, rc, used in rows:
            held.setdefault(uuid_ or "?", []).append((provider, rc, used))
        problems = [f"allocations of no instance: {held.pop('?')}"] if "?" in held else []
        for uuid_, vm_state, node, deleted, vcpus, memory_mb in self.sql(
                "select uuid, vm_state, node, deleted, vcpus, memory_mb from instances"):
            mine = sorted(held.get(uuid_, []))
            expected = sorted([(node, "MEMORY_MB", memory_mb), (node, "VCPU", vcpus)])
            if deleted or (vm_state == "error" and node is None) or vm_state == "building":
                if mine:
                    problems.append(f"{uuid_} ({vm_state}, deleted={deleted}) holds {mine}")
            elif vm_state == "error":
                if mine and [(p, rc, u) for p, rc, u in mine if rc != "DISK_GB"] != expected:
                    problems.append(f"{uuid_} (error on {node}) holds {mine}")
            elif [(p, rc, u) for p, rc, u in mine if rc != "DISK_GB"] != expected:
                problems.append(f"{uuid_} ({vm_state} on {node}) holds {mine}, not {expected}")
        return problems

    def over_committed(self) -> list[str]:
        """Providers whose allocations exceed (total - reserved) * allocation_ratio for some resource class."""
        rows = self.sql("""
            select rp.name, inv.resource_class, inv.total, inv.reserved, inv.allocation_ratio,
                   coalesce(sum(a.used), 0)
            from inventories inv join resource_providers rp on rp.id = inv.resource_provider_id
            left join allocations a on a.resource_provider_id = inv.resource_provider_id
                                    and a.resource_class = inv.resource_class
            group by rp.name, inv.resource_class, inv.total, inv.reserved, inv.allocation_ratio""")
        return [f"{name} {rc}: {used} > ({total} - {reserved}) * {ratio}"
                for name, rc, total, reserved, ratio, used in rows if used > int((total - reserved) * ratio)]
