"""The messaging interface every service uses: call (with a reply), cast (fire and forget), fanout.

Payloads are plain JSON values, versioned by the method names and keyword arguments; every transport
round-trips them through JSON so a service that works in-process works unchanged across hosts.
Endpoints are objects whose public ``async def`` methods take ``context`` plus keyword arguments.
"""

from __future__ import annotations

import abc
from typing import Any

import orjson


def encode(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def decode(data: bytes) -> Any:
    return orjson.loads(data)


class Transport(abc.ABC):
    """Where messages go. ``topic`` names a service kind (``conductor``, ``compute``); ``server`` one of them."""

    @abc.abstractmethod
    async def listen(self, topic: str, endpoint: object, server: str | None = None) -> None:
        """Deliver messages for ``topic`` (and ``topic.server``, and fanouts) to ``endpoint``."""

    @abc.abstractmethod
    async def call(self, topic: str, method: str, context: dict[str, Any], *, server: str | None = None,
                   timeout: float | None = None, **kwargs: Any) -> Any:
        """Invoke ``method`` on one listener and return its result; its exception is raised here."""

    @abc.abstractmethod
    async def cast(self, topic: str, method: str, context: dict[str, Any], *, server: str | None = None,
                   **kwargs: Any) -> None:
        """Invoke ``method`` on one listener without waiting."""

    @abc.abstractmethod
    async def fanout(self, topic: str, method: str, context: dict[str, Any], **kwargs: Any) -> None:
        """Invoke ``method`` on every listener of ``topic``."""

    async def stop(self) -> None:
        """Stop delivering; wait for in-flight casts to finish."""


def get_transport(url: str, timeout: float = 60.0) -> Transport:
    """The transport a ``transport_url`` names."""
    scheme = url.split(":", 1)[0]
    if scheme in ("local", "fake"):
        from stratus.rpc.local import LocalTransport

        return LocalTransport(timeout=timeout)
    raise ValueError(f"transport_url {url!r}: no transport for scheme {scheme!r} (local:// is built in)")
