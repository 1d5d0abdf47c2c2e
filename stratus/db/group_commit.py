"""SQLite's group commit: the units of work (``Database.write()`` blocks) of one turn of the event loop share one
transaction and one COMMIT.

Why: a transaction costs three to four times what its one small UPDATE does (BEGIN, the COMMIT writing its pages
to the WAL), and a hundred builds or deletes under way each write a few small ones. SQLite has one writer at a time
anyway, so the process's units queue on one asyncio lock and run one after the other on one writer connection;
grouping them costs no concurrency.

The rules, each of which a caller can rely on as if its unit were a transaction of its own:

- **Who joins**: a unit that starts while a group is open joins it, in a SAVEPOINT of its own; one that finds
  none opens a group (BEGIN IMMEDIATE), and is its first unit, with no savepoint (a lone unit pays nothing more).
- **When it commits**: once the loop has run what was ready when the group opened (one ``call_soon``), at the
  end of the unit then in its block if one is; or at the end of a unit that someone waits for (``COMMIT_AT_ONCE``
  set in its context: an API request's, stratus/priority.py), which takes the group with it so that a client
  never waits a turn of the loop for the background's units.
- **Who waits**: every unit's ``write()`` returns only after its group's COMMIT, so when a block ends its work
  is stored and visible to every other connection. A caller cancelled while it waits leaves at once; its work
  commits with the group all the same, as it would have.
- **Errors**: a unit that fails (a statement, or its own code) rolls back to its savepoint and raises to its
  caller alone; the other units' work stays and commits. The first unit's failure rolls back the transaction,
  which holds nothing else yet. Should SQLite roll the whole transaction back itself (it does for a few errors:
  ``INSERT OR ROLLBACK``, a full disk), or the COMMIT fail, every unit of the group that was waiting gets the
  error: none of them was stored.
- **Shutdown**: ``close()`` commits an open group whose units have all ended, so nothing a caller was told is
  coming is lost; a unit cut short in its block is rolled back with its group (its callers get the error).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from stratus.db.prepared import PLANS

#: set in the context of work someone waits for (an API request, stratus/priority.py): its units commit their
#: group at their end instead of waiting for the loop's turn
COMMIT_AT_ONCE: ContextVar[bool] = ContextVar("commit_at_once", default=False)


class InlineConnection:
    """A sync SQLAlchemy connection behind the async ``execute`` the query modules call (SQLite answers in
    microseconds: the statement runs on the loop). A prepared statement (stratus/db/prepared.py) runs its plan
    straight on the driver, in the same transaction; any other, or one its plan leaves to SQLAlchemy, through
    ``Connection.execute``."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        plan = PLANS.get(id(statement))
        if plan is not None and plan.statement is statement:
            result = plan.run(self._conn, parameters)
            if result is not None:
                return result
        if parameters is None:
            return self._conn.execute(statement)
        return self._conn.execute(statement, parameters)


