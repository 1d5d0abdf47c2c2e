"""SQLite's group commit (stratus/db/engine.py): the units of work of one turn of the event loop share a
transaction, each keeps its own atomicity and its own errors, and each is stored when its ``write()`` returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, exc, text

from stratus.db.engine import COMMIT_AT_ONCE, Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'group.sqlite'}")
    async with database.write() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER UNIQUE)"))
    yield database
    await database.dispose()


class _Commits:
    def __init__(self, db: Database) -> None:
        self.count = 0
        assert db.sync_engine is not None
        event.listen(db.sync_engine, "commit", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


async def _insert(db: Database, row_id: int, value: int, fail: bool = False) -> None:
    async with db.write() as conn:
        await conn.execute(text("INSERT INTO t (id, v) VALUES (:i, :v)"), {"i": row_id, "v": value})
        if fail:
            raise ValueError("the unit's own code failed after its statement")


async def _stored(db: Database) -> list[int]:
    async with db.read() as conn:  # another connection: it sees only what is committed
        return [r[0] for r in await conn.execute(text("SELECT id FROM t ORDER BY id"))]


async def test_concurrent_units_share_one_commit(db: Database) -> None:
    commits = _Commits(db)
    await asyncio.gather(*(_insert(db, i, i) for i in range(1, 21)))
    assert commits.count == 1
    assert await _stored(db) == list(range(1, 21))


async def test_a_unit_is_stored_when_its_write_returns(db: Database) -> None:
    commits = _Commits(db)
    await _insert(db, 1, 1)
    assert await _stored(db) == [1]
    await _insert(db, 2, 2)
    assert commits.count == 2 and await _stored(db) == [1, 2]


async def test_a_failed_statement_fails_its_unit_alone(db: Database) -> None:
    results = await asyncio.gather(_insert(db, 1, 1), _insert(db, 2, 2), _insert(db, 3, 1), _insert(db, 4, 4),
                                   return_exceptions=True)
    assert [type(r) for r in results] == [type(None), type(None), exc.IntegrityError, type(None)]
    assert await _stored(db) == [1, 2, 4]


async def test_a_unit_whose_code_fails_leaves_nothing(db: Database) -> None:
    # the first unit of a group (its own transaction rolled back) and a later one (its savepoint)
    results = await asyncio.gather(_insert(db, 1, 1, fail=True), _insert(db, 2, 2), _insert(db, 3, 3, fail=True),
                                   _insert(db, 4, 4), return_exceptions=True)
    assert [type(r) for r in results] == [ValueError, type(None), ValueError, type(None)]
    assert await _stored(db) == [2, 4]


async def test_a_unit_sees_the_work_of_those_before_it_in_its_group(db: Database) -> None:
    async def count_then_insert(row_id: int) -> int:
        async with db.write() as conn:
            seen = (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one()
            await conn.execute(text("INSERT INTO t (id, v) VALUES (:i, :i)"), {"i": row_id})
            return int(seen)

    assert await asyncio.gather(*(count_then_insert(i) for i in range(1, 6))) == [0, 1, 2, 3, 4]


async def test_a_caller_cancelled_while_its_group_commits_leaves_its_work_stored(db: Database) -> None:
    task = asyncio.ensure_future(_insert(db, 1, 1))
    await asyncio.sleep(0)  # its block ran; it waits for the group's commit
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _stored(db) == [1]


async def test_a_unit_that_awaits_in_its_block_holds_the_group_open(db: Database) -> None:
    commits = _Commits(db)

    async def slow() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 1)"))
            await asyncio.sleep(0.01)  # the loop turns; the group commits after this block, not in it
            await conn.execute(text("INSERT INTO t (id, v) VALUES (2, 2)"))

    await asyncio.gather(slow(), _insert(db, 3, 3))
    assert await _stored(db) == [1, 2, 3]
    assert commits.count <= 2


async def test_a_unit_someone_waits_for_commits_at_its_end(db: Database) -> None:
    commits = _Commits(db)
    background = asyncio.ensure_future(_insert(db, 1, 1))
    await asyncio.sleep(0)  # its block ran; its group waits for the loop's turn
    turned: list[bool] = []
    asyncio.get_running_loop().call_soon(turned.append, True)
    token = COMMIT_AT_ONCE.set(True)
    try:
        await _insert(db, 2, 2)
    finally:
        COMMIT_AT_ONCE.reset(token)
    assert turned == []  # answered without waiting a turn of the loop
    assert commits.count == 1 and await _stored(db) == [1, 2]  # the background's unit went with it
    await background
