"""``stratus api`` as several worker processes serving the same ports, under a supervising parent.

The parent binds the listening sockets (compute, image, identity) once and forks the workers, which inherit them:
the kernel hands each new connection to whichever worker accepts it first, so one port uses every core. Each worker
is a whole API process of its own (event loop, database pool, transport connection, token cache); they share only
the database and the broker, which is why more than one needs a shared transport. The parent runs no event loop and
opens no connection: it starts the first worker alone and waits until it serves (migrations, default flavors and the
identity bootstrap done once), then the others; it starts again a worker that dies, and on SIGTERM or SIGINT stops
them all and waits for them.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

from stratus.service import StartupError

LOG = logging.getLogger(__name__)
#: seconds between a worker's death and its replacement: a worker that cannot start does not spin
RESTART_DELAY = 1.0
#: seconds a worker has to stop after SIGTERM before it is killed
STOP_TIMEOUT = 15.0
IN_PROCESS_SCHEMES = ("local:", "fake:")


def worker_count(conf: cfg.ConfigOpts) -> int:
    """``[api] workers`` (else Nova's ``[DEFAULT] osapi_compute_workers``); unset, the number of CPUs with a shared
    transport and 1 with the in-process one, where more than 1 is refused: each worker would have its own
    in-process transport, whose casts reach no conductor."""
    configured = conf.api.workers or conf.osapi_compute_workers
    shared = not conf.transport_url.startswith(IN_PROCESS_SCHEMES)
    if configured is None:
        return (os.cpu_count() or 1) if shared else 1
    if configured > 1 and not shared:
        raise StartupError(f"[api] workers = {configured} needs a shared transport_url (rabbit://...): with "
                           f"{conf.transport_url} each worker's casts would reach no conductor; set workers = 1")
    return int(configured)


def addresses(conf: cfg.ConfigOpts, roles: frozenset[str]) -> list[tuple[str, int]]:
    """The (host, port) pairs the API roles of ``roles`` serve: compute, image, and identity unless a real Keystone
    is the identity service."""
    out = []
    if "api" in roles:
        out.append((conf.osapi_compute_listen, conf.osapi_compute_listen_port))
    if "image" in roles:
        out.append((conf.image_store.listen, conf.image_store.listen_port))
    if "network" in roles:
        out.append((conf.network_server.listen, conf.network_server.listen_port))
    if "identity" in roles and conf.api.auth_strategy != "keystone":
        out.append((conf.identity.listen, conf.identity.listen_port))
    return out


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on (host, port) the workers inherit; StartupError when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Runs ``count`` workers, each ``target(sockets, ready)``, which must call ``ready()`` once it serves."""

    def __init__(self, target: Callable[[dict[tuple[str, int], socket.socket], Callable[[], None]], int],
                 sockets: dict[tuple[str, int], socket.socket], count: int) -> None:
        self.target = target
        self.sockets = sockets
        self.count = count
        self.context = multiprocessing.get_context("fork")
        self.workers: dict[int, Any] = {}  # slot -> multiprocessing.Process
        self.stopping = False

    def _spawn(self, slot: int) -> tuple[Any, Any]:
        ready = self.context.Event()
        process = self.context.Process(target=_worker_main, args=(self.target, self.sockets, ready.set, os.getpid()),
                                       name=f"stratus-api-worker-{slot}", daemon=False)
        process.start()
        self.workers[slot] = process
        LOG.info("API worker %d started (pid %d)", slot, process.pid)
        return process, ready

    def _stop(self, *_: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; returns the exit code (2 when the first worker could not start)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        try:
            first, ready = self._spawn(1)
            while not ready.wait(0.2):  # the first worker alone: migrations and bootstrap run once
                if self.stopping:
                    return 0
                if not first.is_alive():
                    return first.exitcode if first.exitcode not in (None, 0) else 2
            for slot in range(2, self.count + 1):
                self._spawn(slot)
            LOG.info("stratus api: %d workers on %s", self.count,
                     ", ".join(f"{h}:{p}" for h, p in self.sockets))
            while not self.stopping:
                sentinels = {p.sentinel: slot for slot, p in self.workers.items()}
                for sentinel in multiprocessing.connection.wait(list(sentinels), timeout=0.5):
                    slot = sentinels[sentinel]  # type: ignore[index]
                    dead = self.workers[slot]
                    dead.join()
                    if self.stopping:
                        break
                    LOG.error("API worker %d (pid %d) exited with code %s; starting another", slot, dead.pid,
                              dead.exitcode)
                    time.sleep(RESTART_DELAY)
                    if not self.stopping:
                        self._spawn(slot)
            return 0
        finally:
            self._terminate_all()

    def _terminate_all(self) -> None:
        for process in self.workers.values():
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                LOG.warning("API worker pid %d did not stop in %.0f s; killing it", process.pid, STOP_TIMEOUT)
                process.kill()
                process.join()
        for sock in self.sockets.values():
            sock.close()


def _worker_main(target: Callable[..., int], sockets: dict[tuple[str, int], socket.socket],
                 ready: Callable[[], None], parent: int) -> None:
    # the parent's handlers would only set its flag: a worker stops on the signal, through its own loop
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    _die_with_parent(parent)
    raise SystemExit(target(sockets, ready))


def _die_with_parent(parent: int) -> None:
    """SIGKILL to this worker when its supervisor dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG): a worker
    never outlives the parent that would stop or replace it, and keeps no port or connection open alone. SIGKILL,
    not SIGTERM: a supervisor is killed when it did not stop in time, most often because a worker did not."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
            LOG.warning("worker %d cannot follow its parent's death: errno %d", os.getpid(), ctypes.get_errno())
    except (OSError, AttributeError) as exc:  # not Linux
        LOG.warning("worker %d cannot follow its parent's death: %s", os.getpid(), exc)
    if os.getppid() != parent:  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGKILL)
