"""SQLite's read units (stratus/db/engine.py ``InlineReaders``): kept connections reused from unit to unit, each
unit one snapshot of its own, units open at once on separate connections, and a failed unit leaving nothing
behind for the next."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from stratus.db.engine import Database

_COUNT = text("SELECT count(*) FROM t")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'read.sqlite'}")
    async with database.write() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    yield database
    await database.dispose()


async def _insert(db: Database, row_id: int) -> None:
    async with db.write() as conn:
        await conn.execute(text("INSERT INTO t (id) VALUES (:i)"), {"i": row_id})


async def _count(conn: Any) -> int:
    return int((await conn.execute(_COUNT)).scalar_one())


async def test_read_units_reuse_one_connection(db: Database) -> None:
    """The pool's checkout is what a read unit cost most: consecutive units check out none after the first."""
    assert db.sync_engine is not None
    checkouts: list[Any] = []
    event.listen(db.sync_engine, "checkout", lambda *args: checkouts.append(args))
    for _ in range(5):
        async with db.read() as conn:
            assert await _count(conn) == 0
    assert len(checkouts) <= 1
    assert db._readers is not None and db._readers.idle == 1


async def test_a_unit_sees_what_was_committed_before_it_and_not_after(db: Database) -> None:
    await _insert(db, 1)
    async with db.read() as conn:
        assert await _count(conn) == 1
        await _insert(db, 2)  # committed while the unit is open: not in its snapshot
        assert await _count(conn) == 1
    async with db.read() as conn:  # the same connection, a new snapshot
        assert await _count(conn) == 2


async def test_units_open_at_once_keep_their_own_snapshots(db: Database) -> None:
    first_read = asyncio.Event()
    written = asyncio.Event()

    async def early() -> tuple[int, int]:
        async with db.read() as conn:
            before = await _count(conn)
            first_read.set()
            await written.wait()
            return before, await _count(conn)

    async def late() -> int:
        await first_read.wait()
        await _insert(db, 1)
        written.set()
        async with db.read() as conn:  # opened while ``early``'s unit is open: a connection of its own
            return await _count(conn)

    (before, after), seen_late = await asyncio.gather(early(), late())
    assert (before, after) == (0, 0)
    assert seen_late == 1
    assert db._readers is not None and db._readers.idle == 2


async def test_nested_units_on_one_task(db: Database) -> None:
    async with db.read() as outer:
        assert await _count(outer) == 0
        await _insert(db, 1)
        async with db.read() as inner:
            assert await _count(inner) == 1
        assert await _count(outer) == 0


async def test_a_unit_after_a_failed_one(db: Database) -> None:
    with pytest.raises(Exception, match="no such table"):
        async with db.read() as conn:
            assert await _count(conn) == 0
            await conn.execute(text("SELECT * FROM missing"))
    await _insert(db, 1)
    async with db.read() as conn:  # the failed unit's snapshot is gone with it
        assert await _count(conn) == 1
    with pytest.raises(RuntimeError):
        async with db.read() as conn:
            assert await _count(conn) == 1
            raise RuntimeError("the caller's own code")
    await _insert(db, 2)
    async with db.read() as conn:
        assert await _count(conn) == 2


async def test_a_cancelled_unit_gives_its_connection_back(db: Database) -> None:
    entered = asyncio.Event()

    async def reader() -> None:
        async with db.read() as conn:
            await _count(conn)
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(reader())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert db._readers is not None and db._readers.idle == 1
    await _insert(db, 1)
    async with db.read() as conn:
        assert await _count(conn) == 1


async def test_idle_connections_are_bounded_and_closed_at_dispose(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'many.sqlite'}")
    readers = database._readers
    assert readers is not None
    release = asyncio.Event()
    all_open = asyncio.Event()
    count = readers.IDLE_MAX + 2
    opened = 0

    async def reader() -> None:
        nonlocal opened
        async with database.read() as conn:
            await conn.execute(text("SELECT 1"))
            opened += 1
            if opened == count:
                all_open.set()
            await release.wait()

    tasks = [asyncio.create_task(reader()) for _ in range(count)]
    await all_open.wait()
    release.set()
    await asyncio.gather(*tasks)
    assert readers.idle == readers.IDLE_MAX
    await database.dispose()
    assert readers.idle == 0
