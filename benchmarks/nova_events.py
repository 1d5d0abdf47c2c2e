"""What one POST of Nova's events costs the process that sends it and serves the compute API (the all-in-one), over
HTTP and in-process, measured in one process, the two interleaved so that the machine's load falls on both alike.

    python benchmarks/nova_events.py [--posts 200] [--rounds 6]

The real compute API application (noauth2, a SQLite database with one server on a host whose RPC listener only
counts the events) is served by uvicorn on a loopback port and also registered in-process on another;
``nova.noauth_post`` to the first goes over HTTP (httpx in a worker thread, the server's parsing and write), to
the second in-process (``in_process.call``). Each round times ``--posts`` POSTs of one ``network-vif-plugged``
each way with the process's CPU time (every thread); the medians and minima of the rounds are printed. The boot
benchmark's per-port figure (benchmarks/boot.py --network) moves with the load by more than this difference.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvicorn

from stratus import conf as conf_mod
from stratus.api.app import create_app
from stratus.api.services import ApiServices
from stratus.db.models import instances
from stratus.identity.auth import NoAuth2
from stratus.network import in_process
from stratus.network.server import nova
from stratus.rpc.local import LocalTransport
from stratus.service import open_database
from stratus.utils import new_uuid, utcnow


class CountingHost:
    """The compute host's side of the cast: counts the events."""

    def __init__(self) -> None:
        self.events = 0

    async def external_instance_event(self, context: dict[str, Any], events: list[dict[str, Any]]) -> None:
        self.events += len(events)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure(posts: int, rounds: int, state_path: Path) -> dict[str, list[float]]:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(state_path)}})
    db = await open_database(conf)
    transport = LocalTransport()
    host = CountingHost()
    await transport.listen("compute", host, server="h1")
    server_uuid, now = new_uuid(), utcnow()
    async with db.write() as conn:
        await conn.execute(instances.insert().values(
            uuid=server_uuid, project_id="p", user_id="u", display_name="s", hostname="s", flavor={"name": "m1"},
            vcpus=1, memory_mb=64, root_gb=1, ephemeral_gb=0, vm_state="building", power_state=0, config_drive="",
            reservation_id="r-1", system_metadata={}, security_groups=[], host="h1", created_at=now,
            updated_at=now))
    auth = NoAuth2()
    app = auth.wrap(create_app(ApiServices(conf=conf, db=db, transport=transport, auth=auth,
                                           images=None)))  # type: ignore[arg-type]
    http_port, local_port = _free_port(), _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=http_port, log_config=None,
                                           access_log=False, lifespan="off"))
    serving = asyncio.create_task(server.serve())
    in_process.register("127.0.0.1", local_port, app)
    try:
        while not server.started:
            if serving.done():
                raise RuntimeError("the compute API's HTTP server did not start")
            await asyncio.sleep(0.01)
        ways = {"http": nova.noauth_post(f"http://127.0.0.1:{http_port}/v2.1"),
                "in-process": nova.noauth_post(f"http://127.0.0.1:{local_port}/v2.1")}
        events = [{"name": "network-vif-plugged", "server_uuid": server_uuid, "tag": "port", "status": "completed"}]
        for post in ways.values():  # warm: connections, validators, statements
            for _ in range(20):
                assert await post(events) == 200
        results: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(rounds):
            for name, post in ways.items():
                started = time.process_time()
                for _ in range(posts):
                    await post(events)
                results[name].append(1000 * (time.process_time() - started) / posts)
        assert ways["http"].in_process is False and ways["in-process"].in_process is True
    finally:
        in_process.unregister(local_port)
        server.should_exit = True
        await serving
        await transport.stop()
        await db.dispose()
    if host.events != 2 * (20 + rounds * posts):
        raise RuntimeError(f"{host.events} events reached the host")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=200, help="POSTs per way and round.")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stratus-events-") as tmp:
        results = asyncio.run(measure(args.posts, args.rounds, Path(tmp)))
    for name, values in results.items():
        print(f"{name}: {statistics.median(values):.2f} ms of CPU per POST (median of {len(values)} rounds of "
              f"{args.posts}; min {min(values):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
