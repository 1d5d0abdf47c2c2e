"""Boot benchmark: N servers on M simulated hosts through the REST API of a real all-in-one, and the API's latency
while it builds.

    python benchmarks/boot.py [--servers 200] [--hosts 20] [--concurrency 10] [--listed 1000] [--runs 3]
                              [--failing-fraction 0.2] [--max-attempts 3] [--deployment all-in-one|multinode|both]
                              [--network [--network-only]] [--profile DIR] [--projects 10] [--json PATH]

The ``all-in-one`` row runs on a fresh all-in-one (fake driver, noauth2, SQLite): ``--servers`` boots by
``--concurrency`` clients (servers/s from the first POST to all ACTIVE, POST /servers p50/p99 while they build),
GET /servers/detail with those servers listed (p50/p99), then every one deleted by the same clients (deletes/s:
first DELETE to none listed), then the burst: 200 concurrent GET /servers/detail while 50 boots are posted and
built (p50/p99 of the GETs, and how many were refused: an error status or a failed connection), then
``--listed`` servers in all (booted 50 per request, ``max_count``) and GET /servers/detail of all of them (p50),
and the cloud process's peak RSS after that. ``--runs 3`` repeats every row on fresh clouds and reports medians.
It also reports the CPU time (user + system) the cloud's processes spent per boot and per delete: on a machine
other jobs load, the wall-clock rates move with the load, the CPU time per operation hardly does.

The ``failing`` row boots the same servers where a fraction of the simulated hosts (``[fake_driver] fail_hosts``,
every 5th host for 0.2) fail every build, so the conductor reschedules those builds onto the alternates the
scheduler returned (``[scheduler] max_attempts``). ``--failing-fraction 0`` leaves it out.

Once all servers of a boot are ACTIVE it reads every server's create action (os-instance-actions, microversion
2.62): one ``compute__do_build_and_run_instance`` event per attempt, so reschedules = events - 1. A server's build
duration is ``OS-SRV-USG:launched_at`` minus the create action's ``start_time`` (both microsecond timestamps from
the cloud's clock); the extra latency per reschedule is (median build of rescheduled servers - median build of the
others) / mean reschedules of the rescheduled servers. Should the API timestamps be whole seconds, the per-server
POST -> first seen done wall time is used instead, and the output says which. Progress is polled every 20 ms
with the index (GET /servers?status=BUILD and ?status=ERROR): the poll measures, it should not be the load.
Any server in ERROR fails the benchmark. Prints one table and writes JSON: {"all-in-one": {...}, "failing": {...},
"machine": {...}, "each_run": {...}}.

``--network`` adds the row ``networking``: the all-in-one's boot again on a fresh all-in-one, spread over
``--projects`` projects with one network (and a /24 subnet) each in the embedded Networking API, every server
booted on its project's network, so each build creates a port bound to its host, waits for its
network-vif-plugged (the noop agent of the simulated hosts) and caches its network info; every server must show
one fixed address. The other rows boot with ``networks: none`` (2.37), no port at all, so the rows differ by the
ports alone. ``--network-only`` runs just the pair: ``no network`` (the same boot without ports, nothing after it)
and ``networking``, each on a fresh cloud per run; the output then says what a port costs a boot: 1/servers/s
with ports minus without, in ms per server at the clients' concurrency, and the cloud's CPU per server (``CPU
ms/server``: user + system time of the cloud's processes from the first POST to all ACTIVE, over the servers)
with minus without, the progress poll's share taken out of both. The poll is in ``CPU ms/server``, and a boot
that lasts longer polls more (a networked boot, at a third of the rate, about twice as often per server): counted
in, it would charge the ports for the benchmark's own requests. So each row also reports its polls, what one poll
costs the cloud (``POLL_SAMPLES`` polls made back to back once all are ACTIVE, over their number; the lists are
empty then, so this errs low and leaves any doubt in the port's cost) and the poll's CPU per server; the port's
cost is given both ways (``cpu_ms_per_port`` without the poll, ``cpu_ms_per_port_poll_included`` with it).
``--profile DIR`` has py-spy record the cloud during each boot of the all-in-one, no-network and networked rows
(DIR/all-in-one-<run>.txt, DIR/no-network-<run>.txt, DIR/networking-<run>.txt, collapsed stacks) and during the
all-in-one's deletes (DIR/deletes-all-in-one-<run>.txt), and prints their top functions.

``--deployment multinode`` runs the same row on the multi-process cloud of scripts/multinode.sh (PostgreSQL,
RabbitMQ, one API with 2 workers, 2 schedulers, 2 conductors and ``--hosts`` compute processes, one simulated host
each), through the embedded identity's token: its row is ``multinode``, and its RSS the sum of every Stratus
process's peak (each listed), PostgreSQL and RabbitMQ left out. ``both`` runs the all-in-one row and the multinode
row into one table (the failing row then only with ``--deployment all-in-one``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from stratus.local_cloud import Cloud, start_cloud, stop_cloud

HEADERS = {"X-Auth-Token": "admin:admin", "Content-Type": "application/json"}
BOOT_VERSION = {"OpenStack-API-Version": "compute 2.37"}  # networks: none / a network, stated each time
ACTIONS_HEADERS = {"OpenStack-API-Version": "compute 2.62"}  # events with their host, for admins
BUILD_EVENT = "compute__do_build_and_run_instance"
POLL_SAMPLES = 100  # polls made back to back after a boot, to measure what one costs the cloud


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Multinode:
    """A cloud of scripts/multinode.sh in ``directory``: its URLs, its token's headers, its processes."""

    def __init__(self, directory: Path) -> None:
        ports = dict(line.split("=", 1) for line in (directory / "ports.env").read_text().split())
        self.directory = directory
        self.compute_url = f"http://127.0.0.1:{ports['COMPUTE_PORT']}/v2.1"
        self.image_url = f"http://127.0.0.1:{ports['IMAGE_PORT']}"
        self.identity_url = f"http://127.0.0.1:{ports['IDENTITY_PORT']}/v3"
        self.network_url = ""  # --network is for the all-in-one only

    def token_headers(self) -> dict[str, str]:
        password = (self.directory / "admin-password").read_text().strip()
        resp = httpx.post(f"{self.identity_url}/auth/tokens", json={"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
        resp.raise_for_status()
        return {"X-Auth-Token": resp.headers["X-Subject-Token"], "Content-Type": "application/json"}

    def pids(self) -> dict[str, int]:
        """Every Stratus process: the services of DIR/run and the API supervisor's workers."""
        out = {p.stem: int(p.read_text()) for p in sorted((self.directory / "run").glob("*.pid"))}
        children = Path(f"/proc/{out['api']}/task/{out['api']}/children").read_text().split()
        out.update({f"api-worker-{i}": int(pid) for i, pid in enumerate(children, 1)})
        return out


def cpu_seconds(cloud: Cloud | Multinode) -> float:
    """User + system CPU time the cloud's processes used so far (all their threads): a figure the machine's load
    hardly moves, unlike the wall-clock rates (other jobs take turns on its cores, not from this count)."""
    pids = list(cloud.pids().values()) if isinstance(cloud, Multinode) else [cloud.proc.pid]
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat(5))
    return total


def rss_mib(cloud: Cloud | Multinode) -> tuple[float, dict[str, float]]:
    """The peak RSS of the cloud's processes: their sum, and each."""
    if isinstance(cloud, Multinode):
        each = {name: peak_rss_mib(pid) for name, pid in cloud.pids().items()}
        return sum(each.values()), each
    return peak_rss_mib(cloud.proc.pid), {"all-in-one": peak_rss_mib(cloud.proc.pid)}


def failing_hosts(hosts: int, fraction: float) -> list[str]:
    """Deterministic, evenly spread host names of the all-in-one (compute-1..compute-N): every 5th for 0.2."""
    if fraction <= 0:
        return []
    count = min(hosts, max(1, round(hosts * fraction)))
    step = hosts / count
    return [f"compute-{round((k + 1) * step)}" for k in range(count)]


def _parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


async def build_events(http: httpx.AsyncClient, cloud: Cloud | Multinode, server_id: str
                       ) -> tuple[str, list[dict[str, Any]]]:
    """The create action's start_time and its build events, oldest first."""
    url = f"{cloud.compute_url}/servers/{server_id}/os-instance-actions"
    resp = await http.get(url, headers=ACTIONS_HEADERS)
    resp.raise_for_status()
    create = [a for a in resp.json()["instanceActions"] if a["action"] == "create"]
    if len(create) != 1:
        raise RuntimeError(f"server {server_id}: {len(create)} create actions")
    resp = await http.get(f"{url}/{create[0]['request_id']}", headers=ACTIONS_HEADERS)
    resp.raise_for_status()
    action = resp.json()["instanceAction"]
    events = sorted((e for e in action["events"] if e["event"] == BUILD_EVENT), key=lambda e: e["start_time"])
    return action["start_time"], events


def reschedule_stats(builds: dict[str, float], reschedules: dict[str, int],
                     retry_gaps: list[float]) -> dict[str, Any]:
    plain = [builds[s] for s in builds if reschedules[s] == 0]
    moved = [builds[s] for s in builds if reschedules[s] > 0]
    out: dict[str, Any] = {
        "rescheduled_servers": len(moved),
        "reschedules": sum(reschedules.values()),
        "build_p50_s_no_reschedule": statistics.median(plain) if plain else None,
        "build_p50_s_rescheduled": statistics.median(moved) if moved else None,
        "extra_s_per_reschedule": None,
        # Direct: from a failed attempt's start to the next attempt's start, same server, same clock.
        "failed_attempt_p50_s": statistics.median(retry_gaps) if retry_gaps else None,
    }
    if plain and moved:
        mean_reschedules = sum(n for n in reschedules.values() if n) / len(moved)
        out["extra_s_per_reschedule"] = (statistics.median(moved) - statistics.median(plain)) / mean_reschedules
    return out


async def project_networks(http: httpx.AsyncClient, network_url: str, projects: int) -> dict[str, str]:
    """One network with a /24 subnet in each of ``projects`` projects (``bench-p<k>``): project -> network id."""
    out: dict[str, str] = {}
    for k in range(projects):
        project = f"bench-p{k}"
        headers = {"X-Auth-Token": f"admin:{project}"}
        resp = await http.post(f"{network_url}/v2.0/networks", headers=headers,
                               json={"network": {"name": f"net-{project}"}})
        resp.raise_for_status()
        net_id = resp.json()["network"]["id"]
        resp = await http.post(f"{network_url}/v2.0/subnets", headers=headers, json={"subnet": {
            "network_id": net_id, "cidr": f"10.{k // 256}.{k % 256}.0/24", "ip_version": 4}})
        resp.raise_for_status()
        out[project] = net_id
    return out


async def run(cloud: Cloud | Multinode, servers: int, concurrency: int, list_repeats: int,
              fail_hosts: frozenset[str] = frozenset(), headers: dict[str, str] = HEADERS,
              anchors: bool = False, listed: int = 1000, burst_gets: int = 200, burst_boots: int = 50,
              projects: int = 0, profile: Path | None = None) -> dict[str, Any]:
    """The boot of ``servers`` (and, with ``anchors``, the deletes, the burst and the listing of ``listed``);
    ``projects`` > 0: on one network per project (``--network``), else with no port; ``profile``: py-spy records
    the cloud process during the boot into that file (collapsed stacks)."""
    # idle connections dropped well before the server's keep-alive timeout (uvicorn's 5 s) closes them: a request
    # on a connection the server closes at that moment fails (a machine loaded enough makes phases that long)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=2.0)
    async with httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as http:
        image = (await http.post(f"{cloud.image_url}/v2/images", json={
            "name": "bench", "disk_format": "raw", "container_format": "bare", "visibility": "public"})).json()
        await http.put(f"{cloud.image_url}/v2/images/{image['id']}/file", content=b"\0" * 65536,
                       headers={"Content-Type": "application/octet-stream"})
        nets = await project_networks(http, cloud.network_url, projects) if projects else {}
        tenants = {"all_tenants": 1} if nets else {}
        post_times: list[float] = []
        ids: list[str] = []
        posted_at: dict[str, float] = {}  # server id -> perf_counter when its POST was sent
        active_at: dict[str, float] = {}  # server id -> perf_counter when first listed ACTIVE
        sem = asyncio.Semaphore(concurrency)

        async def boot(i: int) -> None:
            async with sem:
                if nets:
                    project = f"bench-p{i % projects}"
                    boot_headers = {**BOOT_VERSION, "X-Auth-Token": f"admin:{project}"}
                    networks: Any = [{"uuid": nets[project]}]
                else:
                    boot_headers, networks = BOOT_VERSION, "none"
                t0 = time.perf_counter()
                resp = await http.post(f"{cloud.compute_url}/servers", headers=boot_headers, json={"server": {
                    "name": f"bench-{i}", "imageRef": image["id"], "flavorRef": "42", "networks": networks}})
                post_times.append(time.perf_counter() - t0)
                if resp.status_code != 202:
                    raise RuntimeError(f"boot {i}: {resp.status_code} {resp.text}")
                server_id = resp.json()["server"]["id"]
                ids.append(server_id)
                posted_at[server_id] = t0

        async def by_status(status: str) -> list[dict[str, Any]]:
            resp = await http.get(f"{cloud.compute_url}/servers",
                                  params={"status": status, "limit": servers * 2, **tenants})
            resp.raise_for_status()
            return list(resp.json()["servers"])

        polls = 0

        async def poll() -> None:
            """Every 20 ms the servers still building and those in error (GET /servers?status=..., the index:
            the poll is the measurement, not the load); a server posted before a poll and not building in it is
            done (ACTIVE, checked once all are)."""
            nonlocal polls
            while True:
                polls += 1
                asked = time.perf_counter()
                posted_before = [s for s, t in posted_at.items() if t < asked]
                building = {s["id"] for s in await by_status("BUILD")}
                errors = await by_status("ERROR")
                seen = time.perf_counter()
                if errors:
                    why = []
                    for server in errors[:3]:
                        detail = (await http.get(f"{cloud.compute_url}/servers/{server['id']}")).json()["server"]
                        _, events = await build_events(http, cloud, server["id"])
                        why.append(f"{server['id']}: {detail.get('fault', {}).get('message')!r}, attempts "
                                   + ", ".join(f"{e['host']} {e['result']}" for e in events))
                    raise RuntimeError(f"{len(errors)} servers went to ERROR, e.g.\n  " + "\n  ".join(why))
                for server_id in posted_before:
                    if server_id not in building:
                        active_at.setdefault(server_id, seen)
                if len(active_at) >= servers:
                    break
                await asyncio.sleep(0.02)

        spy = _spy_start(cloud, profile) if profile is not None else None
        cpu_before = cpu_seconds(cloud)
        start = time.perf_counter()
        poller = asyncio.create_task(poll())  # from the first POST, so early servers' ACTIVE times are seen
        try:
            await asyncio.gather(*(boot(i) for i in range(servers)))
        except BaseException:
            poller.cancel()
            raise
        posted = time.perf_counter() - start
        await poller
        all_active = time.perf_counter() - start
        boot_cpu = cpu_seconds(cloud) - cpu_before
        if spy is not None:
            _spy_stop(spy)
        # what one poll costs the cloud, measured now that none is building (the same two GETs, back to back):
        # the lists are shorter than while servers build, so this is if anything less than the poll took
        cpu_before = cpu_seconds(cloud)
        for _ in range(POLL_SAMPLES):
            await by_status("BUILD")
            await by_status("ERROR")
        poll_cpu = (cpu_seconds(cloud) - cpu_before) / POLL_SAMPLES

        list_times: list[float] = []
        for _ in range(list_repeats):
            t0 = time.perf_counter()
            resp = await http.get(f"{cloud.compute_url}/servers/detail", params={"limit": servers * 2, **tenants})
            list_times.append(time.perf_counter() - t0)
            assert len(resp.json()["servers"]) == servers
        addressed = sum(1 for s in resp.json()["servers"] if sum(len(a) for a in s["addresses"].values()) == 1)
        if addressed != (servers if nets else 0):
            raise RuntimeError(f"{addressed} of {servers} servers have one fixed address, "
                               f"{servers if nets else 0} should")
        not_active = [s["id"] for s in resp.json()["servers"] if s["status"] != "ACTIVE"]
        if not_active:
            raise RuntimeError(f"{len(not_active)} servers not ACTIVE once none was building: {not_active[:3]}")
        launched = {s["id"]: s["OS-SRV-USG:launched_at"] for s in resp.json()["servers"]}

        async def events_of(server_id: str) -> tuple[str, tuple[str, list[dict[str, Any]]]]:
            async with sem:
                return server_id, await build_events(http, cloud, server_id)

        actions = dict(await asyncio.gather(*(events_of(s) for s in ids)))
        extra = await anchor_rows(http, cloud, image["id"], ids, concurrency, list_repeats, listed, burst_gets,
                                  burst_boots, profile=profile.with_name(f"deletes-{profile.name}")
                                  if profile is not None else None) if anchors else {}

    reschedules: dict[str, int] = {}
    retry_gaps: list[float] = []
    for server_id, (_, events) in actions.items():
        if not events or events[-1]["result"] != "Success" or any(e["result"] != "Error" for e in events[:-1]):
            raise RuntimeError(f"server {server_id}: unexpected build events {events}")
        for event in events:  # failures only where injected, successes only elsewhere
            if (event["host"] in fail_hosts) != (event["result"] == "Error"):
                raise RuntimeError(f"server {server_id}: {event['result']} on {event['host']}")
        reschedules[server_id] = len(events) - 1
        retry_gaps += [(_parse_time(b["start_time"]) - _parse_time(a["start_time"])).total_seconds()
                       for a, b in itertools.pairwise(events)]
    stamps = [launched[s] for s in ids] + [start_time for start_time, _ in actions.values()]
    api_builds = {s: (_parse_time(launched[s]) - _parse_time(actions[s][0])).total_seconds() for s in ids}
    polled_builds = {s: active_at[s] - posted_at[s] for s in ids}
    # Sub-second timestamps from the cloud's own clock beat polling, whose resolution is a detail listing
    # plus the 20 ms sleep; whole-second timestamps (seconds-only launched_at) lose to it.
    if any(_parse_time(t).microsecond for t in stamps):
        builds, source = api_builds, "launched_at - create start_time (API, microseconds)"
    else:
        builds, source = polled_builds, "POST sent -> first seen not building (polled, ~20-50 ms resolution)"
    result = {
        "servers": servers,
        "posted_s": posted,
        "all_active_s": all_active,
        "servers_per_s": servers / all_active,
        # the cloud's CPU per server, first POST to all ACTIVE (the client's own CPU is not in it)
        "cpu_ms_per_server": 1000 * boot_cpu / servers,
        # of which the progress poll's (its polls at the cost of one measured after), and the rest
        "polls": polls,
        "poll_cpu_ms": 1000 * poll_cpu,
        "poll_cpu_ms_per_server": 1000 * poll_cpu * polls / servers,
        "cpu_ms_per_server_without_poll": 1000 * (boot_cpu - poll_cpu * polls) / servers,
        "post_p50_ms": 1000 * statistics.median(post_times),
        "post_p99_ms": 1000 * percentile(post_times, 99),
        "detail_p50_ms": 1000 * statistics.median(list_times),
        "detail_p99_ms": 1000 * percentile(list_times, 99),
        "peak_rss_mib": rss_mib(cloud)[0],
        "peak_rss_mib_each": rss_mib(cloud)[1],
        "build_time_source": source,
        **reschedule_stats(builds, reschedules, retry_gaps),
        "build_p50_s": statistics.median(builds.values()),
        "build_p50_s_polled": statistics.median(polled_builds.values()),
        "build_p50_s_api": statistics.median(api_builds.values()),
        **extra,
    }
    if anchors:  # the peak after the listing of ``listed`` servers
        result["peak_rss_mib"], result["peak_rss_mib_each"] = rss_mib(cloud)
    return result


def _spy_start(cloud: Cloud | Multinode, path: Path) -> subprocess.Popen[bytes]:
    """py-spy recording the all-in-one (its Python threads, idle frames left out) in collapsed-stack form."""
    assert isinstance(cloud, Cloud), "--profile is for the all-in-one"
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy)")
    proc = subprocess.Popen([spy, "record", "--pid", str(cloud.proc.pid), "--format", "raw", "--rate", "250",
                             "--output", str(path), "--nonblocking"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    time.sleep(1.0)  # attached before the first POST
    return proc


def _spy_stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(2)  # SIGINT: py-spy writes what it sampled
    _, err = proc.communicate(timeout=120)
    if proc.returncode not in (0, -2):
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")


def profile_top(path: Path, count: int = 25) -> list[tuple[str, float, float]]:
    """The functions of a collapsed-stack profile with the most samples: (function, % own, % inclusive)."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        n = int(samples)
        total += n
        frames = [f.split(" (", 1)[0] + " " + f.rsplit("/", 1)[-1].split(":", 1)[0].rstrip(")")
                  for f in stack.split(";") if not f.startswith("process ") and not f.startswith("thread ")]
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    total = max(total, 1)
    ranked = sorted(own, key=lambda f: -own[f])[:count]
    return [(f, 100 * own[f] / total, 100 * inclusive[f] / total) for f in ranked]


async def _detail(http: httpx.AsyncClient, cloud: Cloud | Multinode) -> httpx.Response:
    return await http.get(f"{cloud.compute_url}/servers/detail")


async def _wait_active(http: httpx.AsyncClient, cloud: Cloud | Multinode, count: int) -> None:
    while True:
        statuses = [s["status"] for s in (await _detail(http, cloud)).json()["servers"]]
        if "ERROR" in statuses:
            raise RuntimeError(f"{statuses.count('ERROR')} servers went to ERROR")
        if len(statuses) >= count and all(s == "ACTIVE" for s in statuses):
            return
        await asyncio.sleep(0.05)


async def anchor_rows(http: httpx.AsyncClient, cloud: Cloud | Multinode, image_id: str, ids: list[str],
                      concurrency: int, list_repeats: int, listed: int, burst_gets: int, burst_boots: int,
                      profile: Path | None = None) -> dict[str, Any]:
    """After the boot: delete every server (first DELETE -> none listed, even deleted ones gone from the
    listing; ``profile``: py-spy records the cloud during the deletes into that file); the burst (``burst_gets``
    concurrent GET /servers/detail while ``burst_boots`` boots run, on a cloud with no other server); then
    ``listed`` servers (booted ``max_count`` at a time) and their listing."""
    url = f"{cloud.compute_url}/servers"
    sem = asyncio.Semaphore(concurrency)
    delete_times: list[float] = []

    async def delete(server_id: str) -> None:
        async with sem:
            t0 = time.perf_counter()
            resp = await http.delete(f"{url}/{server_id}")
            delete_times.append(time.perf_counter() - t0)
            if resp.status_code != 204:
                raise RuntimeError(f"delete {server_id}: {resp.status_code} {resp.text}")

    spy = _spy_start(cloud, profile) if profile is not None else None
    start, cpu_start = time.perf_counter(), cpu_seconds(cloud)
    await asyncio.gather(*(delete(s) for s in ids))
    while True:
        if not (await http.get(url)).json()["servers"]:
            break
        await asyncio.sleep(0.02)
    deleted = time.perf_counter() - start
    delete_cpu = cpu_seconds(cloud) - cpu_start
    if spy is not None:
        _spy_stop(spy)

    # the burst: every GET at once while the boots are posted (by ``concurrency`` clients) and built
    refused = 0
    get_times: list[float] = []

    async def get(burst: httpx.AsyncClient) -> None:
        nonlocal refused
        t0 = time.perf_counter()
        try:
            resp = await _detail(burst, cloud)
        except httpx.HTTPError:
            refused += 1
            return
        get_times.append(time.perf_counter() - t0)
        if resp.status_code != 200:
            refused += 1

    async def boot(i: int) -> None:
        async with sem:
            resp = await http.post(url, json={"server": {"name": f"burst-{i}", "imageRef": image_id,
                                                         "flavorRef": "42"}})
            if resp.status_code != 202:
                raise RuntimeError(f"burst boot {i}: {resp.status_code} {resp.text}")

    boots = asyncio.gather(*(boot(i) for i in range(burst_boots)))
    await asyncio.sleep(0)  # the first boots are on their way
    # a connection per GET, all at once, closed after (an idle keep-alive connection the server closes later
    # would fail the next request of the main client)
    async with httpx.AsyncClient(headers=http.headers, timeout=120, limits=httpx.Limits(
            max_connections=None, max_keepalive_connections=0)) as burst:
        await asyncio.gather(*(get(burst) for _ in range(burst_gets)), boots)
    await _wait_active(http, cloud, burst_boots)

    # the listing of ``listed`` servers: the rest booted in requests of up to 50 (max_count)
    left, posted = listed - burst_boots, 0
    while posted < left:
        count = min(50, left - posted)
        resp = await http.post(url, json={"server": {"name": f"many-{posted}", "imageRef": image_id,
                                                     "flavorRef": "42", "min_count": count, "max_count": count}})
        if resp.status_code != 202:
            raise RuntimeError(f"boot of {count}: {resp.status_code} {resp.text}")
        posted += count
    await _wait_active(http, cloud, listed)
    many_times: list[float] = []
    for _ in range(list_repeats):
        t0 = time.perf_counter()
        resp = await _detail(http, cloud)
        many_times.append(time.perf_counter() - t0)
        if len(resp.json()["servers"]) != listed:
            raise RuntimeError(f"{len(resp.json()['servers'])} servers listed, not {listed}")
    return {
        "deletes": len(ids),
        "deleted_s": deleted,
        "deletes_per_s": len(ids) / deleted,
        "delete_p50_ms": 1000 * statistics.median(delete_times),
        "cpu_ms_per_delete": 1000 * delete_cpu / max(1, len(ids)),
        "burst_gets": burst_gets,
        "burst_boots": burst_boots,
        "burst_p50_ms": 1000 * statistics.median(get_times) if get_times else None,
        "burst_p99_ms": 1000 * percentile(get_times, 99) if get_times else None,
        "burst_refused": refused,
        "listed": listed,
        "detail_many_p50_ms": 1000 * statistics.median(many_times),
        "detail_many_body_bytes": len(resp.content),
    }


def _start(tmp: Path, extra_conf: str, tries: int = 3) -> Cloud:
    """start_cloud, again when a port it picked was taken before the cloud could bind it (a race with other
    processes on this machine, not something to measure)."""
    for attempt in range(tries):
        try:
            return start_cloud(tmp, extra_conf=extra_conf)
        except RuntimeError as exc:
            if "address already in use" not in str(exc) or attempt == tries - 1:
                raise
            shutil.rmtree(tmp / "data", ignore_errors=True)
    raise AssertionError("unreachable")


def measure(servers: int, hosts: int, concurrency: int = 10, list_repeats: int = 20,
            failing_fraction: float = 0.0, max_attempts: int = 3, anchors: bool = False,
            listed: int = 1000, projects: int = 0, profile: Path | None = None) -> dict[str, Any]:
    """Start a fresh all-in-one with ``hosts`` simulated hosts and unlimited quota, boot, measure, stop.

    ``failing_fraction`` of the hosts (spread evenly) fail every build, so those builds are rescheduled;
    ``projects`` > 0 boots on one network per project."""
    fail = failing_hosts(hosts, failing_fraction)
    with tempfile.TemporaryDirectory(prefix="stratus-bench-") as tmp:
        started = time.perf_counter()
        cloud = _start(Path(tmp), extra_conf=f"""
            [fake_driver]
            host_count = {hosts}
            fail_hosts = {",".join(fail)}
            [scheduler]
            max_attempts = {max_attempts}
            [quota]
            instances = -1
            cores = -1
            ram = -1
            """)
        startup = time.perf_counter() - started
        try:
            result = asyncio.run(run(cloud, servers, concurrency, list_repeats, frozenset(fail), anchors=anchors,
                                     listed=listed, projects=projects, profile=profile))
        finally:
            stop_cloud(cloud)
    result["hosts"] = hosts
    result["startup_s"] = startup
    result["failing_fraction"] = failing_fraction
    result["failing_hosts"] = fail
    result["max_attempts"] = max_attempts
    result["projects_with_a_network"] = projects
    return result


def measure_multinode(servers: int, hosts: int, concurrency: int = 10, list_repeats: int = 20,
                      listed: int = 1000) -> dict[str, Any]:
    """The same boot on a fresh scripts/multinode.sh cloud with ``hosts`` compute processes; brought down after."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "multinode.sh"
    directory = Path(tempfile.mkdtemp(prefix="stratus-bench-mn-", dir="/tmp"))
    env = {**os.environ, "STRATUS_PYTHON": sys.executable, "MULTINODE_COMPUTES": str(hosts),
           "MULTINODE_EXTRA_CONF": "[quota]\ninstances = -1\ncores = -1\nram = -1"}
    try:
        started = time.perf_counter()
        subprocess.run([str(script), "up", str(directory)], check=True, env=env, timeout=600,
                       stdout=subprocess.DEVNULL)
        startup = time.perf_counter() - started
        cloud = Multinode(directory)
        result = asyncio.run(run(cloud, servers, concurrency, list_repeats, headers=cloud.token_headers(),
                                 anchors=True, listed=listed))
    finally:
        subprocess.run([str(script), "down", str(directory)], env=env, timeout=300, check=False,
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(directory, ignore_errors=True)
    result.update(hosts=hosts, startup_s=startup, failing_fraction=0.0, failing_hosts=[], max_attempts=3)
    return result


def _seconds(value: float | None, unit: float = 1.0, fmt: str = ".3f") -> str:
    return "-" if value is None else f"{value * unit:{fmt}}"


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every number the median of the runs' (the first run's value for the rest); ``runs`` keeps each run."""
    out: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [r.get(key) for r in runs]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        out[key] = statistics.median(numbers) if len(numbers) == len(values) else first
    out["peak_rss_mib_each"] = {k: statistics.median(r["peak_rss_mib_each"].get(k, 0.0) for r in runs)
                                for k in runs[0]["peak_rss_mib_each"]}
    out["runs"] = len(runs)
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_table(results: dict[str, dict[str, Any]]) -> None:
    """One table: a row per run (deployment, or the failing hosts' run), the anchor figures in its columns."""
    columns = ["run", "servers", "hosts", "failing", "networks", "servers/s", "CPU ms/server", "POST p50/p99 ms",
               "deletes/s",
               "detail p50 ms", "detail 1000 p50 ms", "burst p50/p99 ms", "refused", "peak RSS MiB",
               "reschedules", "extra s/reschedule"]
    rows = []
    for name, r in results.items():
        many = r.get("detail_many_p50_ms")
        rows.append([
            name, str(r["servers"]), str(r["hosts"]), f"{r['failing_fraction']:.0%}",
            str(r.get("projects_with_a_network") or "-"), f"{r['servers_per_s']:.1f}",
            _ms(r.get("cpu_ms_per_server")),
            f"{r['post_p50_ms']:.1f} / {r['post_p99_ms']:.1f}",
            f"{r['deletes_per_s']:.1f}" if "deletes_per_s" in r else "-",
            f"{r['detail_p50_ms']:.1f}", _ms(many),
            f"{_ms(r['burst_p50_ms'])} / {_ms(r['burst_p99_ms'])}" if "burst_p50_ms" in r else "-",
            str(r["burst_refused"]) if "burst_refused" in r else "-", f"{r['peak_rss_mib']:.0f}",
            str(r["reschedules"]), _seconds(r["extra_s_per_reschedule"])])
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    for line in [columns, *rows]:
        cells = [cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))]
        print("  ".join(cells))
    print()
    for name, r in results.items():
        print(f"{name}: medians of {r.get('runs', 1)} run(s); POST->all ACTIVE {r['all_active_s']:.2f} s; "
              f"cloud CPU per boot {r['cpu_ms_per_server']:.1f} ms (the progress poll's "
              f"{r['poll_cpu_ms_per_server']:.1f}: {r['polls']:.0f} polls at {r['poll_cpu_ms']:.2f} ms)"
              + (f", per delete {r['cpu_ms_per_delete']:.1f} ms" if "cpu_ms_per_delete" in r else "") + "; "
              f"GET /servers/detail ({r['servers']}) p99 {r['detail_p99_ms']:.1f} ms"
              + (f"; {r['deletes']} deletes, first DELETE -> all gone {r['deleted_s']:.2f} s; burst "
                 f"{r['burst_gets']} GET /servers/detail during {r['burst_boots']} boots; listing of "
                 f"{r['listed']} servers {r['detail_many_body_bytes'] / 1e6:.2f} MB"
                 if "deletes" in r else "")
              + (f"; peak RSS {', '.join(f'{k} {v:.0f}' for k, v in r['peak_rss_mib_each'].items())} MiB"
                 if len(r["peak_rss_mib_each"]) > 1 else "")
              + f"; startup {r['startup_s']:.1f} s"
              + (f"; failing hosts {','.join(r['failing_hosts'])} (max_attempts {r['max_attempts']}), "
                 f"{r['rescheduled_servers']} servers rescheduled, build p50 s (0 / >=1) "
                 f"{_seconds(r['build_p50_s_no_reschedule'])} / {_seconds(r['build_p50_s_rescheduled'])}, "
                 f"failed attempt p50 {_seconds(r['failed_attempt_p50_s'])} s"
                 if r["failing_hosts"] else ""))
    sources = {r["build_time_source"] for r in results.values()}
    print(f"build duration per server: {' / '.join(sorted(sources))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=10, help="Concurrent clients (boots and deletes).")
    parser.add_argument("--list-repeats", type=int, default=20)
    parser.add_argument("--listed", type=int, default=1000,
                        help="Servers of the large listing (GET /servers/detail p50 and the peak RSS after it).")
    parser.add_argument("--runs", type=int, default=1, help="Runs of each row (fresh clouds); medians reported.")
    parser.add_argument("--failing-fraction", type=float, default=0.2,
                        help="Fraction of the hosts that fail every build in the second run; 0: baseline only.")
    parser.add_argument("--max-attempts", type=int, default=3, help="[scheduler] max_attempts of both runs.")
    parser.add_argument("--deployment", choices=["all-in-one", "multinode", "both"], default="all-in-one",
                        help="multinode: scripts/multinode.sh with --hosts compute processes (baseline only).")
    parser.add_argument("--network", action="store_true",
                        help="Also boot on one network per project (the row 'networking'; all-in-one only).")
    parser.add_argument("--projects", type=int, default=10, help="Projects (one network each) of --network.")
    parser.add_argument("--network-only", action="store_true",
                        help="With --network: only the rows 'no network' and 'networking' (no anchors, no failing).")
    parser.add_argument("--profile", metavar="DIR",
                        help="py-spy records the cloud during each all-in-one, no-network and networked boot: "
                             "DIR/all-in-one-<run>.txt, DIR/no-network-<run>.txt, DIR/networking-<run>.txt, and the "
                             "all-in-one's deletes: DIR/deletes-all-in-one-<run>.txt (collapsed stacks), their top "
                             "functions printed.")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "boot.json"))
    args = parser.parse_args()
    if not 0 <= args.failing_fraction < 1:
        parser.error("--failing-fraction must be in [0, 1)")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.listed < 50:
        parser.error("--listed must be at least 50 (the burst's boots are among them)")
    if args.network_only and (not args.network or args.deployment != "all-in-one"):
        parser.error("--network-only needs --network and the all-in-one")
    profiles = Path(args.profile) if args.profile else None
    if profiles is not None:
        profiles.mkdir(parents=True, exist_ok=True)
    each: dict[str, list[dict[str, Any]]] = {}
    for run_index in range(args.runs):
        if args.network_only:
            each.setdefault("no network", []).append(measure(
                args.servers, args.hosts, args.concurrency, args.list_repeats, max_attempts=args.max_attempts,
                profile=profiles / f"no-network-{run_index + 1}.txt" if profiles is not None else None))
        elif args.deployment != "multinode":
            each.setdefault("all-in-one", []).append(measure(
                args.servers, args.hosts, args.concurrency, args.list_repeats, max_attempts=args.max_attempts,
                anchors=True, listed=args.listed,
                profile=profiles / f"all-in-one-{run_index + 1}.txt" if profiles is not None else None))
        if args.deployment != "all-in-one":
            each.setdefault("multinode", []).append(measure_multinode(
                args.servers, args.hosts, args.concurrency, args.list_repeats, listed=args.listed))
        if args.failing_fraction > 0 and args.deployment == "all-in-one" and not args.network_only:
            each.setdefault("failing", []).append(measure(
                args.servers, args.hosts, args.concurrency, args.list_repeats,
                failing_fraction=args.failing_fraction, max_attempts=args.max_attempts))
        if args.network and args.deployment != "multinode":
            each.setdefault("networking", []).append(measure(
                args.servers, args.hosts, args.concurrency, args.list_repeats, max_attempts=args.max_attempts,
                projects=max(1, args.projects),
                profile=profiles / f"networking-{run_index + 1}.txt" if profiles is not None else None))
    results = {name: median_of(runs) for name, runs in each.items()}
    print_table(results)
    port_cost = per_port_cost(results)
    if port_cost:
        polled = port_cost["poll_cpu_ms_per_server"]
        print(f"a port's cost in a boot: {port_cost['wall_ms_per_port']:.1f} ms of wall time at "
              f"{args.concurrency} clients (1/servers/s with ports - without), "
              f"{port_cost['cpu_ms_per_port']:.1f} ms of the cloud's CPU (per server, with - without, the "
              f"progress poll's taken out: {polled['without']:.1f} / {polled['with']:.1f} ms per server; "
              f"{port_cost['cpu_ms_per_port_poll_included']:.1f} ms with it)")
        results["per_port"] = port_cost
    for path in sorted(profiles.glob("*.txt")) if profiles is not None else []:
        print(f"{path}: top functions by own samples (% own, % inclusive)")
        for name, own_pct, incl_pct in profile_top(path):
            print(f"  {own_pct:5.1f} {incl_pct:5.1f}  {name}")
    machine = {"cpus": os.cpu_count(), "cpu": _cpu_model(), "load_1m_at_end": os.getloadavg()[0]}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({**results, "machine": machine, "each_run": each}, indent=2) + "\n")
    print(f"machine: {machine['cpus']} CPUs, {machine['cpu']}, 1-min load at the end {machine['load_1m_at_end']:.2f}")
    print(f"written {args.json}")
    return 0


def per_port_cost(results: dict[str, dict[str, Any]]) -> dict[str, float] | None:
    """What a server's one port adds to its boot: from the rows with and without networking (``no network``, or
    the all-in-one's, whose boot is the same), in wall time per server at the clients' concurrency and in the
    cloud's CPU per server."""
    with_ports = results.get("networking")
    without = results.get("no network") or results.get("all-in-one")
    if not with_ports or not without:
        return None
    return {"wall_ms_per_port": 1000 * (1 / with_ports["servers_per_s"] - 1 / without["servers_per_s"]),
            "cpu_ms_per_port": (with_ports["cpu_ms_per_server_without_poll"]
                                - without["cpu_ms_per_server_without_poll"]),
            "cpu_ms_per_port_poll_included": with_ports["cpu_ms_per_server"] - without["cpu_ms_per_server"],
            "poll_cpu_ms_per_server": {"without": without["poll_cpu_ms_per_server"],
                                       "with": with_ports["poll_cpu_ms_per_server"]},
            "post_p50_ms_added": with_ports["post_p50_ms"] - without["post_p50_ms"]}


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
