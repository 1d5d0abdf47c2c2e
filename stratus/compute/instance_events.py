"""External events of one compute host's instances (Nova's ``InstanceEvents``): the Networking service's
``network-vif-plugged`` of each port, delivered by ``os-server-external-events`` over RPC, and the builds waiting
for them with ``[DEFAULT] vif_plugging_timeout``.

A build starts collecting before it binds its ports: a Networking service whose agent answers at once (the noop
agent of fake-driver hosts) may send the event before the ports are even known to the build, and it must not be
lost. Events of an instance nobody collects for are dropped, as Nova drops them ("unexpected event").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from stratus import exception

LOG = logging.getLogger(__name__)
VIF_PLUGGED = "network-vif-plugged"


class VirtualInterfaceCreateException(exception.StratusException):
    msg_fmt = "Virtual Interface creation failed"
    code = 500


class Collector:
    """The events of one instance since ``InstanceEvents.collect``: (name, tag) -> status."""

    def __init__(self) -> None:
        self.received: dict[tuple[str, str | None], str] = {}
        self._changed = asyncio.Event()

    def deliver(self, name: str, tag: str | None, status: str) -> None:
        self.received[(name, tag)] = status
        self._changed.set()

    async def wait(self, expected: Iterable[tuple[str, str | None]], timeout: float) -> None:
        """Until every expected event came (``asyncio.TimeoutError`` after ``timeout`` s); a ``failed`` one raises
        ``VirtualInterfaceCreateException`` at once, as Nova's error callback does."""
        want = set(expected)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            failed = [key for key in want if self.received.get(key) == "failed"]
            if failed:
                raise VirtualInterfaceCreateException(details=f"{failed[0][0]} for port {failed[0][1]} failed")
            if all(key in self.received for key in want):
                return
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue


class InstanceEvents:
    """The collectors of the builds (or interface attaches) under way on this host, by instance."""

    def __init__(self) -> None:
        self._collectors: dict[str, Collector] = {}

    def collect(self, instance_uuid: str) -> Collector:
        collector = self._collectors.get(instance_uuid)
        if collector is None:
            collector = self._collectors[instance_uuid] = Collector()
        return collector

    def stop(self, instance_uuid: str) -> None:
        self._collectors.pop(instance_uuid, None)

    def deliver(self, event: dict[str, Any]) -> bool:
        """One event of ``os-server-external-events``; False if nobody waited for it."""
        collector = self._collectors.get(event["server_uuid"])
        if collector is None:
            LOG.debug("unexpected event %s (%s) for instance %s", event.get("name"), event.get("tag"),
                      event["server_uuid"])
            return False
        collector.deliver(event["name"], event.get("tag"), event.get("status", "completed"))
        return True
