"""What the three agents share: listening on their topic, reporting their state, and one sync worker.

Level-triggered, like a Kubernetes controller: RPC casts only record the desired state and wake the worker;
the worker compares it with the kernel and converges, on every wake-up and every ``resync_interval`` seconds, so
a missed message, a failed step or a restart after kill -9 is repaired by the next pass. One pass at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from stratus import exception
from stratus.context import RequestContext
from stratus.network.agent_rpc import SERVER_TOPIC, PluginAPI
from stratus.rpc.transport import Transport

LOG = logging.getLogger(__name__)


class Agent:
    topic = ""
    agent_type = ""
    binary = ""

    def __init__(self, transport: Transport, host: str, *, report_interval: float = 30.0,
                 resync_interval: float = 10.0) -> None:
        self.transport = transport
        self.host = host
        self.plugin = PluginAPI(transport, timeout=30)
        self.context = RequestContext.admin().to_dict()
        self._started = False
        self.report_interval = report_interval
        self.resync_interval = resync_interval
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.passes = 0
        self.last_error: BaseException | None = None
        self._idle = asyncio.Event()
        self._stopping = False

    def configurations(self) -> dict[str, Any]:
        return {}

    async def start(self) -> None:
        await self.transport.listen(self.topic, self, server=self.host)
        await self.report()
        await self.resync()
        self._tasks = [asyncio.create_task(self._worker()), asyncio.create_task(self._reporter())]

    async def stop(self) -> None:
        """Stop after the pass under way (its kernel work runs in a thread that cannot be cancelled halfway)."""
        self._stopping = True
        self._wake.set()
        worker, *others = self._tasks or [None]
        for task in others:
            task.cancel()
        for task in others:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if worker is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._tasks = []

    async def report(self) -> None:
        try:
            await self.plugin.report_state(self.context, self.host, self.agent_type, self.binary,
                                           self.configurations(), start_flag=not self._started)
            self._started = True
        except Exception as exc:  # no server yet: the next interval tries again
            LOG.warning("%s on %s could not report its state: %s", self.agent_type, self.host, exc)

    async def get_device_details(self, port_id: str) -> dict[str, Any] | None:
        """The port as ``port_update`` sends it (``network``, ``subnets``, ``security_group_rules``), or None."""
        return await self.plugin.get_device_details(self.context, self.host, port_id) or None

    async def optional_call(self, method: str, **kwargs: Any) -> Any:
        """A call to the server beyond the seam's four (Neutron's ``get_active_networks_info``, ``sync_routers``,
        ``create_dhcp_port``); None if the server has no such method, so an agent works with one that only casts."""
        try:
            return await self.transport.call(SERVER_TOPIC, method, self.context, timeout=30, host=self.host,
                                             **kwargs)
        except exception.RemoteError as exc:
            if "NoSuchMethod" in str(exc):
                return None
            raise

    async def resync(self) -> None:
        """Fetch the whole desired state from the server after a start (nothing by default)."""

    def kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until a pass has run after the last kick (tests, and callers that need the kernel ready)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def sync(self) -> None:
        raise NotImplementedError

    async def _worker(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.resync_interval)
            if self._stopping:
                return
            self._wake.clear()
            try:
                await self.sync()
                self.last_error = None
            except Exception as exc:   # the next pass retries; one bad object must not stop the agent
                self.last_error = exc
                LOG.exception("%s on %s: sync failed", self.agent_type, self.host)
                if not self._stopping:
                    await asyncio.sleep(1)
                    self._wake.set()
                continue
            self.passes += 1
            if not self._wake.is_set():
                self._idle.set()

    async def _reporter(self) -> None:
        while True:
            await asyncio.sleep(self.report_interval)
            await self.report()
