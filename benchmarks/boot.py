"""Boot benchmark: N servers on M simulated hosts through the REST API of a real all-in-one.

    python benchmarks/boot.py [--servers 200] [--hosts 20] [--concurrency 20] [--json PATH]

Measures servers/s from the first POST to all ACTIVE, p50/p99 of POST /servers and of GET /servers/detail
with every server listed, and the peak RSS of the cloud process. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from stratus.local_cloud import Cloud, start_cloud, stop_cloud

HEADERS = {"X-Auth-Token": "admin:admin", "Content-Type": "application/json"}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run(cloud: Cloud, servers: int, concurrency: int, list_repeats: int) -> dict[str, Any]:
    async with httpx.AsyncClient(headers=HEADERS, timeout=120) as http:
        image = (await http.post(f"{cloud.image_url}/v2/images", json={
            "name": "bench", "disk_format": "raw", "container_format": "bare", "visibility": "public"})).json()
        await http.put(f"{cloud.image_url}/v2/images/{image['id']}/file", content=b"\0" * 65536,
                       headers={"Content-Type": "application/octet-stream"})
        post_times: list[float] = []
        ids: list[str] = []
        sem = asyncio.Semaphore(concurrency)

        async def boot(i: int) -> None:
            async with sem:
                t0 = time.perf_counter()
                resp = await http.post(f"{cloud.compute_url}/servers", json={"server": {
                    "name": f"bench-{i}", "imageRef": image["id"], "flavorRef": "42"}})
                post_times.append(time.perf_counter() - t0)
                if resp.status_code != 202:
                    raise RuntimeError(f"boot {i}: {resp.status_code} {resp.text}")
                ids.append(resp.json()["server"]["id"])

        start = time.perf_counter()
        await asyncio.gather(*(boot(i) for i in range(servers)))
        posted = time.perf_counter() - start
        while True:
            body = (await http.get(f"{cloud.compute_url}/servers/detail", params={"limit": servers * 2})).json()
            statuses = [s["status"] for s in body["servers"]]
            if statuses.count("ERROR"):
                raise RuntimeError(f"{statuses.count('ERROR')} servers went to ERROR")
            if len(statuses) >= servers and all(s == "ACTIVE" for s in statuses):
                break
            await asyncio.sleep(0.02)
        all_active = time.perf_counter() - start

        list_times: list[float] = []
        for _ in range(list_repeats):
            t0 = time.perf_counter()
            resp = await http.get(f"{cloud.compute_url}/servers/detail", params={"limit": servers * 2})
            list_times.append(time.perf_counter() - t0)
            assert len(resp.json()["servers"]) == servers
    return {
        "servers": servers,
        "posted_s": posted,
        "all_active_s": all_active,
        "servers_per_s": servers / all_active,
        "post_p50_ms": 1000 * statistics.median(post_times),
        "post_p99_ms": 1000 * percentile(post_times, 99),
        "detail_p50_ms": 1000 * statistics.median(list_times),
        "detail_p99_ms": 1000 * percentile(list_times, 99),
        "peak_rss_mib": peak_rss_mib(cloud.proc.pid),
    }


def measure(servers: int, hosts: int, concurrency: int = 20, list_repeats: int = 20) -> dict[str, Any]:
    """Start a fresh all-in-one with ``hosts`` simulated hosts and unlimited quota, boot, measure, stop."""
    with tempfile.TemporaryDirectory(prefix="stratus-bench-") as tmp:
        started = time.perf_counter()
        cloud = start_cloud(Path(tmp), extra_conf=f"""
            [fake_driver]
            host_count = {hosts}
            [quota]
            instances = -1
            cores = -1
            ram = -1
            """)
        startup = time.perf_counter() - started
        try:
            result = asyncio.run(run(cloud, servers, concurrency, list_repeats))
        finally:
            stop_cloud(cloud)
    result["hosts"] = hosts
    result["startup_s"] = startup
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--list-repeats", type=int, default=20)
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "boot.json"))
    args = parser.parse_args()
    result = measure(args.servers, args.hosts, args.concurrency, args.list_repeats)
    rows = [("servers booted", f"{result['servers']} on {args.hosts} hosts"),
            ("first POST -> all ACTIVE", f"{result['all_active_s']:.2f} s"),
            ("throughput", f"{result['servers_per_s']:.1f} servers/s"),
            ("POST /servers p50 / p99", f"{result['post_p50_ms']:.1f} / {result['post_p99_ms']:.1f} ms"),
            (f"GET /servers/detail ({result['servers']}) p50 / p99",
             f"{result['detail_p50_ms']:.1f} / {result['detail_p99_ms']:.1f} ms"),
            ("peak RSS of the cloud", f"{result['peak_rss_mib']:.0f} MiB")]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
