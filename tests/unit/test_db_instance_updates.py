"""The compare-and-swap of instance updates on a real SQLite database: its statements are built once per shape
(columns, expected states, number of hosts) and reused with new values, so these check that a reused statement
still compares against this call's states and hosts, not the first call's."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from stratus.db import instances
from stratus.db.engine import Database
from stratus.db.models import instances as instances_table
from stratus.utils import new_uuid, utcnow


async def _instance(db: Database, **values: Any) -> str:
    uuid, now = new_uuid(), utcnow()
    row = {"uuid": uuid, "project_id": "p", "user_id": "u", "flavor": {}, "vcpus": 1, "memory_mb": 64,
           "root_gb": 1, "ephemeral_gb": 0, "vm_state": "building", "task_state": "scheduling", "power_state": 0,
           "reservation_id": "r-1", "system_metadata": {}, "security_groups": [],
           "created_at": now, "updated_at": now, **values}
    async with db.write() as conn:
        await conn.execute(instances_table.insert().values(**row))
    return uuid


async def _row(db: Database, uuid: str) -> dict[str, Any]:
    async with db.read() as conn:
        return dict((await conn.execute(select(instances_table).where(instances_table.c.uuid == uuid))
                     ).mappings().one())


async def _update(db: Database, uuid: str, values: dict[str, Any], **expected: Any) -> bool:
    async with db.write() as conn:
        return await instances.update_instance(conn, uuid, values, **expected)


async def test_reused_statement_compares_this_calls_states(db: Database) -> None:
    a = await _instance(db)
    b = await _instance(db, task_state="spawning")
    assert await _update(db, a, {"task_state": "networking"}, expected_task_state=("scheduling",),
                         expected_vm_state=("building",))
    # same shape, another instance whose task_state is not the expected one: nothing changes
    assert not await _update(db, b, {"task_state": "networking"}, expected_task_state=("scheduling",),
                             expected_vm_state=("building",))
    assert (await _row(db, a))["task_state"] == "networking"
    assert (await _row(db, b))["task_state"] == "spawning"
    # several expected states, and None among them (NULL)
    assert await _update(db, b, {"progress": 5}, expected_task_state=("networking", "spawning"))
    c = await _instance(db, task_state=None)
    assert not await _update(db, c, {"progress": 5}, expected_task_state=("networking", "spawning"))
    assert await _update(db, c, {"progress": 7}, expected_task_state=("networking", None))
    assert (await _row(db, c))["progress"] == 7


async def test_reused_statement_compares_this_calls_host(db: Database) -> None:
    a = await _instance(db, host="h1")
    b = await _instance(db, host="h2")
    c = await _instance(db, host=None)
    assert await _update(db, a, {"node": "n1"}, expected_host=("h1",))
    assert not await _update(db, b, {"node": "n1"}, expected_host=("h1",))
    assert await _update(db, b, {"node": "n2"}, expected_host=("h2",))
    assert not await _update(db, c, {"node": "n3"}, expected_host=("h3",))
    assert await _update(db, c, {"node": "n3"}, expected_host=("h3", None))
    assert await _update(db, a, {"node": "n4"}, expected_host=("h9", "h1"))
    assert [(await _row(db, u))["node"] for u in (a, b, c)] == ["n4", "n2", "n3"]


async def test_values_of_each_call_are_written_and_deleted_rows_left_alone(db: Database) -> None:
    a = await _instance(db)
    gone = await _instance(db, deleted=1)
    assert await _update(db, a, {"vm_state": "active", "task_state": None, "launched_at": utcnow()})
    assert not await _update(db, gone, {"vm_state": "active", "task_state": None, "launched_at": utcnow()})
    row = await _row(db, a)
    assert (row["vm_state"], row["task_state"]) == ("active", None) and row["launched_at"] is not None
    assert (await _row(db, gone))["vm_state"] == "building"


async def test_soft_delete_takes_metadata_tags_and_group_membership_with_it(db: Database) -> None:
    # each table holding rows of the deleted instance or not, and another instance's rows left alone
    from stratus.db import server_groups
    from stratus.db.models import instance_group_members, instance_metadata, instance_tags

    async def rows_of(uuid: str) -> list[int]:
        async with db.read() as conn:
            return [len((await conn.execute(select(t).where(t.c.instance_uuid == uuid))).all())
                    for t in (instance_metadata, instance_tags, instance_group_members)]

    plain, tagged, full, other = [await _instance(db) for _ in range(4)]
    async with db.write() as conn:
        await instances.set_metadata(conn, full, {"a": "1", "b": "2"}, replace=True)
        await instances.set_metadata(conn, other, {"a": "1"}, replace=True)
        for uuid in (tagged, full, other):
            await conn.execute(instance_tags.insert().values(instance_uuid=uuid, tag="t"))
        group = await server_groups.create(conn, name="g", project_id="p", user_id="u", policy="affinity",
                                           rules={})
        await server_groups.add_members(conn, group["id"], [full, other])
    assert await rows_of(full) == [2, 1, 1]
    async with db.write() as conn:
        for uuid in (plain, tagged, full):
            assert await instances.soft_delete(conn, uuid)
        assert not await instances.soft_delete(conn, full)  # deleted already
    for uuid in (plain, tagged, full):
        row = await _row(db, uuid)
        assert (row["deleted"], row["vm_state"], row["task_state"]) == (row["id"], "deleted", None)
        assert row["deleted_at"] is not None and row["terminated_at"] is not None
        assert await rows_of(uuid) == [0, 0, 0]
    assert await rows_of(other) == [1, 1, 1]


async def test_update_returning_gives_the_row_after_the_update(db: Database) -> None:
    a = await _instance(db, host="h1")
    async with db.write() as conn:
        row = await instances.update_instance_returning(conn, a, {"task_state": "networking", "node": "n1"},
                                                        expected_task_state=("scheduling",),
                                                        expected_vm_state=("building",), expected_host=("h1",))
        # same shape again: the instance is no longer scheduling, nothing changes and no row comes back
        again = await instances.update_instance_returning(conn, a, {"task_state": "networking", "node": "n2"},
                                                          expected_task_state=("scheduling",),
                                                          expected_vm_state=("building",), expected_host=("h1",))
        # the plain update of the same shape still answers with a bool
        assert await instances.update_instance(conn, a, {"task_state": "spawning", "node": "n3"},
                                               expected_task_state=("networking",),
                                               expected_vm_state=("building",), expected_host=("h1",))
    assert row is not None and again is None
    assert (row["uuid"], row["task_state"], row["node"], row["host"]) == (a, "networking", "n1", "h1")
    assert row == {**await _row(db, a), "task_state": "networking", "node": "n1",
                   "updated_at": row["updated_at"]}
    assert (await _row(db, a))["task_state"] == "spawning"
