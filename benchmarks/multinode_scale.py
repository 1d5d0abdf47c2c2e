"""Scale by simulation: 1,000 hosts over 10 compute processes on RabbitMQ and PostgreSQL (issue 16).

    python benchmarks/multinode_scale.py [--computes 10] [--hosts-per-compute 100] [--servers 200]
                                         [--window 20] [--json benchmarks/results/multinode_scale.json]

Brings up scripts/multinode.sh (PostgreSQL, RabbitMQ, one API with 2 workers, 2 schedulers, 2 conductors) with
``--computes`` compute processes, each ``stratus compute --host compute-I --fake-hosts N`` (hosts compute-I-1..N,
each with its own services row, compute node and resource provider, all heartbeating in one statement per
process), and measures:

* the time from ``multinode.sh up`` until os-services lists every simulated host up and os-hypervisors lists
  all of them up;
* the RSS of each compute process (now and peak);
* the heartbeat load over ``--window`` seconds, read from PostgreSQL's own counters (rows of ``services``
  updated per second, commits per second of the whole database) and the oldest heartbeat of any compute
  service seen meanwhile (against ``service_down_time``);
* then ``--servers`` boots through the API (benchmarks/boot.py's run: servers/s from the first POST to all
  ACTIVE) and how many distinct hosts and compute processes they landed on.

Everything is torn down after. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from boot import Multinode, peak_rss_mib, run  # noqa: E402

SCRIPT = ROOT / "scripts" / "multinode.sh"
#: scripts/multinode.sh's heartbeat settings
REPORT_INTERVAL = 2
SERVICE_DOWN_TIME = 20


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _database_url(directory: Path) -> str:
    """The asyncpg URL of the cloud's database (from the API's configuration file)."""
    match = re.search(r"^connection = (\S+)$", (directory / "etc" / "api.conf").read_text(), re.M)
    assert match is not None
    return match.group(1).replace("postgresql+asyncpg://", "postgresql://")


async def _heartbeat_load(url: str, window: float) -> dict[str, Any]:
    """PostgreSQL's counters over ``window`` seconds, and the oldest compute heartbeat sampled every second."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        async def counters() -> tuple[int, int, float]:
            updated = await conn.fetchval("select n_tup_upd from pg_stat_user_tables where relname = 'services'")
            commits = await conn.fetchval(
                "select xact_commit from pg_stat_database where datname = current_database()")
            return int(updated or 0), int(commits or 0), time.monotonic()

        await conn.execute("select pg_stat_clear_snapshot()")
        updated0, commits0, t0 = await counters()
        oldest = 0.0
        while time.monotonic() - t0 < window:
            await asyncio.sleep(1)
            age = await conn.fetchval(
                "select extract(epoch from (now() at time zone 'utc') - min(last_seen_up)) from services "
                "where \"binary\" = 'nova-compute'")
            oldest = max(oldest, float(age or 0))
        # PostgreSQL flushes a backend's counters at most once a second: wait that out before the last read
        await asyncio.sleep(1.5)
        await conn.execute("select pg_stat_clear_snapshot()")
        updated1, commits1, t1 = await counters()
        rows = await conn.fetchval("select count(*) from services where \"binary\" = 'nova-compute'")
    finally:
        await conn.close()
    seconds = t1 - t0
    return {"window_s": seconds, "service_rows_updated_per_s": (updated1 - updated0) / seconds,
            "db_commits_per_s": (commits1 - commits0) / seconds, "oldest_compute_heartbeat_s": oldest,
            "compute_service_rows": int(rows)}