class GroupCommit:
    """The process's writer connection and the group open on it (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock()
        self._writer: Any = None
        self._group: _Group | None = None

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[InlineConnection]:
        """One unit of work in the open group (opened if none is); returns once that group is committed."""
        async with self._lock:
            group = self._group
            if group is None or not group.open:
                group = self._group = self._begin()
            with group.unit(at_once=COMMIT_AT_ONCE.get()) as conn:
                yield conn
        await group.wait()

    def _begin(self) -> _Group:
        if self._writer is None or self._writer.closed:
            self._writer = self._engine.connect()
            self._writer.info["immediate"] = True  # BEGIN IMMEDIATE: the write lock from the start
        try:
            return _Group(self._writer)
        except BaseException:  # no BEGIN (the database locked past busy_timeout): the next unit reconnects
            self._writer.close()
            self._writer = None
            raise

    def close(self) -> None:
        """Shutdown: the open group committed if no unit is in its block (else rolled back, its units told), and
        the writer connection closed."""
        group, self._group = self._group, None
        if group is not None and group.open:
            if group.in_unit:
                group.abort(sa_exc.OperationalError(
                    "COMMIT", None, Exception("the database was closed while a unit of work was in its block")))
            else:
                group.commit()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _Group:
    """One transaction that units of work share: it schedules its own COMMIT, and its ``committed`` future tells
    the waiting units how it ended."""

    __slots__ = ("_conn", "_due", "_raw", "_tx", "_units", "committed", "in_unit", "open")

    def __init__(self, conn: Any) -> None:
        loop = asyncio.get_running_loop()
        self._conn = conn
        self._raw = conn.connection.dbapi_connection
        self._tx = conn.begin()
        self._units = 0
        self._due = False  # the loop turned while a unit was in its block: commit at its end
        self.in_unit = False
        self.open = True  # units may join; False once committed or rolled back
        self.committed: asyncio.Future[None] = loop.create_future()
        # each waiter raises the error itself; one left unread (its waiters cancelled) is not worth a warning
        self.committed.add_done_callback(lambda f: f.cancelled() or f.exception())
        loop.call_soon(self._turned)

    @contextmanager
    def unit(self, at_once: bool) -> Iterator[InlineConnection]:
        """A unit's block: its own savepoint (none for the first unit), rolled back alone if the block raises;
        at its end the group commits if the loop has turned meanwhile or ``at_once``."""
        savepoint = f"u{self._units}" if self._units else None
        if savepoint is not None:
            self._raw.execute(f"SAVEPOINT {savepoint}")
        self._units += 1
        self.in_unit = True
        try:
            yield InlineConnection(self._conn)
            if savepoint is not None:
                self._raw.execute(f"RELEASE {savepoint}")
        except BaseException:
            self._undo(savepoint)
            raise
        finally:
            self.in_unit = False
        if self.open and (self._due or at_once):
            self.commit()

    def _undo(self, savepoint: str | None) -> None:
        """The failed unit's work rolled back: to its savepoint, or (the first unit, or a transaction SQLite rolled
        back itself) the whole group, whose earlier units then get the error. Nothing to do for a group already
        ended under the unit (closed at shutdown)."""
        if not self.open:
            return
        if savepoint is not None and self._raw.in_transaction:
            try:
                self._raw.execute(f"ROLLBACK TO {savepoint}")
                self._raw.execute(f"RELEASE {savepoint}")
                return
            except Exception as exc:  # the savepoint is gone with the transaction: the group fails
                self.abort(exc)
                return
        self.abort(sa_exc.OperationalError(
            "ROLLBACK", None, Exception("the transaction was rolled back by a failed statement")))

    def _turned(self) -> None:
        """The loop ran what was ready when the group opened: commit now, or at the end of the unit in its block."""
        if not self.open:
            return
        if self.in_unit:
            self._due = True
        else:
            self.commit()

    def commit(self) -> None:
        self.open = False
        try:
            self._tx.commit()
        except BaseException as exc:
            self._rollback()
            self.committed.set_exception(exc)
        else:
            self.committed.set_result(None)

    def abort(self, error: BaseException) -> None:
        """Roll the whole group back: the units waiting for its commit get ``error`` (the failing unit raises its
        own)."""
        self.open = False
        self._rollback()
        if not self.committed.done():
            self.committed.set_exception(error)

    def _rollback(self) -> None:
        """The transaction rolled back; should that fail, or leave SQLAlchemy's transaction open (a COMMIT that
        failed), the connection is closed (its transaction with it) and the next group opens a new one."""
        with suppress(Exception):
            self._tx.rollback()
        with suppress(Exception):
            if not self._conn.in_transaction() and not self._raw.in_transaction:
                return
            self._conn.invalidate()
        with suppress(Exception):
            self._conn.close()

    async def wait(self) -> None:
        """Until the group's COMMIT (its error raised). The future is shielded: a waiter cancelled leaves, and its
        work still commits with the group's."""
        await asyncio.shield(self.committed)
