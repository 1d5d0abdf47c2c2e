"""Scheduler benchmark: select_destinations among 1,000 and 10,000 simulated hosts, then boots through the API.

    python benchmarks/scheduler.py [--hosts 1000,10000] [--requests 2000] [--api-hosts 1000] [--api-servers 200]
                                   [--json PATH]

Each fleet is written to a fresh SQLite database (stratus.db.fleet: the rows a fake compute fleet would
write) with realistic mixed usage: hosts 0-90 % full, three availability zones, an SSD aggregate, 2 % disabled,
1 % silent (down), some I/O load and a few hosts with failed builds. The scheduler then answers one-instance
requests with mixed flavors (a quarter of them zone-pinned, a tenth asking for SSD hosts), claiming each in the
database; between requests, compute hosts "delete" earlier instances so the scheduler's picture keeps
reconciling. Latency is per select_destinations call, claim included. Memory per host is what the host
manager holds (tracemalloc over the initial load, arrays and per-host objects).

Prints a table and writes JSON (default benchmarks/results/scheduler-<time>.json).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from stratus import conf as conf_mod
from stratus.db import fleet, placement
from stratus.scheduler.manager import SchedulerManager
from stratus.service import open_database
from stratus.utils import new_uuid

FLAVORS = [(1, 512, 1), (1, 2048, 20), (2, 4096, 40), (4, 8192, 80), (8, 16384, 160)]
ZONES = ["az1", "az2", "az3"]
NOVA_SECONDS_PER_INSTANCE_AT_10K = 1.8


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]


def simulated_fleet(count: int, rng: random.Random) -> list[fleet.SimHost]:
    hosts = []
    for i in range(count):
        fill = rng.random() * 0.9
        vcpus, memory_mb, local_gb = rng.choice([(32, 131072, 1024), (64, 262144, 2048), (96, 393216, 4096)])
        hosts.append(fleet.SimHost(
            host=f"sim-{i:05d}", vcpus=vcpus, memory_mb=memory_mb, local_gb=local_gb,
            used_vcpus=int(vcpus * 16.0 * fill), used_memory_mb=int(memory_mb * 1.5 * fill),
            used_disk_gb=int(local_gb * fill), disabled=rng.random() < 0.02,
            silent_for=3600 if rng.random() < 0.01 else 0, availability_zone=ZONES[i % len(ZONES)],
            aggregate_metadata={"ssd": "true"} if i % 10 == 0 else {},
            num_instances=int(fill * 40), io_workload=rng.randrange(4), failed_builds=int(rng.random() < 0.01)))
    return hosts


def request_spec(rng: random.Random) -> dict[str, Any]:
    vcpus, ram, disk = rng.choice(FLAVORS)
    extra_specs = {"aggregate_instance_extra_specs:ssd": "true"} if rng.random() < 0.1 else {}
    spec: dict[str, Any] = {"project_id": "bench", "user_id": "bench", "image": {"disk_format": "qcow2"},
                            "flavor": {"vcpus": vcpus, "memory_mb": ram, "root_gb": disk, "ephemeral_gb": 0,
                                       "swap": 0, "extra_specs": extra_specs}}
    if rng.random() < 0.25:
        spec["availability_zone"] = rng.choice(ZONES)
    return spec


async def bench_fleet(count: int, requests: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="stratus-sched-bench-") as tmp:
        conf = conf_mod.load(overrides={
            "DEFAULT": {"state_path": tmp},
            "filter_scheduler": {"enabled_filters": [
                "ComputeFilter", "AvailabilityZoneFilter", "ComputeCapabilitiesFilter", "ImagePropertiesFilter",
                "AggregateInstanceExtraSpecsFilter", "ServerGroupAntiAffinityFilter",
                "ServerGroupAffinityFilter", "SameHostFilter", "DifferentHostFilter"]}})
        db = await open_database(conf)
        t0 = time.perf_counter()
        async with db.write() as conn:
            await fleet.seed(conn, simulated_fleet(count, rng))
        seed_s = time.perf_counter() - t0

        gc.collect()
        tracemalloc.start()
        scheduler = SchedulerManager(conf, db)
        t0 = time.perf_counter()
        await scheduler.host_manager.sync(force=True)
        load_s = time.perf_counter() - t0
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        latencies: list[float] = []
        consumers: list[str] = []
        refused = 0
        for n in range(requests):
            if n and n % 50 == 0 and consumers:  # compute hosts delete some earlier instances meanwhile
                async with db.write() as conn:
                    for _ in range(10):
                        await placement.remove_allocations(conn, consumers.pop(rng.randrange(len(consumers))))
            uuid = new_uuid()
            spec = request_spec(rng)
            t0 = time.perf_counter()
            try:
                await scheduler.select_destinations({}, spec, [uuid])
                consumers.append(uuid)
            except Exception:
                refused += 1
            latencies.append(time.perf_counter() - t0)
        await db.dispose()
    return {
        "hosts": count, "requests": requests, "refused": refused,
        "p50_ms": statistics.median(latencies) * 1e3, "p99_ms": percentile(latencies, 99) * 1e3,
        "max_ms": max(latencies) * 1e3, "mean_ms": statistics.fmean(latencies) * 1e3,
        "initial_load_s": load_s, "seed_s": seed_s,
        "memory_per_host_bytes": held / count, "memory_total_mib": held / 2 ** 20,
        "speedup_vs_nova_10k": NOVA_SECONDS_PER_INSTANCE_AT_10K / statistics.median(latencies),
    }


def api_boots(hosts: int, servers: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    import boot  # benchmarks/boot.py: the same measurement, many more hosts

    return boot.measure(servers=servers, hosts=hosts, concurrency=20, list_repeats=5)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="1000,10000", help="comma-separated fleet sizes")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--api-hosts", type=int, default=1000, help="hosts for the API boot run (0 skips it)")
    parser.add_argument("--api-servers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    rows = [asyncio.run(bench_fleet(int(n), args.requests, args.seed)) for n in args.hosts.split(",")]
    print(f"{'hosts':>7} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'load s':>7} "
          f"{'B/host':>7} {'vs Nova':>8}")
    for r in rows:
        print(f"{r['hosts']:>7} {r['requests']:>8} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} "
              f"{r['initial_load_s']:>7.2f} {r['memory_per_host_bytes']:>7.0f} {r['speedup_vs_nova_10k']:>7.0f}x")
    result: dict[str, Any] = {"select_destinations": rows}
    if args.api_hosts:
        boots = api_boots(args.api_hosts, args.api_servers)
        result["api_boots"] = boots
        print(f"\nAPI: {boots['servers']} servers on {boots['hosts']} hosts (started in {boots['startup_s']:.1f} s): "
              f"all ACTIVE in {boots['all_active_s']:.2f} s ({boots['servers_per_s']:.1f} servers/s), "
              f"POST p50 {boots['post_p50_ms']:.1f} ms, peak RSS {boots['peak_rss_mib']:.0f} MiB")
    out = args.json or Path(__file__).parent / "results" / f"scheduler-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
