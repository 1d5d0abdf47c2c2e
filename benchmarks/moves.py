"""Move benchmark: a resize, a cold migration and a live migration of the test guest between two real libvirt
compute hosts on this machine, and the controller's share of each.

    python benchmarks/moves.py [--runs 3] [--nic] [--json PATH]

The cloud is tests/integration/libvirt_pair.py's: two private libvirtds (scripts/libvirt.sh), each with a
``stratus compute`` of its own and its own instances_path (no shared file system), and ``stratus api``,
``conductor`` and ``scheduler`` processes on a private RabbitMQ and PostgreSQL (scripts/rabbitmq.sh,
scripts/postgres.sh). One test guest (scripts/test-guest.sh, TCG) boots, then each run moves it:

- ``live migration``: ``os-migrateLive`` (``block_migration: auto``: a block migration, the hosts share no
  storage) to the other host, from the POST to the migration ``completed`` with no task left;
- ``cold migration``: ``migrate`` to the other host, from the POST to VERIFY_RESIZE, then ``confirmResize``
  to ACTIVE (both timed; the row is their sum);
- ``resize``: ``resize`` to a flavor with more RAM (the scheduler may keep it on its host or move it), then
  ``confirmResize``, timed the same way; the next run resizes back.

With ``--nic`` (root) the pair has the network data plane (``libvirt_pair(netns=True)``: each libvirtd in its
host's namespace, Linux bridge agents, a DHCP agent on a network node) and the guest has a port on a VXLAN
network: its VIFs are plugged on each destination, and its port's binding moves with it.

Every compute process runs with ``STRATUS_DRIVER_TIMINGS`` (stratus/virt/timing.py): each driver call of the
guest, on either host, is logged with its start and end, and the driver's time in a move is the union of those
calls within it. The controller's share is the rest: API, conductor, scheduler, RPC, database and the poll's own
granularity (50 ms). A move the driver cannot do (the driver raises NotImplementedError) is reported as such.
Prints a table (medians over ``--runs``) and writes JSON: {"moves": {name: {...}}, "each_run": {...},
"machine": {...}}.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stratus.local_cloud import free_port  # noqa: E402
from stratus.virt import timing  # noqa: E402
from tests.integration.conftest import RabbitMQ, _free_ports  # noqa: E402
from tests.integration.guest import BOOTED, upload_guest  # noqa: E402
from tests.integration.libvirt_pair import LibvirtPair, libvirt_pair  # noqa: E402

SCRIPTS = ROOT / "scripts"
VERSION = "2.30"
POLL = 0.05


@contextlib.contextmanager
def services(work: Path) -> Iterator[tuple[RabbitMQ, str]]:
    """A private RabbitMQ and PostgreSQL for the pair's cloud, stopped after."""
    data = work / "pg" / "data"
    data.parent.mkdir(parents=True)
    data.parent.chmod(0o755)
    pg = subprocess.run([str(SCRIPTS / "postgres.sh"), "start", str(data), str(free_port())], check=True,
                        capture_output=True, text=True, timeout=600).stdout.strip().splitlines()[-1]
    port = _free_ports(3)
    broker = RabbitMQ(url=f"rabbit://guest:guest@127.0.0.1:{port}/", directory=work / "rabbitmq", port=port)
    try:
        broker.start()
        yield broker, pg
    finally:
        subprocess.run([str(SCRIPTS / "rabbitmq.sh"), "stop", str(broker.directory)], check=False, timeout=120)
        subprocess.run([str(SCRIPTS / "postgres.sh"), "stop", str(data)], check=False, timeout=120)


def test_guest() -> Path:
    version = hashlib.sha256((SCRIPTS / "test-guest.sh").read_bytes()).hexdigest()[:12]
    out = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stratus" / f"test-guest-{version}"
    subprocess.run([str(SCRIPTS / "test-guest.sh"), str(out)], check=True, stdout=subprocess.DEVNULL, timeout=900)
    return out


