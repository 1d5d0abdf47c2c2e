"""The messaging interface every service uses: call (with a reply), cast (fire and forget), fanout.

Payloads are plain JSON values, versioned by the method names and keyword arguments; every transport
round-trips them through JSON so a service that works in-process works unchanged across hosts.
Endpoints are objects whose public ``async def`` methods take ``context`` plus keyword arguments.
"""

from __future__ import annotations

import abc
from typing import Any

import orjson
from oslo_config import cfg


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

    async def start(self) -> None:
        """Connect (before the service touches anything else, so a transport that cannot work stops the start
        at once); the in-process transport has nothing to connect to."""

    async def stop(self) -> None:
        """Stop delivering; wait for in-flight casts to finish."""


class TransportError(Exception):
    """The transport_url names no transport this process can use (unknown scheme, unparseable, unreachable)."""


def get_transport(conf: cfg.ConfigOpts) -> Transport:
    """The transport ``[DEFAULT] transport_url`` names; TransportError (one line, no password) if none."""
    url = conf.transport_url
    scheme = url.split(":", 1)[0] if "://" in url else ""
    if scheme in ("local", "fake"):
        from stratus.rpc.local import LocalTransport

        return LocalTransport(timeout=conf.rpc_response_timeout)
    if scheme == "rabbit":
        from stratus.rpc import url as url_mod
        from stratus.rpc.amqp import AmqpTransport

        try:
            return AmqpTransport(url_mod.parse(url), conf)
        except ValueError as exc:
            raise TransportError(str(exc)) from None
    from stratus.rpc.url import redact

    raise TransportError(f"transport_url {redact(url)}: no transport for scheme {scheme!r} (local:// in one "
                         "process, rabbit://user:pass@host:5672/vhost across processes)")
