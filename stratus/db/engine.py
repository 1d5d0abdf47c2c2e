"""Engines and transactions: one async engine per process, SQLite tuned for many small writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """An async engine; for SQLite, WAL and a busy timeout so concurrent writers wait instead of failing."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, poolclass=NullPool if ":memory:" in url else None,
                                     connect_args={"timeout": 30})
        _tune_sqlite(engine)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling issues BEGIN lazily; we emit BEGIN ourselves so a
        # read-then-write unit (a claim) holds the write lock from the start when it asks for it.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("immediate") else "BEGIN")


class Database:
    """The process's handle on the database: ``read()`` for queries, ``write()`` for one transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction that takes SQLite's write lock at BEGIN, so read-check-write units serialise."""
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.sync_connection.info["immediate"] = True  # type: ignore[union-attr]
            try:
                async with conn.begin():
                    yield conn
            finally:
                if self.is_sqlite:
                    conn.sync_connection.info.pop("immediate", None)  # type: ignore[union-attr]

    async def dispose(self) -> None:
        await self.engine.dispose()