class Bench:
    def __init__(self, pair: LibvirtPair, timings: Path) -> None:
        self.pair = pair
        self.api = pair.client(VERSION)
        self.timings = timings

    def flavor(self, name: str, ram: int) -> str:
        resp = self.api.post("/flavors", json={"flavor": {"name": name, "ram": ram, "vcpus": 1, "disk": 1}})
        resp.raise_for_status()
        return str(resp.json()["flavor"]["id"])

    def server(self, server_id: str) -> dict[str, Any]:
        return dict(self.api.get(f"/servers/{server_id}").json()["server"])

    def wait(self, server_id: str, done: Any, what: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server(server_id)
            if done(server):
                return server
            if server["status"] == "ERROR":
                raise RuntimeError(f"{server_id} went to ERROR waiting for {what}: {server.get('fault')}")
            time.sleep(POLL)
        raise RuntimeError(f"timed out waiting for {what}")

    def port(self) -> list[dict[str, str]]:
        """A port on a network of its own (the guest's ``networks``)."""
        with self.pair.network_client() as net:
            network = net.post("/networks", json={"network": {"name": "bench-move"}})
            network.raise_for_status()
            net_id = network.json()["network"]["id"]
            net.post("/subnets", json={"subnet": {"network_id": net_id, "cidr": "10.78.0.0/24",
                                                  "ip_version": 4}}).raise_for_status()
            port = net.post("/ports", json={"port": {"network_id": net_id}})
            port.raise_for_status()
            return [{"port": str(port.json()["port"]["id"])}]

    def boot(self, image: str, flavor: str, networks: Any = "none") -> str:
        resp = self.pair.client("2.37").post("/servers", json={"server": {"name": "bench-move", "imageRef": image,
                                                          "flavorRef": flavor, "networks": networks}})
        resp.raise_for_status()
        server_id = str(resp.json()["server"]["id"])
        self.wait(server_id, lambda s: s["status"] == "ACTIVE", "ACTIVE")
        deadline = time.monotonic() + 300
        while BOOTED not in self.api.post(f"/servers/{server_id}/action",
                                          json={"os-getConsoleOutput": {"length": None}}).json()["output"]:
            if time.monotonic() > deadline:
                raise RuntimeError("the guest did not boot")
            time.sleep(0.5)
        return server_id

    def migration(self, server_id: str) -> dict[str, Any]:
        found = self.api.get("/os-migrations", params={"instance_uuid": server_id}).json()["migrations"]
        return dict(max(found, key=lambda m: m["id"]))

    def split(self, server_id: str, start: float, end: float) -> dict[str, float]:
        wall = end - start
        driver = timing.busy_seconds(timing.load(str(self.timings)), start, end, server_id)
        return {"wall": wall, "driver": driver, "controller": wall - driver,
                "controller_share": (wall - driver) / wall if wall else 0.0}

    def action(self, server_id: str, body: dict[str, Any]) -> None:
        resp = self.api.post(f"/servers/{server_id}/action", json=body)
        if resp.status_code not in (202, 204):
            raise RuntimeError(f"{next(iter(body))}: {resp.status_code} {resp.text}")

    def live(self, server_id: str) -> dict[str, Any]:
        source = self.server(server_id)["OS-EXT-SRV-ATTR:host"]
        dest = self.pair.other(source).name
        start = time.time()
        self.action(server_id, {"os-migrateLive": {"host": dest, "block_migration": "auto"}})
        self.wait(server_id, lambda s: s["OS-EXT-STS:task_state"] is None
                  and self.migration(server_id)["status"] in ("completed", "error", "cancelled"), "the migration")
        end = time.time()
        migration = self.migration(server_id)
        if migration["status"] != "completed" or self.server(server_id)["OS-EXT-SRV-ATTR:host"] != dest:
            raise RuntimeError(f"live migration ended {migration['status']}: {self.server(server_id).get('fault')}")
        return {**self.split(server_id, start, end), "from": source, "to": dest}

    def cold(self, server_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """resize or migrate, then confirm: each part's split, and their sum."""
        source = self.server(server_id)["OS-EXT-SRV-ATTR:host"]
        start = time.time()
        self.action(server_id, body)
        server = self.wait(server_id, lambda s: s["status"] in ("VERIFY_RESIZE", "ACTIVE")
                           and s["OS-EXT-STS:task_state"] is None, "VERIFY_RESIZE")
        moved = time.time()
        if server["status"] != "VERIFY_RESIZE":
            raise RuntimeError(f"{next(iter(body))} did not happen: {server.get('fault')}")
        self.action(server_id, {"confirmResize": None})
        self.wait(server_id, lambda s: s["status"] == "ACTIVE" and s["OS-EXT-STS:task_state"] is None, "ACTIVE")
        end = time.time()
        whole = self.split(server_id, start, end)
        return {**whole, "move": self.split(server_id, start, moved), "confirm": self.split(server_id, moved, end),
                "from": source, "to": self.server(server_id)["OS-EXT-SRV-ATTR:host"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nic", action="store_true", help="the guest has a port on a VXLAN network (root)")
    parser.add_argument("--json", default=None, help="default: results/moves.json, with --nic moves-nic.json")
    args = parser.parse_args()
    args.json = args.json or str(Path(__file__).parent / "results" / ("moves-nic.json" if args.nic else "moves.json"))
    guest_dir = test_guest()
    work = Path(tempfile.mkdtemp(prefix="stratus-moves-", dir="/tmp"))
    work.chmod(0o755)
    timings = work / "driver-timings.jsonl"
    os.environ[timing.ENV] = str(timings)  # the pair's processes inherit it
    each: dict[str, list[dict[str, Any]]] = {"live migration": [], "cold migration": [], "resize": []}
    errors: dict[str, str] = {}
    try:
        with services(work) as (broker, pg), libvirt_pair(broker, pg, work / "pair", netns=args.nic) as pair:
            bench = Bench(pair, timings)
            with pair.image_client() as images:
                guest = upload_guest(images, guest_dir)
            small, big = bench.flavor("bench.move", 256), bench.flavor("bench.move.big", 320)
            server_id = bench.boot(guest.disk_id, small, bench.port() if args.nic else "none")
            flavors = [big, small]
            for run in range(args.runs):
                for name, step in (("live migration", lambda: bench.live(server_id)),
                                   ("cold migration", lambda: bench.cold(server_id, {"migrate": None})),
                                   ("resize", lambda r=run: bench.cold(
                                       server_id, {"resize": {"flavorRef": flavors[r % 2]}}))):
                    if name in errors:
                        continue
                    try:
                        each[name].append(step())
                    except RuntimeError as exc:
                        errors[name] = str(exc)
                        print(f"{name}: {exc}", file=sys.stderr)
                        bench.wait(server_id, lambda s: s["OS-EXT-STS:task_state"] is None, "the server to settle")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    moves: dict[str, Any] = {}
    print(f"{'move':<15} | {'runs':>4} | {'wall':>8} | {'driver':>8} | {'controller':>10} | {'share':>6}")
    for name, runs in each.items():
        if not runs:
            moves[name] = {"error": errors.get(name, "not run")}
            print(f"{name:<15} | {0:>4} | {'—':>8} | {'—':>8} | {'—':>10} | {'—':>6}  {moves[name]['error'][:60]}")
            continue
        med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "driver", "controller")}
        med["controller_share"] = med["controller"] / med["wall"]
        moves[name] = med
        print(f"{name:<15} | {len(runs):>4} | {med['wall']:>6.2f} s | {med['driver']:>6.2f} s | "
              f"{med['controller']:>8.2f} s | {med['controller_share']:>6.1%}")
    results = {"moves": moves, "each_run": each, "errors": errors, "nic": args.nic,
               "machine": {"cpus": os.cpu_count(), "virt": "TCG" if not os.path.isdir("/sys/module/kvm_intel")
                           and not os.path.isdir("/sys/module/kvm_amd") else "KVM"}}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
