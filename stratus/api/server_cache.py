"""Rendered server bodies of the detail listing, kept while nothing they are made of changes.

Clients poll ``GET /servers/detail``; between two polls most servers are unchanged, yet each body is built again
from some forty columns, its metadata, tags, fault and network info. So each body rendered is kept as its JSON
(an ``orjson.Fragment``), under a key made of *everything* it is made of: the instance's row exactly as stored
(every column the listing reads, JSON and times as stored text), its metadata, tags, newest fault and network
info as stored, what the request decides (microversion, link prefixes, the caller's policy answers, admin or
not), the host's status and the request spec's parts the microversion shows. The database is read for every
request as before; only a body whose key is the same as when it was rendered is not built again, and a body is
a function of its key, so it is the same body.
"""

from __future__ import annotations

from typing import Any

import orjson

#: bodies kept: enough for every server of a large listing, and a bound on the memory (~2 KB each)
LIMIT = 20_000


class RenderedServers:
    """uuid -> (key, body) of the last body rendered for that server."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._bodies: dict[str, tuple[tuple[Any, ...], orjson.Fragment]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, uuid: str, key: tuple[Any, ...]) -> orjson.Fragment | None:
        entry = self._bodies.get(uuid)
        if entry is not None and entry[0] == key:
            self.hits += 1
            return entry[1]
        self.misses += 1
        return None

    def put(self, uuid: str, key: tuple[Any, ...], body: dict[str, Any]) -> orjson.Fragment:
        # a copy of exactly its length: orjson's own bytes keep the whole output buffer it grew (16 KB for a body
        # of 1.3), which a thousand kept bodies would hold for nothing
        fragment = orjson.Fragment(bytes(memoryview(orjson.dumps(body))))
        bodies = self._bodies
        bodies.pop(uuid, None)  # re-inserted last: the oldest go first once the limit is reached
        if len(bodies) >= self.limit:
            for old in list(bodies)[: max(1, self.limit // 10)]:
                del bodies[old]
        bodies[uuid] = (key, fragment)
        return fragment

    def __len__(self) -> int:
        return len(self._bodies)
