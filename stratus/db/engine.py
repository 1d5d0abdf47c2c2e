"""Database handles: PostgreSQL through an async engine, SQLite inline on the event loop.

SQLite answers a statement in microseconds, while handing it to a worker thread (aiosqlite) costs about a
millisecond per statement; so for SQLite the statements run inline on the loop, and writers of the process
queue on one asyncio lock (SQLite has one writer at a time anyway) instead of meeting in SQLite's busy
handler, which sleeps up to 100 ms between attempts. Every caller sees the same small interface:
``async with db.read() as conn`` / ``async with db.write() as conn`` and ``await conn.execute(statement)``.

SQLite's writes are committed in groups (stratus/db/group_commit.py): the units of work of one turn of the event
loop share one transaction, each in a savepoint of its own, and each ``write()`` returns once that transaction is
committed; an API request's units commit at their end. PostgreSQL's units commit alone, each on a pooled
connection of its own, concurrently with the others: the server already flushes concurrent commits to its WAL
together, and grouped on one connection (benchmarks/pg_group_commit.py) the same units went slower with fsync on,
for a little less server CPU, while a group would hold every unit's row and advisory locks until its COMMIT, so
the other processes' claims and quota checks would wait for whole groups.

The SQLite file holds password, secret and token hashes: it is created readable by its owner only (0600), and an
existing one (with its ``-wal``, ``-shm`` and ``-journal`` files, which SQLite creates with the database file's
mode) is tightened to that when opened.

SQLite's read units (``read()``) run on connections the process keeps open for them (``InlineReaders``): a unit
takes an idle one (or opens one), its first statement begins a deferred transaction, whose snapshot is the unit's,
and its end rolls that back and puts the connection back for the next unit. That saves what a pooled connection
cost per unit (the pool's checkout and return with its reset, a new SQLAlchemy ``Connection``): some 45 of the 55
us a read unit of one SELECT took. Units open at once (tasks that await inside their blocks) each hold a connection
of their own, so each keeps its own snapshot; WAL lets them read beside the writer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Result, make_url
from sqlalchemy.pool import StaticPool

from stratus.db.group_commit import GroupCommit, InlineConnection

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

LOG = logging.getLogger(__name__)
PRIVATE_FILE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _json_dumps(value: Any) -> str:
    """JSON columns through orjson: a page of a thousand instances decodes four JSON columns per row."""
    return orjson.dumps(value).decode()


class Connection(Protocol):
    """What the query modules use of a connection."""

    async def execute(self, statement: Any, parameters: Any = None) -> Result[Any]: ...


class Database:
    """The process's handle on the database: ``read()`` for queries, ``write()`` for one transaction."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.sync_engine: Engine | None = None
        self.async_engine: AsyncEngine | None = None
        memory = False
        if self.is_sqlite:
            memory = ":memory:" in url or url in ("sqlite://", "sqlite:///")
            if not memory:
                private_sqlite_file(str(make_url(url).database))
            self.sync_engine = create_sync_engine(
                url, connect_args={"timeout": 30, "check_same_thread": False},
                poolclass=StaticPool if memory else None, json_serializer=_json_dumps,
                json_deserializer=orjson.loads)
            _tune_sqlite(self.sync_engine)
        else:
            # only here: SQLAlchemy's asyncio extension imports its ORM (some 8 MiB), which SQLite's sync engine
            # does without
            from sqlalchemy.ext.asyncio import create_async_engine

            self.async_engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size * 2,
                                                    pool_pre_ping=True, json_serializer=_json_dumps,
                                                    json_deserializer=orjson.loads)
        self._write_lock = asyncio.Lock()
        #: SQLite files commit in groups; an in-memory database (one connection, tests) each unit alone
        self._group_commit = (GroupCommit(self.sync_engine) if self.sync_engine is not None and not memory
                              else None)
        #: SQLite files' read units on kept connections; an in-memory database's one connection is the pool's
        self._readers = (InlineReaders(self.sync_engine) if self.sync_engine is not None and not memory
                         else None)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        """Queries in one snapshot (on SQLite, from the unit's first statement) that ends with the block."""
        readers = self._readers
        if readers is not None:
            conn = readers.take()
            try:
                yield InlineConnection(conn)
            finally:
                readers.put_back(conn)
            return
        if self.sync_engine is not None:
            with self.sync_engine.connect() as conn:
                yield InlineConnection(conn)
            return
        assert self.async_engine is not None
        async with self.async_engine.connect() as aconn:
            yield aconn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        """One transaction; on SQLite it holds the write lock from BEGIN, so read-check-write units serialise."""
        if self._group_commit is not None:
            async with self._group_commit.unit() as conn:
                yield conn
            return
        if self.sync_engine is not None:
            async with self._write_lock:
                with self.sync_engine.connect() as conn:
                    conn.info["immediate"] = True
                    try:
                        with conn.begin():
                            yield InlineConnection(conn)
                    finally:
                        conn.info.pop("immediate", None)
            return
        assert self.async_engine is not None
        async with self.async_engine.begin() as aconn:
            yield aconn

    def run_sync(self, func: Any) -> Any:
        """Run ``func(sync_connection)`` in one transaction (migrations); returns an awaitable."""
        if self.sync_engine is not None:
            engine = self.sync_engine

            async def _inline() -> Any:
                with engine.begin() as conn:
                    return func(conn)
            return _inline()
        assert self.async_engine is not None
        async_engine = self.async_engine

        async def _async() -> Any:
            async with async_engine.begin() as conn:
                return await conn.run_sync(func)
        return _async()

    async def dispose(self) -> None:
        if self._group_commit is not None:
            self._group_commit.close()
        if self._readers is not None:
            self._readers.close()
        if self.sync_engine is not None:
            self.sync_engine.dispose()
        if self.async_engine is not None:
            await self.async_engine.dispose()


