"""In-process transport: one event loop, messages JSON round-tripped like on the wire."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import defaultdict
from typing import Any

from stratus import exception
from stratus.rpc.transport import Transport, decode, encode

LOG = logging.getLogger(__name__)


class LocalTransport(Transport):
    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._servers: dict[tuple[str, str], object] = {}
        self._topics: dict[str, list[object]] = defaultdict(list)
        self._rr: dict[str, itertools.count[int]] = defaultdict(itertools.count)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def listen(self, topic: str, endpoint: object, server: str | None = None) -> None:
        self._topics[topic].append(endpoint)
        if server is not None:
            self._servers[(topic, server)] = endpoint

    def _pick(self, topic: str, server: str | None) -> object:
        if server is not None:
            endpoint = self._servers.get((topic, server))
            if endpoint is None:
                raise exception.MessagingTimeout(method="?", topic=f"{topic}.{server} (no listener)")
            return endpoint
        listeners = self._topics.get(topic)
        if not listeners:
            raise exception.MessagingTimeout(method="?", topic=f"{topic} (no listener)")
        return listeners[next(self._rr[topic]) % len(listeners)]

    @staticmethod
    async def _invoke(endpoint: object, method: str, message: bytes) -> Any:
        if method.startswith("_"):
            raise exception.RemoteError(exc_type="NoSuchMethod", value=method)
        func = getattr(endpoint, method, None)
        if func is None:
            raise exception.RemoteError(exc_type="NoSuchMethod", value=method)
        kwargs = decode(message)
        return await func(**kwargs)

    async def call(self, topic: str, method: str, context: dict[str, Any], *, server: str | None = None,
                   timeout: float | None = None, **kwargs: Any) -> Any:
        endpoint = self._pick(topic, server)
        message = encode({"context": context, **kwargs})
        try:
            result = await asyncio.wait_for(self._invoke(endpoint, method, message), timeout or self.timeout)
        except TimeoutError:
            raise exception.MessagingTimeout(method=method, topic=topic) from None
        except exception.StratusException as exc:
            raise exception.from_payload(exc.to_payload()) from None
        except Exception as exc:  # an unexpected failure travels back as a RemoteError, as on the wire
            raise exception.RemoteError(exc_type=type(exc).__name__, value=str(exc)) from None
        return decode(encode(result))

    def _spawn(self, endpoint: object, method: str, message: bytes, topic: str) -> None:
        task = asyncio.get_running_loop().create_task(self._invoke(endpoint, method, message))
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, topic, method))

    def _done(self, task: asyncio.Task[Any], topic: str, method: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            LOG.error("cast %s.%s failed", topic, method, exc_info=task.exception())

    async def cast(self, topic: str, method: str, context: dict[str, Any], *, server: str | None = None,
                   **kwargs: Any) -> None:
        self._spawn(self._pick(topic, server), method, encode({"context": context, **kwargs}), topic)

    async def fanout(self, topic: str, method: str, context: dict[str, Any], **kwargs: Any) -> None:
        message = encode({"context": context, **kwargs})
        for endpoint in list(self._topics.get(topic, ())):
            self._spawn(endpoint, method, message, topic)

    async def stop(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