def _wait_fleet(cloud: Multinode, headers: dict[str, str], hosts: int, timeout: float) -> None:
    """Until os-services lists ``hosts`` compute services up and os-hypervisors ``hosts`` hypervisors up."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=cloud.compute_url, headers=headers, timeout=60) as api:
        while time.monotonic() < deadline:
            services = api.get("/os-services", params={"binary": "nova-compute"}).json()["services"]
            hypervisors = api.get("/os-hypervisors/detail", params={"limit": hosts * 2}).json()["hypervisors"]
            if (len(services) == hosts and all(s["state"] == "up" for s in services)
                    and len(hypervisors) == hosts and all(h["state"] == "up" for h in hypervisors)):
                return
            time.sleep(0.5)
    raise RuntimeError(f"{hosts} hosts not up in os-services and os-hypervisors within {timeout} s")


def _placement(cloud: Multinode, headers: dict[str, str]) -> tuple[Counter[str], Counter[str]]:
    """Servers per host and per compute process (host compute-I-J runs in process compute-I)."""
    with httpx.Client(base_url=cloud.compute_url, headers=headers, timeout=60) as api:
        servers = api.get("/servers/detail", params={"limit": 100000}).json()["servers"]
    per_host = Counter(s["OS-EXT-SRV-ATTR:host"] for s in servers)
    per_process = Counter(host.rsplit("-", 1)[0] for host in per_host.elements())
    return per_host, per_process


def measure(computes: int, per_compute: int, servers: int, window: float) -> dict[str, Any]:
    hosts = computes * per_compute
    directory = Path(tempfile.mkdtemp(prefix="stratus-scale-", dir="/tmp"))
    env = {**os.environ, "STRATUS_PYTHON": sys.executable, "MULTINODE_COMPUTES": str(computes),
           "MULTINODE_FAKE_HOSTS": str(per_compute), "MULTINODE_TIMEOUT": "900",
           "MULTINODE_EXTRA_CONF": "[quota]\ninstances = -1\ncores = -1\nram = -1"}
    result: dict[str, Any] = {"computes": computes, "hosts_per_compute": per_compute, "hosts": hosts,
                              "report_interval_s": REPORT_INTERVAL, "service_down_time_s": SERVICE_DOWN_TIME}
    try:
        started = time.perf_counter()
        subprocess.run([str(SCRIPT), "up", str(directory)], check=True, env=env, timeout=1200,
                       stdout=subprocess.DEVNULL)
        result["services_up_s"] = time.perf_counter() - started
        cloud = Multinode(directory)
        headers = cloud.token_headers()
        _wait_fleet(cloud, headers, hosts, 300)
        result["fleet_up_s"] = time.perf_counter() - started
        pids = cloud.pids()
        compute_pids = {n: p for n, p in pids.items() if n.startswith("compute-")}
        result["compute_rss_mib"] = {n: _rss_mib(p) for n, p in sorted(compute_pids.items())}
        result["heartbeats"] = asyncio.run(_heartbeat_load(_database_url(directory), window))
        boot = asyncio.run(run(cloud, servers, 20, 3, headers=headers))
        result["boot"] = {k: boot[k] for k in ("servers", "posted_s", "all_active_s", "servers_per_s",
                                               "post_p50_ms", "post_p99_ms", "build_p50_s")}
        per_host, per_process = _placement(cloud, headers)
        result["boot"]["distinct_hosts"] = len(per_host)
        result["boot"]["distinct_compute_processes"] = len(per_process)
        result["boot"]["servers_per_process"] = dict(sorted(per_process.items()))
        result["boot"]["max_servers_on_one_host"] = max(per_host.values())
        result["compute_peak_rss_mib"] = {n: peak_rss_mib(p) for n, p in sorted(compute_pids.items())}
        result["all_processes_peak_rss_mib"] = {n: peak_rss_mib(p) for n, p in sorted(pids.items())}
    finally:
        subprocess.run([str(SCRIPT), "down", str(directory)], env=env, timeout=300, check=False,
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(directory, ignore_errors=True)
    return result


def print_table(r: dict[str, Any]) -> None:
    rss = list(r["compute_rss_mib"].values())
    peak = list(r["compute_peak_rss_mib"].values())
    hb, boot = r["heartbeats"], r["boot"]
    rows = [
        ("simulated hosts (processes x hosts)", f"{r['hosts']} ({r['computes']} x {r['hosts_per_compute']})"),
        ("multinode.sh up (all services up)", f"{r['services_up_s']:.1f} s"),
        ("1000 hosts up in os-services + os-hypervisors".replace("1000", str(r["hosts"])),
         f"{r['fleet_up_s']:.1f} s"),
        ("RSS per compute process (min/max)", f"{min(rss):.0f} / {max(rss):.0f} MiB"),
        ("peak RSS per compute process (max)", f"{max(peak):.0f} MiB"),
        ("compute service rows", str(hb["compute_service_rows"])),
        ("services rows updated/s (heartbeats)", f"{hb['service_rows_updated_per_s']:.0f}"),
        ("database commits/s (everything)", f"{hb['db_commits_per_s']:.1f}"),
        ("oldest compute heartbeat seen", f"{hb['oldest_compute_heartbeat_s']:.1f} s "
                                          f"(down after {r['service_down_time_s']} s)"),
        (f"boot {boot['servers']}: servers/s", f"{boot['servers_per_s']:.1f}"),
        ("boot: all ACTIVE after", f"{boot['all_active_s']:.1f} s"),
        ("boot: distinct hosts / compute processes",
         f"{boot['distinct_hosts']} / {boot['distinct_compute_processes']}"),
        ("boot: most servers on one host", str(boot["max_servers_on_one_host"])),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--computes", type=int, default=10)
    parser.add_argument("--hosts-per-compute", type=int, default=100)
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--window", type=float, default=20.0, help="Seconds of heartbeat load measured.")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "multinode_scale.json")
    args = parser.parse_args()
    result = measure(args.computes, args.hosts_per_compute, args.servers, args.window)
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
