"""The conductor's ``place`` (a build pointed at its claimed host): on SQLite the lease check rides in the
instance's UPDATE, one statement; when the lease was lost the build is left, claims and all, to the conductor
that has it, and when the instance moved on its claim is given back, as before the check was folded in."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, update

from stratus.conductor.build import place
from stratus.context import RequestContext
from stratus.db.models import instances as instances_table
from tests.unit.conductor.conftest import RESOURCES, Cell

SELECTION = {"host": "h1", "nodename": "h1", "availability_zone": "az1"}


async def _place(cell: Cell, uuid: str, conductor: str = "c1") -> tuple[bool | None, list[str]]:
    """``place`` in a unit of work of its own, and the statements it ran."""
    seen: list[str] = []

    def listener(*args: Any) -> None:
        seen.append(" ".join(args[2].split()))

    assert cell.db.sync_engine is not None
    context = RequestContext(user_id="u", project_id="p").to_dict()
    event.listen(cell.db.sync_engine, "before_cursor_execute", listener)
    try:
        async with cell.db.write() as conn:
            placed = await place(cell.conductor(conductor), conn, context, uuid, SELECTION)
    finally:
        event.remove(cell.db.sync_engine, "before_cursor_execute", listener)
    return placed, [s for s in seen if not s.startswith(("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT"))]


async def test_a_held_build_is_placed_in_one_statement_with_its_lease_checked(cell: Cell) -> None:
    [uuid] = await cell.boot()
    await cell.lease(uuid, "c1")
    await cell.claim(uuid)
    placed, statements = await _place(cell, uuid)
    assert placed is True
    row = await cell.instance(uuid)
    assert (row["host"], row["node"], row["launched_on"], row["availability_zone"]) == ("h1", "h1", "h1", "az1")
    assert row["task_state"] == "scheduling"
    updates = [s for s in statements if s.startswith("UPDATE instances ")]
    assert len(updates) == 1 and "request_specs.conductor_id" in updates[0]
    assert not any(s.startswith("SELECT request_specs.conductor_id") for s in statements)


async def test_a_build_taken_over_is_left_alone_with_its_claims(cell: Cell) -> None:
    [uuid] = await cell.boot()
    await cell.lease(uuid, "c2")  # another conductor took the build over
    await cell.claim(uuid)
    placed, _ = await _place(cell, uuid, "c1")
    assert placed is None
    assert (await cell.instance(uuid))["host"] is None
    assert sorted(r[1:] for r in await cell.allocations(uuid)) == sorted(RESOURCES.items())


async def test_a_build_taken_over_from_an_instance_that_moved_on_keeps_its_claims(cell: Cell) -> None:
    """The lease lost and the instance deleted: the lease decides, as when it was checked first."""
    [uuid] = await cell.boot()
    await cell.lease(uuid, "c2")
    await cell.claim(uuid)
    async with cell.db.write() as conn:
        await conn.execute(update(instances_table).where(instances_table.c.uuid == uuid)
                           .values(task_state="deleting"))
    placed, _ = await _place(cell, uuid, "c1")
    assert placed is None and await cell.allocations(uuid)


async def test_an_instance_that_moved_on_gives_its_claim_back(cell: Cell) -> None:
    [uuid] = await cell.boot()
    await cell.lease(uuid, "c1")
    await cell.claim(uuid)
    async with cell.db.write() as conn:
        await conn.execute(update(instances_table).where(instances_table.c.uuid == uuid)
                           .values(task_state="deleting"))
    placed, _ = await _place(cell, uuid, "c1")
    assert placed is None
    row = await cell.instance(uuid)
    assert row["host"] is None and row["task_state"] == "deleting"
    assert await cell.allocations(uuid) == []
