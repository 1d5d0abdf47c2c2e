"""The ``stratus`` command: every service, the all-in-one cloud, and ``db sync``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from stratus import conf as conf_mod
from stratus import service


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratus", description=__doc__)
    parser.add_argument("--config-file", action="append", default=[], metavar="PATH",
                        help="INI file with Nova's sections and options (repeatable; later files win).")
    parser.add_argument("--state-path", help="Data directory (database, images, instances).")
    parser.add_argument("--debug", action="store_true", help="Log at DEBUG level.")
    sub = parser.add_subparsers(dest="command", required=True)
    aio = sub.add_parser("all-in-one", help="The whole cloud in one process on the embedded defaults.")
    aio.add_argument("--compute-port", type=int, help="Compute API port (default 8774).")
    aio.add_argument("--image-port", type=int, help="Image API port (default 9292).")
    aio.add_argument("--identity-port", type=int, help="Identity API port (default 5000).")
    aio.add_argument("--listen", help="Address the APIs listen on (default 127.0.0.1).")
    aio.add_argument("--fake-hosts", type=int, help="Simulated hypervisor hosts (default [fake_driver] host_count).")
    aio.add_argument("--admin-password", help="Password of the identity admin user (default: env "
                                              "STRATUS_ADMIN_PASSWORD, else generated at the first start and saved "
                                              "in state_path/admin-password).")
    api = sub.add_parser("api", help="The compute API (and the embedded image API).")
    api.add_argument("--compute-port", type=int)
    api.add_argument("--image-port", type=int)
    api.add_argument("--identity-port", type=int)
    api.add_argument("--listen")
    api.add_argument("--admin-password", help="As for all-in-one.")
    sub.add_parser("metadata", help="The metadata API for guests (port 8775).")
    sub.add_parser("conductor", help="The conductor service.")
    sub.add_parser("scheduler", help="The scheduler service.")
    comp = sub.add_parser("compute", help="A compute agent for one host (or several simulated ones).")
    comp.add_argument("--host", help="Host name (default [DEFAULT] host).")
    comp.add_argument("--fake-hosts", type=int, help="Simulate this many hosts HOST-1..HOST-N (fake driver).")
    db = sub.add_parser("db", help="Database operations.")
    db.add_argument("action", choices=["sync"])
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {"DEFAULT": {}, "image_store": {}, "identity": {}, "fake_driver": {}}
    if args.state_path:
        out["DEFAULT"]["state_path"] = args.state_path
    if args.debug:
        out["DEFAULT"]["debug"] = True
    if getattr(args, "compute_port", None):
        out["DEFAULT"]["osapi_compute_listen_port"] = args.compute_port
    if getattr(args, "image_port", None):
        out["image_store"]["listen_port"] = args.image_port
    if getattr(args, "identity_port", None):
        out["identity"]["listen_port"] = args.identity_port
    if getattr(args, "listen", None):
        out["DEFAULT"]["osapi_compute_listen"] = args.listen
        out["image_store"]["listen"] = args.listen
        out["identity"]["listen"] = args.listen
    if getattr(args, "fake_hosts", None):
        out["fake_driver"]["host_count"] = args.fake_hosts
    return out


def _compute_hosts(conf: conf_mod.cfg.ConfigOpts, base: str, simulated: bool) -> list[str]:
    if conf.compute_driver.startswith("fake") and (simulated or conf.fake_driver.host_count > 1):
        return [f"{base}-{i}" for i in range(1, conf.fake_driver.host_count + 1)]
    return [base]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    conf = conf_mod.load(args.config_file, _overrides(args))
    service.setup_logging(conf)
    if args.command == "db":
        async def _sync() -> None:
            db = await service.open_database(conf)
            await db.dispose()
        asyncio.run(_sync())
        print("database schema is up to date")
        return 0
    roles, hosts = {
        "all-in-one": ({"api", "image", "identity", "conductor", "scheduler", "compute", "metadata"}, None),
        "metadata": ({"metadata"}, None),
        "api": ({"api", "image", "identity"}, None),
        "conductor": ({"conductor"}, None),
        "scheduler": ({"scheduler"}, None),
        "compute": ({"compute"}, None),
    }[args.command]
    if args.command == "all-in-one":
        # simulated hosts are compute-1..N; a real hypervisor is this machine, named [DEFAULT] host
        hosts = _compute_hosts(conf, "compute" if conf.compute_driver.startswith("fake") else conf.host, True)
    elif args.command == "compute":
        hosts = _compute_hosts(conf, args.host or conf.host, bool(args.fake_hosts))
    if args.command != "all-in-one" and conf.transport_url.startswith(("local:", "fake:")):
        logging.getLogger("stratus").warning(
            "transport_url %s only reaches services in this process; %s on its own needs a shared "
            "transport (RabbitMQ) to talk to the other services", conf.transport_url, args.command)
    admin_password = getattr(args, "admin_password", None) or os.environ.get("STRATUS_ADMIN_PASSWORD") or None
    services = service.Services(conf, roles, hosts, admin_password=admin_password)
    return _run(services)


def _run(services: service.Services) -> int:
    async def _main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
        await service.run(services)

    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency of uvicorn[standard]
        runner = asyncio.run
    try:
        with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
            runner(_main())
    except service.StartupError as exc:
        print(f"stratus: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
