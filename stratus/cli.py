"""The ``stratus`` command: every service, the all-in-one cloud, and ``db sync``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable

from stratus import conf as conf_mod
from stratus import service

#: the options every subcommand takes, before it or after it: ``stratus --debug compute --config-file c.conf``
COMMON_OPTIONS = ("config_file", "state_path", "debug")


def _common_options(sub: bool) -> argparse.ArgumentParser:
    """``--config-file``, ``--state-path``, ``--debug`` as a parent parser, for the main parser and every subcommand.

    A subcommand's copy stores under ``sub_*``: argparse would otherwise let the subparser's defaults overwrite what
    was given before the subcommand. ``_merged`` then combines the two: files append (those before the subcommand
    first, so later files win as usual), the later ``--state-path`` wins, ``--debug`` in either place counts."""
    prefix = "sub_" if sub else ""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("common options (before or after the subcommand)")
    group.add_argument("--config-file", dest=f"{prefix}config_file", action="append", default=[], metavar="PATH",
                       help="INI file with Nova's sections and options (repeatable; later files win).")
    group.add_argument("--state-path", dest=f"{prefix}state_path", metavar="PATH",
                       help="Data directory (database, images, instances); default [DEFAULT] state_path.")
    group.add_argument("--debug", dest=f"{prefix}debug", action="store_true", help="Log at DEBUG level.")
    return parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratus", description=__doc__, parents=[_common_options(sub=False)])
    common = [_common_options(sub=True)]
    sub = parser.add_subparsers(dest="command", required=True)
    aio = sub.add_parser("all-in-one", parents=common,
                         help="The whole cloud in one process on the embedded defaults.")
    aio.add_argument("--compute-port", type=int, help="Compute API port (default 8774).")
    aio.add_argument("--image-port", type=int, help="Image API port (default 9292).")
    aio.add_argument("--identity-port", type=int, help="Identity API port (default 5000).")
    aio.add_argument("--network-port", type=int, help="Networking API port (default 9696).")
    aio.add_argument("--listen", help="Address the APIs listen on (default 127.0.0.1).")
    aio.add_argument("--fake-hosts", type=int, help="Simulated hypervisor hosts compute-1..N with the fake driver "
                                                    "(default [fake_driver] host_count).")
    aio.add_argument("--admin-password", help="Password of the identity admin user (default: env "
                                              "STRATUS_ADMIN_PASSWORD, else generated at the first start and saved "
                                              "in state_path/admin-password).")
    api = sub.add_parser("api", parents=common, help="The compute API (and the embedded image, identity and "
                                                     "networking APIs).")
    api.add_argument("--compute-port", type=int)
    api.add_argument("--image-port", type=int)
    api.add_argument("--identity-port", type=int)
    api.add_argument("--network-port", type=int)
    api.add_argument("--listen")
    api.add_argument("--admin-password", help="As for all-in-one.")
    sub.add_parser("metadata", parents=common, help="The metadata API for guests (port 8775).")
    sub.add_parser("conductor", parents=common, help="The conductor service.")
    sub.add_parser("scheduler", parents=common, help="The scheduler service.")
    comp = sub.add_parser("compute", parents=common,
                          help="A compute agent for one host (or several simulated ones).")
    comp.add_argument("--host", help="Host name (default [DEFAULT] host).")
    comp.add_argument("--fake-hosts", type=int, help="With the fake driver, simulate this many hosts HOST-1..HOST-N "
                                                     "instead of the one host HOST.")
    db = sub.add_parser("db", parents=common, help="Database operations.")
    db.add_argument("action", choices=["sync"])
    sub.add_parser("netns-cleanup", parents=common,
                   help="Remove the network data plane from this machine: every qdhcp-, qrouter- and stratus-host- "
                        "namespace (and their dnsmasq), and the fabric (Neutron's neutron-netns-cleanup).")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the common options given before and after the subcommand merged."""
    return _merged(_parser().parse_args(argv))


def _merged(args: argparse.Namespace) -> argparse.Namespace:
    args.config_file = [*args.config_file, *args.sub_config_file]
    args.state_path = args.sub_state_path or args.state_path
    args.debug = args.debug or args.sub_debug
    for name in COMMON_OPTIONS:
        delattr(args, f"sub_{name}")
    return args


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {"DEFAULT": {}, "image_store": {}, "identity": {}, "fake_driver": {},
                                         "network_server": {}}
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
    if getattr(args, "network_port", None):
        out["network_server"]["listen_port"] = args.network_port
    if getattr(args, "listen", None):
        out["DEFAULT"]["osapi_compute_listen"] = args.listen
        out["network_server"]["listen"] = args.listen
        out["image_store"]["listen"] = args.listen
        out["identity"]["listen"] = args.listen
    if getattr(args, "fake_hosts", None):
        out["fake_driver"]["host_count"] = args.fake_hosts
    return out


