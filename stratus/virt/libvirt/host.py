"""The connection to libvirtd: opened lazily, re-opened after a loss, and its events brought to asyncio.

libvirt's calls block, so every one runs in a worker thread (``call``). Its events need an event loop of
libvirt's own: one daemon thread per process runs ``virEventRunDefaultImpl`` and hands each domain lifecycle
event to the asyncio loop that registered for it. A lost connection (libvirtd stopped or restarted) is noticed
by libvirt's close callback and by failing calls; the next call re-opens it, and while it cannot,
``HypervisorUnavailable`` tells the compute manager to mark the service disabled instead of crash-looping.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, TypeVar

import libvirt

from stratus.virt.driver import HypervisorUnavailable

LOG = logging.getLogger(__name__)
T = TypeVar("T")

_event_loop_lock = threading.Lock()
_event_loop_started = False


def _start_libvirt_event_loop() -> None:
    """libvirt's default event implementation, run by one daemon thread for the whole process."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


def _silence_libvirt_errors(_ctx: Any, _err: Any) -> None:
    """libvirt prints every error to stderr by default; ours are raised and logged where handled instead."""


#: connection-level errors: libvirtd is gone or unreachable (anything else is the call's own failure)
_CONNECTION_ERRORS = {
    getattr(libvirt, "VIR_ERR_SYSTEM_ERROR", 38),
    getattr(libvirt, "VIR_ERR_INTERNAL_ERROR", 1),
    getattr(libvirt, "VIR_ERR_NO_CONNECT", 5),
    getattr(libvirt, "VIR_ERR_INVALID_CONN", 6),
    getattr(libvirt, "VIR_ERR_RPC", 39),
}
_CONNECTION_DOMAINS = {getattr(libvirt, "VIR_FROM_REMOTE", 13), getattr(libvirt, "VIR_FROM_RPC", 47)}


class Host:
    """One libvirt connection for one compute host."""

    def __init__(self, uri: str, host: str) -> None:
        self.uri = uri
        self.host = host
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_lifecycle: Callable[[str, int, int], None] | None = None
        libvirt.registerErrorHandler(_silence_libvirt_errors, None)

    # --- connection ------------------------------------------------------------------------------------
    def set_lifecycle_handler(self, loop: asyncio.AbstractEventLoop,
                              handler: Callable[[str, int, int], None]) -> None:
        """``handler(uuid, event, detail)`` runs on ``loop`` for every domain lifecycle event."""
        self._loop = loop
        self._on_lifecycle = handler

    def get_connection(self) -> libvirt.virConnect:
        """The open connection, opening it if needed; ``HypervisorUnavailable`` when libvirtd cannot be reached."""
        conn = self._conn
        if conn is not None:
            try:
                if conn.isAlive():
                    return conn
            except libvirt.libvirtError:
                pass
        with self._lock:
            if self._conn is not None and self._conn is not conn:
                return self._conn
            self._conn = None
            _start_libvirt_event_loop()
            try:
                conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                LOG.warning("cannot connect to libvirt at %s: %s", self.uri, exc)
                raise HypervisorUnavailable(f"Connection to libvirt lost: {exc}", host=self.host) from exc
            try:
                conn.registerCloseCallback(self._closed, None)
            except libvirt.libvirtError:
                LOG.debug("this libvirt cannot report a closed connection; failed calls will")
            if self._on_lifecycle is not None:
                conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None)
            self._conn = conn
            LOG.info("connected to libvirt at %s", self.uri)
            return conn

    def _closed(self, conn: libvirt.virConnect, reason: int, _opaque: Any) -> None:
        LOG.warning("connection to libvirt at %s closed (reason %d)", self.uri, reason)
        with self._lock:
            if self._conn is conn:
                self._conn = None

    def _lifecycle(self, _conn: libvirt.virConnect, dom: libvirt.virDomain, event: int, detail: int,
                   _opaque: Any) -> None:
        loop, handler = self._loop, self._on_lifecycle
        if loop is None or handler is None:
            return
        try:
            loop.call_soon_threadsafe(handler, dom.UUIDString(), event, detail)
        except RuntimeError:  # the loop is closed: the service is stopping
            pass

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass

    @staticmethod
    def is_connection_error(exc: libvirt.libvirtError) -> bool:
        return exc.get_error_code() in _CONNECTION_ERRORS and exc.get_error_domain() in _CONNECTION_DOMAINS

    def run(self, fn: Callable[[libvirt.virConnect], T]) -> T:
        """``fn(connection)`` in this thread; a lost connection becomes ``HypervisorUnavailable``."""
        conn = self.get_connection()
        try:
            return fn(conn)
        except libvirt.libvirtError as exc:
            if self.is_connection_error(exc) or not self._alive(conn):
                with self._lock:
                    if self._conn is conn:
                        self._conn = None
                raise HypervisorUnavailable(f"Connection to libvirt lost: {exc}", host=self.host) from exc
            raise

    async def call(self, fn: Callable[[libvirt.virConnect], T]) -> T:
        """``run`` in a worker thread: libvirt blocks, the event loop must not."""
        return await asyncio.to_thread(self.run, fn)

    @staticmethod
    def _alive(conn: libvirt.virConnect) -> bool:
        try:
            return bool(conn.isAlive())
        except libvirt.libvirtError:
            return False

    # --- what the host has -----------------------------------------------------------------------------
    def host_info(self) -> dict[str, Any]:
        """CPUs, memory, versions and architecture of the hypervisor host, in one round of calls."""

        def read(conn: libvirt.virConnect) -> dict[str, Any]:
            model, memory_mb, cpus, mhz, nodes, sockets, cores, threads = conn.getInfo()
            caps = ET.fromstring(conn.getCapabilities())
            cpu = caps.find("host/cpu")
            vendor = cpu.findtext("vendor", "") if cpu is not None else ""
            cpu_model = cpu.findtext("model", "") if cpu is not None else ""
            features = sorted(f.get("name", "") for f in cpu.findall("feature")) if cpu is not None else []
            return {"arch": model, "memory_mb": memory_mb, "cpus": cpus, "mhz": mhz, "sockets": sockets * nodes,
                    "cores": cores, "threads": threads, "vendor": vendor, "model": cpu_model,
                    "features": features, "hypervisor_version": conn.getVersion(),
                    "libvirt_version": conn.getLibVersion(), "hostname": conn.getHostname()}

        return self.run(read)


def peer_uri(template: str | None, host: str) -> str:
    """The URI of compute host ``host``'s libvirtd: ``[libvirt] live_migration_uri`` with ``%s`` replaced by the
    host's name (Nova's template), ``qemu+tcp://<host>/system`` when unset."""
    return (template or "qemu+tcp://%s/system").replace("%s", host)