class InlineReaders:
    """SQLite's read connections, kept open between read units (see the module's docstring).

    A unit takes the most recently returned idle connection, or opens one from the engine's pool when none is idle
    (units open at once each have their own); at its end its transaction, if a statement began one, is rolled back
    and the connection goes back to the idle list, of at most ``IDLE_MAX`` (more are closed: back to the pool).
    A connection whose rollback fails, or that SQLAlchemy invalidated (its driver connection lost), is closed
    instead, and the next unit opens a fresh one."""

    IDLE_MAX = 4

    __slots__ = ("_engine", "_idle")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._idle: list[Any] = []

    def take(self) -> Any:
        """A connection for one read unit, which ``put_back`` ends."""
        return self._idle.pop() if self._idle else self._engine.connect()

    def put_back(self, conn: Any) -> None:
        """The unit's transaction rolled back, and the connection kept for the next unit (or closed)."""
        try:
            if conn.in_transaction():
                conn.rollback()
            healthy = not conn.invalidated and not conn.closed and not conn.connection.dbapi_connection.in_transaction
        except Exception:  # a rollback that failed: the connection is not reused
            healthy = False
        if healthy and len(self._idle) < self.IDLE_MAX:
            self._idle.append(conn)
            return
        with suppress(Exception):
            conn.close()

    @property
    def idle(self) -> int:
        """How many connections wait for a unit (tests)."""
        return len(self._idle)

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(Exception):
                conn.close()


#: SQLSTATE classes of a lost server: 08 connection exception; 57P01-57P03 admin shutdown, crash shutdown, cannot
#: connect now (a server stopping, or starting and not yet accepting)
_LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03")


#: what an API answers (503) while the database server cannot be reached; the request changed nothing
DB_UNAVAILABLE = "The database is unavailable; the request was not carried out. Try again later."


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` says the database server cannot be reached (refused, gone mid-statement, shutting down or
    starting up, the pool out of connections for its timeout), not that a statement was wrong: the cause of an
    API's 503 and of a service's retry at its next period. The next statement may succeed (the pool pre-pings and
    reconnects), so nothing of it is permanent."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OSError, sa_exc.DisconnectionError, sa_exc.TimeoutError)):
            return True
        if isinstance(current, sa_exc.DBAPIError) and (current.connection_invalidated
                                                       or isinstance(current, sa_exc.InterfaceError)):
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_LOST_SQLSTATES):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


def make_private_dir(path: str, mode: int = 0o700) -> None:
    """Create ``path`` with ``mode``, or take group and other permissions beyond ``mode`` away from an existing
    one (it holds what must stay private: the database, the admin password)."""
    os.makedirs(path, mode=mode, exist_ok=True)
    current = stat.S_IMODE(os.stat(path).st_mode)
    if current & ~mode & 0o077:
        os.chmod(path, current & (0o700 | mode))
        LOG.info("%s was mode %o; now %o", path, current, stat.S_IMODE(os.stat(path).st_mode))


def private_sqlite_file(path: str) -> None:
    """The database file readable and writable by its owner only: created so (before SQLite creates it with the
    umask's mode), or tightened, with its companion files, if it exists."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    os.close(fd)
    for name in (path, *(path + suffix for suffix in SQLITE_COMPANIONS)):
        try:
            if stat.S_IMODE(os.stat(name).st_mode) & 0o077:
                os.chmod(name, PRIVATE_FILE)
        except FileNotFoundError:
            continue


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite would issue BEGIN lazily; we emit BEGIN ourselves so a write transaction can ask for
        # the write lock up front (BEGIN IMMEDIATE) and reads see one snapshot.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # straight to the driver: exec_driver_sql's trip through SQLAlchemy's execution (events, a result) cost
        # more than the BEGIN itself, and every transaction pays it
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if conn.info.get("immediate") else "BEGIN")
