"""One lock per instance on a compute host: builds, power actions, deletes and syncs of one instance take turns.

An entry lives only while someone holds or waits for it, so a host that has run millions of actions keeps
nothing; ``held`` tells a power-state sync that an action of ours is under way (its result would be stale).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator


@dataclasses.dataclass
class _Entry:
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    users: int = 0


class InstanceLocks:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @contextlib.asynccontextmanager
    async def __call__(self, uuid: str) -> AsyncIterator[None]:
        entry = self._entries.get(uuid)
        if entry is None:
            entry = self._entries[uuid] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._entries[uuid]

    def held(self, uuid: str) -> bool:
        """Someone holds or waits for the instance's lock."""
        return uuid in self._entries

    def __len__(self) -> int:
        return len(self._entries)
