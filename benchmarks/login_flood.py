"""Login flood benchmark: the admin's own login while many wrong-password logins run at once.

    python benchmarks/login_flood.py [--flood 100] [--seconds 20] [--target other|unknown|admin] [--rounds 12]
                                     [--lockout N] [--json PATH]

Starts an all-in-one with the embedded identity service (bcrypt cost ``--rounds``, 12 by default as in
``[identity] password_hash_rounds``), creates a user ``victim``, then keeps ``--flood`` concurrent wrong-password
logins running against the target (``other``: the user victim; ``unknown``: user names that do not exist;
``admin``: the admin itself) while the admin logs in with the right password, one login after another;
``--lockout N`` sets ``[security_compliance] lockout_failure_attempts``. Prints the admin's login latencies and
answers, and the flood's guesses per second; writes JSON (default benchmarks/results/login_flood-<time>.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from stratus.local_cloud import start_cloud, stop_cloud


def login_body(name: str, password: str) -> dict[str, Any]:
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}


async def flood(client: httpx.AsyncClient, target: str, stop: asyncio.Event, counts: dict[str, int], n: int
                ) -> None:
    while not stop.is_set():
        name = f"nobody-{n}-{counts['sent']}" if target == "unknown" else target
        counts["sent"] += 1
        try:
            resp = await client.post("/auth/tokens", json=login_body(name, "wrong-password"))
            counts[str(resp.status_code)] = counts.get(str(resp.status_code), 0) + 1
        except httpx.HTTPError:
            counts["errors"] += 1


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        extra = f"[identity]\npassword_hash_rounds = {args.rounds}\n"
        if args.lockout:
            extra += f"[security_compliance]\nlockout_failure_attempts = {args.lockout}\n"
        cloud = start_cloud(Path(tmp), extra, auth_strategy="embedded")
        try:
            limits = httpx.Limits(max_connections=args.flood + 10, max_keepalive_connections=args.flood + 10)
            async with httpx.AsyncClient(base_url=cloud.identity_url, timeout=600, limits=limits) as client:
                password = cloud.admin_password
                t0 = time.perf_counter()
                resp = await client.post("/auth/tokens", json=login_body("admin", password))
                idle = time.perf_counter() - t0
                resp.raise_for_status()
                headers = {"X-Auth-Token": resp.headers["X-Subject-Token"]}
                created = await client.post("/users", headers=headers, json={"user": {
                    "name": "victim", "password": "victim-secret", "domain_id": "default"}})
                created.raise_for_status()
                target = {"other": "victim", "unknown": "unknown", "admin": "admin"}[args.target]
                stop = asyncio.Event()
                counts: dict[str, int] = {"sent": 0, "errors": 0}
                workers = [asyncio.create_task(flood(client, target, stop, counts, n)) for n in range(args.flood)]
                await asyncio.sleep(2)  # the flood is in full swing
                latencies: list[float] = []
                answers: dict[str, int] = {}
                flood_start, answered_start = time.perf_counter(), _answered(counts)
                deadline = time.monotonic() + args.seconds
                while time.monotonic() < deadline or not latencies:
                    t0 = time.perf_counter()
                    resp = await client.post("/auth/tokens", json=login_body("admin", password))
                    latencies.append(time.perf_counter() - t0)
                    answers[str(resp.status_code)] = answers.get(str(resp.status_code), 0) + 1
                guesses = (_answered(counts) - answered_start) / (time.perf_counter() - flood_start)
                stop.set()
                await asyncio.gather(*workers)
        finally:
            stop_cloud(cloud)
    return {"target": args.target, "flood": args.flood, "rounds": args.rounds, "lockout": args.lockout,
            "idle_login_s": round(idle, 3), "admin_logins": len(latencies), "admin_answers": answers,
            "admin_login_s": {
                "median": round(statistics.median(latencies), 3), "max": round(max(latencies), 3),
                "min": round(min(latencies), 3)},
            "flood_guesses_per_s": round(guesses, 2), "flood_answers": counts}


def _answered(counts: dict[str, int]) -> int:
    return sum(v for k, v in counts.items() if k.isdigit())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flood", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--target", choices=["other", "unknown", "admin"], default="other")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--lockout", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(f"flood: {args.flood} concurrent wrong-password logins against {args.target!r} "
          f"(bcrypt cost {args.rounds}): {result['flood_guesses_per_s']} guesses/s")
    print(f"admin login: idle {result['idle_login_s']} s; under the flood median "
          f"{result['admin_login_s']['median']} s, max {result['admin_login_s']['max']} s "
          f"({result['admin_logins']} logins, answers {result['admin_answers']})")
    path = args.json or Path(__file__).parent / "results" / f"login_flood-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
