"""The DHCP agent's metadata proxies: what a guest reaches at 169.254.169.254:80 on its network, as Neutron's
DHCP agent runs one haproxy per ``qdhcp-<network>`` namespace (``enable_isolated_metadata``).

The listening socket is made inside the network's namespace (a worker thread enters it with ``setns``, binds
and leaves again: a socket keeps the namespace it was made in, so the proxy itself runs on the agent's event
loop like everything else) and handed to :mod:`stratus.metadata.proxy`, which identifies the guest by its
address on that network through the server (``get_metadata_requester``, the metadata agent's port lookup) and
forwards to the metadata API with the signed headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from pyroute2 import netns

from stratus.metadata import proxy
from stratus.network.dataplane import names
from stratus.network.dataplane.dhcp import METADATA_ADDRESS

LOG = logging.getLogger(__name__)
METADATA_PORT = 80
IP_FREEBIND = 15  # linux/in.h: bind before the address is on the device (dnsmasq's sync adds it)
_SETNS_LOCK = threading.Lock()  # pyroute2 keeps the namespaces to return to on one module-wide stack

#: (network id, fixed IP) -> {"device_id", "tenant_id"} of the one port with that address, or None
Lookup = Callable[[str, str], Awaitable[dict[str, Any] | None]]


def bind_in_namespace(namespace: str, address: str = METADATA_ADDRESS, port: int = METADATA_PORT) -> socket.socket:
    """A listening TCP socket on ``address:port`` inside ``namespace`` (blocking: call it from a thread)."""
    with _SETNS_LOCK:
        netns.pushns(namespace)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            netns.popns()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        sock.bind((address, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class MetadataProxies:
    """One proxy per network the agent serves; ``sync`` starts the missing ones and stops the others."""

    def __init__(self, conf: Any, lookup: Lookup) -> None:
        self.conf = conf
        self.lookup = lookup
        self.running: dict[str, proxy.MetadataProxy] = {}

    async def _resolve(self, network_id: str, address: str) -> proxy.Requester | None:
        found = await self.lookup(network_id, address)
        if not found or not found.get("device_id"):
            return None
        return proxy.Requester(instance_id=found["device_id"], tenant_id=found.get("tenant_id") or "")

    async def sync(self, network_ids: set[str]) -> None:
        for network_id in set(self.running) - network_ids:
            await self.stop(network_id)
        for network_id in network_ids - set(self.running):
            try:
                sock = await asyncio.to_thread(bind_in_namespace, names.dhcp_namespace(network_id))
                self.running[network_id] = await proxy.serve_from_conf(self.conf, sock, network_id, self._resolve)
            except Exception:
                LOG.exception("metadata proxy of network %s not started; retried on the next pass", network_id)
            else:
                LOG.info("metadata proxy of network %s on %s:%d", network_id, METADATA_ADDRESS, METADATA_PORT)

    async def stop(self, network_id: str) -> None:
        running = self.running.pop(network_id, None)
        if running is not None:
            with contextlib.suppress(Exception):
                await running.close()

    async def close(self) -> None:
        for network_id in list(self.running):
            await self.stop(network_id)
