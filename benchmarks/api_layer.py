"""CPU per request of the compute API's per-request layer: the cloud's CPU time per request, by kind.

    python benchmarks/api_layer.py [--requests 2000] [--runs 3] [--profile DIR] [--json PATH]

Starts a fresh all-in-one (fake driver, noauth2, SQLite), boots one server, then sends ``--requests`` sequential
requests of each kind on one keep-alive connection and reports the user + system CPU time the cloud process
spent per request (as ``benchmarks/boot.py`` counts it, to the nanosecond: the machine's load moves it much less
than the wall time):

- ``versions``: GET /v2.1/ (the version document: routing and the response, no caller, no database)
- ``not-found``: GET /v2.1/no-such-path (the router's 404)
- ``extensions``: GET /v2.1/extensions/os-keypairs (the whole per-request layer, a static body)
- ``poll``: GET /v2.1/servers?status=BUILD (boot.py's 20 ms progress poll: an index query, no rows)
- ``show``: GET /v2.1/servers/{id} at 2.100 (a typical compute request: one server's detail)
- ``missing``: DELETE /v2.1/servers/{unknown id} (a lookup and Nova's 404 body)

``--runs`` repeats the whole on fresh clouds and reports each kind's median. ``--profile DIR`` has py-spy record
the cloud during the requests (DIR/api-layer-<run>.txt, collapsed stacks) and prints its top functions.

``--in-process`` measures the compute API's ASGI application alone, called directly in this process (no uvicorn,
no socket, no database: the version document, the 404, the static document, and a 405 of the dispatcher), in CPU
µs per call; with ``--against TREE`` as well, a child process runs the same on that tree (and another on this
one, alternately). ``--in-process --servers`` measures POST /servers (as boot.py posts it; a conductor that takes
the casts and does nothing) and then the index, the detail listing and a show of the servers it made, on a
migrated SQLite database and the embedded image store (``--requests`` boots).

``--against TREE`` compares this checkout with another one (a checkout of the code before a change, say): both
clouds run at once, one from each tree, and each kind's requests go to them in alternate blocks of ``--block``,
so a load on the machine that comes and goes weighs on both alike; it reports each cloud's CPU per request and
their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from boot import _spy_start, _spy_stop, profile_top  # benchmarks/ is the script's directory

from stratus.local_cloud import start_cloud, stop_cloud

HEADERS = {"X-Auth-Token": "admin:admin"}


def cpu_seconds(cloud: Any) -> float:
    """The CPU time the cloud process's threads have run so far, to the nanosecond (``/proc/PID/task/*/schedstat``:
    boot.py's utime + stime count in ticks of 10 ms, too coarse for blocks of cheap requests)."""
    total = 0
    for task in Path(f"/proc/{cloud.proc.pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # a thread gone meanwhile
            continue
    return total / 1e9


def kinds(server_id: str) -> dict[str, tuple[str, str, dict[str, str], int]]:
    """name -> (method, path relative to /v2.1, extra headers, expected status)."""
    latest = {"OpenStack-API-Version": "compute 2.100"}
    return {
        "versions": ("GET", "/", {}, 200),
        "not-found": ("GET", "/no-such-path", {}, 404),
        "extensions": ("GET", "/extensions/os-keypairs", {}, 200),
        "poll": ("GET", "/servers?status=BUILD", {}, 200),
        "show": ("GET", f"/servers/{server_id}", latest, 200),
        "missing": ("DELETE", f"/servers/{uuid.uuid4()}", {}, 404),
    }


def boot_one(http: httpx.Client, cloud: Any) -> str:
    image = http.post(f"{cloud.image_url}/v2/images", json={
        "name": "bench", "disk_format": "raw", "container_format": "bare", "visibility": "public"}).json()
    http.put(f"{cloud.image_url}/v2/images/{image['id']}/file", content=b"\0" * 4096,
             headers={"Content-Type": "application/octet-stream"})
    resp = http.post(f"{cloud.compute_url}/servers", headers={"OpenStack-API-Version": "compute 2.37"}, json={
        "server": {"name": "bench", "imageRef": image["id"], "flavorRef": "42", "networks": "none"}})
    resp.raise_for_status()
    server_id = str(resp.json()["server"]["id"])
    deadline = time.monotonic() + 60
    while http.get(f"{cloud.compute_url}/servers/{server_id}").json()["server"]["status"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not become ACTIVE in 60 s")
        time.sleep(0.05)
    return server_id


def compare(requests: int, block: int, against: Path) -> dict[str, tuple[float, float]]:
    """Each kind's CPU µs per request on a cloud of this tree and on one of ``against``, in alternate blocks."""
    with tempfile.TemporaryDirectory(prefix="stratus-api-layer-") as tmp:
        (Path(tmp) / "this").mkdir()
        (Path(tmp) / "other").mkdir()
        clouds = [start_cloud(Path(tmp) / "this"),
                  start_cloud(Path(tmp) / "other", env={"PYTHONPATH": str(against.resolve())})]
        try:
            with httpx.Client(headers=HEADERS, timeout=30) as http:
                plans = [kinds(boot_one(http, cloud)) for cloud in clouds]
                time.sleep(1.0)
                out: dict[str, tuple[float, float]] = {}
                for name in plans[0]:
                    used = [0.0, 0.0]
                    for turn in range(2 * (requests // block)):
                        side = turn % 2
                        method, path, headers, status = plans[side][name]
                        url = clouds[side].compute_url + path
                        if turn < 2:
                            for _ in range(20):
                                http.request(method, url, headers=headers)
                        before = cpu_seconds(clouds[side])
                        for _ in range(block):
                            resp = http.request(method, url, headers=headers)
                            if resp.status_code != status:
                                raise RuntimeError(f"{name}: {resp.status_code} {resp.text[:200]}")
                        used[side] += cpu_seconds(clouds[side]) - before
                    count = block * (requests // block)
                    out[name] = (1e6 * used[0] / count, 1e6 * used[1] / count)
                return out
        finally:
            for cloud in clouds:
                stop_cloud(cloud)


IN_PROCESS = {
    "versions": ("GET", "/"),
    "not-found": ("GET", "/v2.1/no-such-path"),
    "extensions": ("GET", "/v2.1/extensions/os-keypairs"),
    "bad-method": ("POST", "/v2.1/extensions"),
}


async def in_process(calls: int) -> dict[str, float]:
    """CPU µs per call of the compute API's application for each kind of ``IN_PROCESS``."""
    from stratus import conf as conf_mod
    from stratus.api.app import create_app
    from stratus.api.services import ApiServices
    from stratus.db.engine import Database
    from stratus.identity.auth import NoAuth2
    from stratus.rpc.local import LocalTransport

    with tempfile.TemporaryDirectory(prefix="stratus-api-layer-") as tmp:
        conf = conf_mod.load(overrides={"api": {"auth_strategy": "noauth2"}})
        db = Database(f"sqlite:///{tmp}/unused.sqlite", pool_size=1)  # none of these requests reads it
        services = ApiServices(conf=conf, db=db, transport=LocalTransport(), auth=NoAuth2(),
                               images=None)  # type: ignore[arg-type]
        app = create_app(services)
        headers = [(b"host", b"127.0.0.1:8774"), (b"accept", b"*/*"), (b"accept-encoding", b"gzip, deflate"),
                   (b"connection", b"keep-alive"), (b"user-agent", b"python-httpx"), (b"x-auth-token", b"admin:admin")]

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            pass

        out: dict[str, float] = {}
        for name, (method, path) in IN_PROCESS.items():
            def scope(method: str = method, path: str = path) -> dict[str, Any]:
                return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
                        "server": ("127.0.0.1", 8774), "client": ("127.0.0.1", 50000), "method": method,
                        "root_path": "", "path": path, "raw_path": path.encode(), "query_string": b"",
                        "headers": list(headers), "state": {}}
            for _ in range(200):
                await app(scope(), receive, send)
            started = time.process_time()
            for _ in range(calls):
                await app(scope(), receive, send)
            out[name] = 1e6 * (time.process_time() - started) / calls
        await db.dispose()
        return out


#: the servers kinds of ``--in-process --servers``: name -> (method, path, microversion); ``poll`` and ``detail``
#: list every server the ``create`` calls made (all still in BUILD: no conductor takes the builds)
SERVERS_IN_PROCESS = {
    "create": ("POST", "/v2.1/servers", "2.37"),
    "poll": ("GET", "/v2.1/servers?status=BUILD&limit=1000", "2.1"),
    "poll-none": ("GET", "/v2.1/servers?status=ERROR&limit=1000", "2.1"),
    "detail": ("GET", "/v2.1/servers/detail?limit=1000", "2.1"),
    "detail-2.100": ("GET", "/v2.1/servers/detail?limit=1000", "2.100"),
    "show": ("GET", "/v2.1/servers/{id}", "2.100"),
}


class _NoConductor:
    """Takes the builds' casts and does nothing: the in-process servers kinds measure the API alone."""

    async def schedule_and_build_instances(self, **kwargs: Any) -> None:
        pass


async def in_process_servers(calls: int) -> dict[str, float]:
    """CPU µs per call of the compute API's application for each kind of ``SERVERS_IN_PROCESS``, on a migrated
    SQLite database and the embedded image store in this process: ``calls`` boots (POST /servers as boot.py
    posts them), then the listings of those servers."""
    from stratus import conf as conf_mod
    from stratus import service
    from stratus.api.app import create_app
    from stratus.api.services import ApiServices
    from stratus.db import flavors
    from stratus.identity.auth import NoAuth2
    from stratus.image.embedded import EmbeddedImageClient, ImageStore
    from stratus.image.model import Caller
    from stratus.rpc.local import LocalTransport

    with tempfile.TemporaryDirectory(prefix="stratus-api-layer-") as tmp:
        conf = conf_mod.load(overrides={"api": {"auth_strategy": "noauth2"}, "DEFAULT": {"state_path": tmp},
                                        "quota": {"instances": -1, "cores": -1, "ram": -1}})
        db = await service.open_database(conf)
        async with db.write() as conn:
            await flavors.ensure_defaults(conn)
        store = ImageStore(conf, db)
        admin = Caller(project_id="admin", is_admin=True)
        image = await store.create(admin, {"name": "bench", "disk_format": "raw", "container_format": "bare",
                                           "visibility": "public"})

        async def data() -> Any:
            yield b"\0" * 4096

        await store.upload(admin, image["id"], data())
        transport = LocalTransport()
        await transport.listen("conductor", _NoConductor())
        services = ApiServices(conf=conf, db=db, transport=transport, auth=NoAuth2(),
                               images=EmbeddedImageClient(store))
        app = create_app(services)
        service.tune_gc()  # as the cloud's process does once started
        base = [(b"host", b"127.0.0.1:8774"), (b"accept", b"*/*"), (b"accept-encoding", b"gzip, deflate"),
                (b"connection", b"keep-alive"), (b"user-agent", b"python-httpx"), (b"x-auth-token", b"admin:admin")]
        state = {"body": b"", "status": 0, "sent": b""}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": state["body"], "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            else:
                state["sent"] = message.get("body", b"")

        async def call(method: str, target: str, version: str, body: bytes = b"") -> None:
            path, _, query = target.partition("?")
            headers = [*base, (b"openstack-api-version", f"compute {version}".encode())]
            if body:
                headers.append((b"content-type", b"application/json"))
            state["body"] = body
            await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
                       "server": ("127.0.0.1", 8774), "client": ("127.0.0.1", 50000), "method": method,
                       "root_path": "", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
                       "headers": headers, "state": {}}, receive, send)
            if state["status"] >= 400:
                raise RuntimeError(f"{method} {target}: {state['status']} {state['sent'][:300]!r}")

        out: dict[str, float] = {}
        server_id = ""
        for name, (method, target, version) in SERVERS_IN_PROCESS.items():
            rounds = calls if name == "create" else max(50, calls // 4)
            bodies = [json.dumps({"server": {"name": f"bench-{i}", "imageRef": image["id"], "flavorRef": "42",
                                             "networks": "none"}}).encode() if name == "create" else b""
                      for i in range(rounds + 20)]
            target = target.replace("{id}", server_id)
            for body in bodies[:20]:
                await call(method, target, version, body)
            started = time.process_time()
            for body in bodies[20:]:
                await call(method, target, version, body)
            out[name] = 1e6 * (time.process_time() - started) / rounds
            if name == "create":
                server_id = json.loads(state["sent"])["server"]["id"]
        await db.dispose()
        return out


def in_process_against(calls: int, against: Path, function: str = "in_process") -> dict[str, float]:
    """``in_process`` (or ``function``) run by a child process on the source tree ``against``."""
    code = (f"import asyncio, json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import api_layer; "
            f"print(json.dumps(asyncio.run(api_layer.{function}({calls}))))")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(against.resolve())},
                          capture_output=True, text=True, check=True, timeout=600,
                          cwd=against)  # ``-c`` puts the working directory first on the path
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run(requests: int, profile: Path | None, only: set[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="stratus-api-layer-") as tmp:
        cloud = start_cloud(Path(tmp))
        try:
            with httpx.Client(headers=HEADERS, timeout=30) as http:
                server_id = boot_one(http, cloud)
                time.sleep(1.0)  # the build's tail (its last casts) over before the first count
                spy = _spy_start(cloud, profile) if profile is not None else None
                out: dict[str, float] = {}
                for name, (method, path, headers, status) in kinds(server_id).items():
                    if only and name not in only:
                        continue
                    url = cloud.compute_url + path
                    for _ in range(20):  # warm: caches, the connection
                        http.request(method, url, headers=headers)
                    before = cpu_seconds(cloud)
                    for _ in range(requests):
                        resp = http.request(method, url, headers=headers)
                        if resp.status_code != status:
                            raise RuntimeError(f"{name}: {resp.status_code} {resp.text[:200]}")
                    out[name] = 1e6 * (cpu_seconds(cloud) - before) / requests
                if spy is not None:
                    _spy_stop(spy)
                return out
        finally:
            stop_cloud(cloud)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="Requests of each kind per run.")
    parser.add_argument("--runs", type=int, default=3, help="Runs (fresh clouds); medians reported.")
    parser.add_argument("--profile", metavar="DIR", help="py-spy records the cloud during the requests.")
    parser.add_argument("--json", help="Write the medians and each run here.")
    parser.add_argument("--against", metavar="TREE", help="Compare with a cloud of this source tree, alternately.")
    parser.add_argument("--only", nargs="*", default=[], help="Only these kinds (without --against).")
    parser.add_argument("--block", type=int, default=100, help="Requests per block of --against.")
    parser.add_argument("--in-process", action="store_true", help="The application alone, called in-process.")
    parser.add_argument("--servers", action="store_true",
                        help="With --in-process: POST /servers and the server listings, on a real database.")
    args = parser.parse_args()
    if args.in_process:
        calls = args.requests
        function, names = (in_process_servers, SERVERS_IN_PROCESS) if args.servers else (in_process, IN_PROCESS)
        if args.against:  # each side in a fresh child process (a run leaves garbage and caches behind it), the
            # side that goes first alternating from run to run
            trees = (Path(__file__).resolve().parents[1], Path(args.against))
            rows = []
            for run in range(args.runs):
                order = (0, 1) if run % 2 == 0 else (1, 0)
                got = {side: in_process_against(calls, trees[side], function.__name__) for side in order}
                rows.append((got[0], got[1]))
        else:
            rows = [(asyncio.run(function(calls)), None) for _ in range(args.runs)]
        print(f"{'request':<12} {'this µs':>8}" + (f" {'other µs':>9} {'this/other':>10}" if args.against else "")
              + f"   (in-process, medians of {args.runs} runs)")
        for name in names:
            this = statistics.median(r[0][name] for r in rows)
            line = f"{name:<12} {this:>8.1f}"
            if args.against:
                other = statistics.median(r[1][name] for r in rows if r[1] is not None)
                line += f" {other:>9.1f} {this / other:>10.2f}"
            print(line)
        return
    if args.against:
        pairs = [compare(args.requests, args.block, Path(args.against)) for _ in range(args.runs)]
        print(f"{'request':<12} {'this µs':>8} {'other µs':>9} {'this/other':>10}   (medians of {args.runs} runs)")
        for name in pairs[0]:
            this = statistics.median(p[name][0] for p in pairs)
            other = statistics.median(p[name][1] for p in pairs)
            print(f"{name:<12} {this:>8.0f} {other:>9.0f} {this / other:>10.2f}")
        if args.json:
            Path(args.json).write_text(json.dumps({"this_vs_other_cpu_us": pairs}, indent=2))
        return
    profiles = Path(args.profile) if args.profile else None
    if profiles is not None:
        profiles.mkdir(parents=True, exist_ok=True)
    each = [run(args.requests, profiles / f"api-layer-{i + 1}.txt" if profiles else None, set(args.only))
            for i in range(args.runs)]
    medians = {name: statistics.median(r[name] for r in each) for name in each[0]}
    print(f"{'request':<12} {'CPU µs/request (median)':>24}   each run")
    for name, value in medians.items():
        print(f"{name:<12} {value:>24.0f}   " + " ".join(f"{r[name]:.0f}" for r in each))
    for path in sorted(profiles.glob("api-layer-*.txt")) if profiles is not None else []:
        print(f"\n{path.name}: top functions (% own, % inclusive)")
        for func, own_pct, incl_pct in profile_top(path):
            print(f"  {own_pct:5.1f} {incl_pct:5.1f}  {func}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu_us_per_request": medians, "each_run": each}, indent=2))


if __name__ == "__main__":
    main()
