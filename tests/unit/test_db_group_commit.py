"""SQLite's group commit (stratus/db/engine.py): the units of work of one turn of the event loop share a
transaction, each keeps its own atomicity and its own errors, and each is stored when its ``write()`` returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, exc, text

from stratus.db.engine import Database
from stratus.db.group_commit import COMMIT_AT_ONCE


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


async def test_units_after_a_failed_one_still_share_the_groups_commit(db: Database) -> None:
    commits = _Commits(db)
    results = await asyncio.gather(_insert(db, 1, 1), _insert(db, 2, 1), _insert(db, 3, 3), _insert(db, 4, 4, True),
                                   _insert(db, 5, 5), return_exceptions=True)
    assert [type(r) for r in results] == [type(None), exc.IntegrityError, type(None), ValueError, type(None)]
    assert commits.count == 1 and await _stored(db) == [1, 3, 5]


async def test_a_transaction_sqlite_rolls_back_fails_every_unit_before_it(db: Database) -> None:
    # INSERT OR ROLLBACK: on its conflict SQLite rolls back the whole transaction, savepoints and all, so the units
    # that ran before it in the group were lost and must not be told they were stored; those after it are stored
    async def insert_or_rollback() -> None:
        async with db.write() as conn:
            await conn.execute(text("INSERT OR ROLLBACK INTO t (id, v) VALUES (3, 1)"))

    async def after_it() -> None:
        await asyncio.sleep(0)  # queued behind the others, so in the group after the failed one (a new one)
        await _insert(db, 4, 4)

    results = await asyncio.gather(_insert(db, 1, 1), _insert(db, 2, 2), insert_or_rollback(), after_it(),
                                   return_exceptions=True)
    assert isinstance(results[0], exc.OperationalError) and isinstance(results[1], exc.OperationalError)
    assert isinstance(results[2], exc.IntegrityError) and results[3] is None
    assert await _stored(db) == [4]


async def test_a_failed_commit_fails_every_unit_of_the_group(tmp_path: Path) -> None:
    # a deferred foreign key is checked at COMMIT: the group's COMMIT fails, and none of its units was stored
    database = Database(f"sqlite:///{tmp_path / 'deferred.sqlite'}")
    try:
        async with database.write() as conn:
            await conn.execute(text("CREATE TABLE p (id INTEGER PRIMARY KEY)"))
            await conn.execute(text("CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p (id) "
                                    "DEFERRABLE INITIALLY DEFERRED)"))

        async def child(row_id: int, parent: int) -> None:
            async with database.write() as conn:
                await conn.execute(text("INSERT INTO c (id, p) VALUES (:i, :p)"), {"i": row_id, "p": parent})

        results = await asyncio.gather(child(1, 1), child(2, 99), child(3, 1), return_exceptions=True)
        assert all(isinstance(r, exc.IntegrityError) for r in results), results
        async with database.read() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM c"))).scalar_one() == 0
        async with database.write() as conn:  # the writer is usable again
            await conn.execute(text("INSERT INTO p (id) VALUES (1)"))
        await child(1, 1)
    finally:
        await database.dispose()


async def test_shutdown_commits_the_open_group(tmp_path: Path) -> None:
    path = tmp_path / "shutdown.sqlite"
    database = Database(f"sqlite:///{path}")
    async with database.write() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER UNIQUE)"))
    waiting = [asyncio.ensure_future(_insert(database, i, i)) for i in (1, 2)]
    await asyncio.sleep(0)  # their blocks ran; their group waits for the loop's turn
    assert not any(task.done() for task in waiting)
    await database.dispose()  # before that turn
    await asyncio.gather(*waiting)  # told they were stored
    again = Database(f"sqlite:///{path}")
    try:
        assert await _stored(again) == [1, 2]
    finally:
        await again.dispose()


async def test_shutdown_rolls_back_a_unit_cut_short_in_its_block(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'cut.sqlite'}")
    async with database.write() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER UNIQUE)"))
    entered = asyncio.Event()

    async def slow() -> None:
        async with database.write() as conn:
            await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 1)"))
            entered.set()
            await asyncio.sleep(10)

    done = asyncio.ensure_future(_insert(database, 2, 2))
    await asyncio.sleep(0)
    cut = asyncio.ensure_future(slow())
    await entered.wait()  # the first group committed at the loop's turn; the second holds the slow unit
    await done
    await database.dispose()
    cut.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cut
    again = Database(f"sqlite:///{tmp_path / 'cut.sqlite'}")
    try:
        assert await _stored(again) == [2]
    finally:
        await again.dispose()