def _compute_hosts(conf: conf_mod.cfg.ConfigOpts, base: str, simulated: bool) -> list[str]:
    """The hosts one compute process serves: ``base``, or with the fake driver and ``simulated`` the
    ``[fake_driver] host_count`` hosts ``base-1``..``base-N``."""
    if conf.compute_driver.startswith("fake") and simulated:
        return [f"{base}-{i}" for i in range(1, conf.fake_driver.host_count + 1)]
    return [base]


@dataclasses.dataclass(frozen=True)
class Invocation:
    """What a command line asks for: the configuration, and for a service the roles and hosts it runs."""

    command: str
    conf: conf_mod.cfg.ConfigOpts
    roles: frozenset[str] = frozenset()
    hosts: list[str] | None = None  # compute hosts; None for a process without the compute role
    admin_password: str | None = None


ROLES = {
    "all-in-one": frozenset({"api", "image", "identity", "network", "conductor", "scheduler", "compute",
                             "metadata"}),
    "metadata": frozenset({"metadata"}),
    "api": frozenset({"api", "image", "identity", "network"}),
    "conductor": frozenset({"conductor"}),
    "scheduler": frozenset({"scheduler"}),
    "compute": frozenset({"compute"}),
}


def prepare(argv: list[str] | None = None) -> Invocation:
    """Parse the command line and load the configuration; starts nothing."""
    args = parse_args(argv)
    conf = conf_mod.load(args.config_file, _overrides(args))
    if args.command in ("db", "netns-cleanup"):
        return Invocation(args.command, conf)
    hosts = None
    if args.command == "all-in-one":
        # simulated hosts are compute-1..N; a real hypervisor is this machine, named [DEFAULT] host
        hosts = _compute_hosts(conf, "compute" if conf.compute_driver.startswith("fake") else conf.host, True)
    elif args.command == "compute":
        # the one host --host (else [DEFAULT] host); a fleet HOST-1..N only when --fake-hosts N asks for it
        hosts = _compute_hosts(conf, args.host or conf.host, bool(args.fake_hosts))
    admin_password = getattr(args, "admin_password", None) or os.environ.get("STRATUS_ADMIN_PASSWORD") or None
    return Invocation(args.command, conf, ROLES[args.command], hosts, admin_password)


def main(argv: list[str] | None = None) -> int:
    try:
        run = prepare(argv)
    except (conf_mod.cfg.ConfigFilesNotFoundError, conf_mod.cfg.ConfigFileParseError) as exc:
        print(f"stratus: {exc}", file=sys.stderr)  # a missing or broken --config-file: say so, no traceback
        return 2
    conf = run.conf
    service.setup_logging(conf)
    if run.command == "db":
        async def _sync() -> None:
            db = await service.open_database(conf)
            await db.dispose()
        try:
            asyncio.run(_sync())
        except service.StartupError as exc:
            print(f"stratus: {exc}", file=sys.stderr)
            return 2
        print("database schema is up to date")
        return 0
    if run.command == "netns-cleanup":
        from stratus.network.dataplane import cleanup

        for name in cleanup.remove_all():
            print(f"removed {name}")
        return 0
    if run.command != "all-in-one" and conf.transport_url.startswith(("local:", "fake:")):
        logging.getLogger("stratus").warning(
            "transport_url %s only reaches services in this process; %s on its own needs a shared "
            "transport (RabbitMQ) to talk to the other services", conf.transport_url, run.command)
    if run.command == "api":
        return _api(run)
    if run.command == "all-in-one" and (conf.api.workers or conf.osapi_compute_workers or 1) > 1:
        logging.getLogger("stratus").warning("all-in-one is one process: [api] workers is ignored (it applies to "
                                             "stratus api on a shared transport)")
    services = service.Services(conf, set(run.roles), run.hosts, admin_password=run.admin_password)
    return _run(services)


def _api(run: Invocation) -> int:
    """``stratus api``: one process, or ``[api] workers`` processes on the same ports under a supervisor."""
    from stratus import workers

    try:
        count = workers.worker_count(run.conf)
        if count == 1:
            return _run(service.Services(run.conf, set(run.roles), admin_password=run.admin_password))
        sockets = {address: workers.bind(*address) for address in workers.addresses(run.conf, run.roles)}
    except service.StartupError as exc:
        print(f"stratus: {exc}", file=sys.stderr)
        return 2

    def _worker(inherited: dict[tuple[str, int], socket.socket], ready: Callable[[], None]) -> int:
        return _run(service.Services(run.conf, set(run.roles), admin_password=run.admin_password,
                                     sockets=inherited, on_ready=ready))

    return workers.Supervisor(_worker, sockets, count).run()


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
