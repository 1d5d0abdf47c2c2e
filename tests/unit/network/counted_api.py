"""The embedded Networking API in process on a fresh SQLite database, with every SQL statement it runs recorded:
what the unit tests of its queries ask it, and count."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from stratus import conf as conf_mod
from stratus.identity.auth import NoAuth2
from stratus.network.server.app import create_app
from stratus.network.server.policy import NetworkPolicy
from stratus.network.server.resource import NetworkServices
from stratus.service import open_database


@contextlib.asynccontextmanager
async def counted_api(tmp_path: Path, headers: dict[str, str] | None = None) -> AsyncIterator[dict[str, Any]]:
    """``{"client": an httpx client on /v2.0, "statements": the SQL run so far, "db": its database}`` (noauth2: the
    token names the caller)."""
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    database = await open_database(conf)
    statements: list[str] = []
    assert database.sync_engine is not None
    event.listen(database.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: statements.append(statement))
    services = NetworkServices(conf=conf, db=database, policy=NetworkPolicy(conf))
    auth = NoAuth2()
    app = auth.wrap(create_app(services, auth))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://net/v2.0",
                                     headers=headers) as client:
            yield {"client": client, "statements": statements, "db": database}
    finally:
        await database.dispose()
