"""Database handles: PostgreSQL through an async engine, SQLite inline on the event loop.

SQLite answers a statement in microseconds, while handing it to a worker thread (aiosqlite) costs about a
millisecond per statement; so for SQLite the statements run inline on the loop, and writers of the process
queue on one asyncio lock (SQLite has one writer at a time anyway) instead of meeting in SQLite's busy
handler, which sleeps up to 100 ms between attempts. Every caller sees the same small interface:
``async with db.read() as conn`` / ``async with db.write() as conn`` and ``await conn.execute(statement)``.

SQLite's writes are committed in groups: a transaction costs three to four times what its one UPDATE does
(BEGIN, the connection, the COMMIT writing its pages to the WAL), and a hundred builds each write a few small ones.
So the units of work (``write()`` blocks) that run in the same turn of the event loop share one transaction on
the process's one writer connection, each in a SAVEPOINT of its own: a unit that fails (a statement or the code
around it) rolls back to its savepoint and raises to its caller alone, the others' work stays. The group commits
once the loop has run what was ready when it opened; each unit's ``write()`` returns only after that commit, so a
caller still sees its work stored (and others see it) when its block ends, as with a transaction of its own. Should
the COMMIT itself fail (a full disk), every unit of that group gets the error: none of them was stored. A unit
written while ``COMMIT_AT_ONCE`` is set in its context (an API request's: stratus/priority.py sets it) commits the
group at its own end instead: a client waiting for its answer does not wait a turn of the loop for the others.

The SQLite file holds password, secret and token hashes: it is created readable by its owner only (0600), and an
existing one (with its ``-wal``, ``-shm`` and ``-journal`` files, which SQLite creates with the database file's
mode) is tightened to that when opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Result, make_url
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

LOG = logging.getLogger(__name__)
PRIVATE_FILE = 0o600
#: set in the context of work someone waits for (an API request): its write units commit at their end (group commit)
COMMIT_AT_ONCE: ContextVar[bool] = ContextVar("commit_at_once", default=False)
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _json_dumps(value: Any) -> str:
    """JSON columns through orjson: a page of a thousand instances decodes four JSON columns per row."""
    return orjson.dumps(value).decode()


class Connection(Protocol):
    """What the query modules use of a connection."""

    async def execute(self, statement: Any, parameters: Any = None) -> Result[Any]: ...


class _InlineConnection:
    """A sync SQLAlchemy connection behind the async ``execute`` the query modules call."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, statement: Any, parameters: Any = None) -> Result[Any]:
        if parameters is None:
            return self._conn.execute(statement)  # type: ignore[no-any-return]
        return self._conn.execute(statement, parameters)  # type: ignore[no-any-return]


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
        #: group commit (SQLite files): the process's writer connection, the group open on it, its state
        self._group_commit = self.is_sqlite and not memory
        self._writer: Any = None
        self._group: _Group | None = None
        self._in_unit = False
        self._commit_due = False

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        if self.sync_engine is not None:
            with self.sync_engine.connect() as conn:
                yield _InlineConnection(conn)
            return
        assert self.async_engine is not None
        async with self.async_engine.connect() as aconn:
            yield aconn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        """One transaction; on SQLite it holds the write lock from BEGIN, so read-check-write units serialise."""
        if self._group_commit:
            async with self._unit() as conn:
                yield conn
            return
        if self.sync_engine is not None:
            async with self._write_lock:
                with self.sync_engine.connect() as conn:
                    conn.info["immediate"] = True
                    try:
                        with conn.begin():
                            yield _InlineConnection(conn)
                    finally:
                        conn.info.pop("immediate", None)
            return
        assert self.async_engine is not None
        async with self.async_engine.begin() as aconn:
            yield aconn

    @asynccontextmanager
    async def _unit(self) -> AsyncIterator[Connection]:
        """One unit of work in the open group (opened if none is): its own savepoint, except for the group's first
        unit, whose failure rolls the whole transaction back (nothing else is in it yet). Returns once the
        group is committed."""
        async with self._write_lock:
            group = self._group
            if group is None:
                group = self._open_group()
            raw = group.raw
            savepoint = f"u{group.units}" if group.units else None
            if savepoint is not None:
                raw.execute(f"SAVEPOINT {savepoint}")
            group.units += 1
            self._in_unit = True
            try:
                yield _InlineConnection(group.conn)
            except BaseException:
                self._undo(group, savepoint)
                raise
            else:
                if savepoint is not None:
                    raw.execute(f"RELEASE {savepoint}")
            finally:
                self._in_unit = False
                if self._group is not None and (self._commit_due or COMMIT_AT_ONCE.get()):
                    self._commit()
        await _committed(group.committed, self)

    def _open_group(self) -> _Group:
        assert self.sync_engine is not None
        if self._writer is None or self._writer.closed:
            self._writer = self.sync_engine.connect()
            self._writer.info["immediate"] = True
        loop = asyncio.get_running_loop()
        group = self._group = _Group(self._writer, self._writer.begin(), loop.create_future())
        loop.call_soon(self._commit_soon, group)
        return group

    def _undo(self, group: _Group, savepoint: str | None) -> None:
        """A unit failed: its own work rolled back (the whole transaction when it is the group's first)."""
        if savepoint is not None and group.raw.in_transaction:
            group.raw.execute(f"ROLLBACK TO {savepoint}")
            group.raw.execute(f"RELEASE {savepoint}")
            return
        # the first unit, or SQLite rolled the whole transaction back itself (it does for a few errors: the
        # units before this one were lost with it, so they get the error too)
        self._group = None
        self._commit_due = False
        if group.tx.is_active:
            group.tx.rollback()
        if not group.committed.done():
            if group.units > 1:
                group.committed.set_exception(sa_exc.OperationalError(
                    "COMMIT", None, Exception("the transaction was rolled back by a failed statement")))
            else:
                group.committed.set_result(None)

    def _commit_soon(self, group: _Group) -> None:
        """The loop ran what was ready when ``group`` opened: commit it, once no unit is in its block."""
        if self._group is not group:
            return
        if self._in_unit:
            self._commit_due = True
        else:
            self._commit()

    def _commit(self) -> None:
        group, self._group, self._commit_due = self._group, None, False
        assert group is not None
        try:
            group.tx.commit()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                if group.tx.is_active:
                    group.tx.rollback()
            group.committed.set_exception(exc)
        else:
            group.committed.set_result(None)

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
        if self._group is not None and not self._in_unit:
            self._commit()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.sync_engine is not None:
            self.sync_engine.dispose()
        if self.async_engine is not None:
            await self.async_engine.dispose()


class _Group:
    """A write transaction that units of work share (group commit): its connection, how many units joined, and
    the future that the COMMIT resolves."""

    __slots__ = ("committed", "conn", "raw", "tx", "units")

    def __init__(self, conn: Any, tx: Any, committed: asyncio.Future[None]) -> None:
        self.conn = conn
        self.raw = conn.connection.dbapi_connection
        self.tx = tx
        self.units = 0
        self.committed = committed


async def _committed(committed: asyncio.Future[None], db: Database) -> None:
    """Wait for a unit's group to commit. A caller cancelled meanwhile leaves with its work committed: the group is
    committed at once when no unit is in its block (else at the next unit's end, as it would have been)."""
    if committed.done():
        committed.result()
        return
    try:
        await asyncio.shield(committed)
    except asyncio.CancelledError:
        if not committed.done() and not db._in_unit and db._group is not None:
            db._commit()
        raise


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
