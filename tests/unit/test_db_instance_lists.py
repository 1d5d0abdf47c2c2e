"""The server listings' statements on a real SQLite database (stratus/db/instances.py): one statement per shape of
filters, prepared, its values bound at each execution, so these check that a reused statement answers with this
call's values (project, states, tags, marker) and not the first call's, and that the index reads what it shows."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from stratus.db import info_cache, instances
from stratus.db.engine import Database
from stratus.db.models import instance_tags, request_specs
from stratus.db.models import instances as instances_table
from stratus.db.prepared import plan_of
from stratus.utils import new_uuid, utcnow

_T0 = datetime.datetime(2026, 1, 1, 12, 0, 0)


async def _instance(db: Database, n: int, tags: tuple[str, ...] = (), **values: Any) -> str:
    uuid = new_uuid()
    at = _T0 + datetime.timedelta(minutes=n)
    row = {"uuid": uuid, "display_name": f"s-{n}", "project_id": "p", "user_id": "u", "flavor": {}, "vcpus": 1,
           "memory_mb": 64, "root_gb": 1, "ephemeral_gb": 0, "vm_state": "building", "task_state": "scheduling",
           "power_state": 0, "reservation_id": "r-1", "system_metadata": {}, "security_groups": [],
           "created_at": at, "updated_at": at, **values}
    async with db.write() as conn:
        await conn.execute(instances_table.insert().values(**row))
        for tag in tags:
            await conn.execute(instance_tags.insert().values(instance_uuid=uuid, tag=tag))
    return uuid


async def _names(db: Database, **filters: Any) -> list[str]:
    async with db.read() as conn:
        return [r["display_name"] for r in await instances.list_page(conn, instances.ListFilters(**filters))]


async def test_one_prepared_statement_per_shape_with_this_calls_values(db: Database) -> None:
    for n, (project, state) in enumerate([("p", "building"), ("p", "active"), ("q", "building"),
                                          ("q", "active"), ("q", "active")]):
        await _instance(db, n, project_id=project, vm_state=state)
    before = len(instances._PAGES)
    assert await _names(db, project_id="p", vm_states=["building"], basic=True) == ["s-0"]
    assert await _names(db, project_id="q", vm_states=["active"], basic=True) == ["s-4", "s-3"]
    assert await _names(db, project_id="q", vm_states=["building"], basic=True, limit=5) == ["s-2"]
    assert await _names(db, project_id="q", vm_states=["active"], basic=True, limit=1) == ["s-4"]
    shapes = list(instances._PAGES.values())[before:]
    assert len(shapes) == 1
    assert db.sync_engine is not None
    plan = plan_of(shapes[0])
    assert plan is not None and plan.compiled_for(db.sync_engine.dialect, ()) is not None
    # another shape (two states) is another statement
    assert await _names(db, project_id="q", vm_states=["active", "building"], basic=True) == ["s-4", "s-3", "s-2"]
    assert len(instances._PAGES) == before + 2


async def test_the_index_reads_only_what_it_shows(db: Database) -> None:
    uuid = await _instance(db, 1)
    async with db.read() as conn:
        rows = await instances.list_page(conn, instances.ListFilters(basic=True, sort=[("updated_at", "asc")]))
    assert rows == [{"uuid": uuid, "display_name": "s-1"}]


@pytest.mark.parametrize("sort", [
    [("host", "asc")], [("host", "desc")], [("created_at", "desc")], [("created_at", "asc")],
    [("host", "desc"), ("display_name", "asc")], [("display_name", "asc"), ("created_at", "asc")],
])
async def test_markers_page_through_the_order(db: Database, sort: list[tuple[str, str]]) -> None:
    """Pages of two after each marker (NULL sort values among them) make the whole listing's order."""
    for n in range(9):
        await _instance(db, n, host=None if n % 3 == 0 else f"h{n % 2}")
    async with db.read() as conn:
        whole = [r["uuid"] for r in await instances.list_page(conn, instances.ListFilters(sort=sort, basic=True))]
    seen: list[str] = []
    marker = None
    for _ in range(10):
        async with db.read() as conn:
            page = await instances.list_page(conn, instances.ListFilters(sort=sort, limit=2, marker=marker,
                                                                         basic=True))
        seen += [r["uuid"] for r in page]
        if len(page) < 2:
            break
        marker = page[-1]["uuid"]
    assert len(whole) == 9
    assert seen == whole


async def test_filters_bound_per_call(db: Database) -> None:
    await _instance(db, 0, tags=("a", "b"), locked=True, task_state=None)
    await _instance(db, 1, tags=("a",), locked=False, task_state="spawning")
    await _instance(db, 2, tags=("c",), locked=False, task_state=None, host="h1")
    assert await _names(db, tags=["a"]) == ["s-1", "s-0"]
    assert await _names(db, tags=["c"]) == ["s-2"]
    assert await _names(db, tags_any=["b", "c"]) == ["s-2", "s-0"]
    assert await _names(db, tags_any=["a", "x"]) == ["s-1", "s-0"]
    assert await _names(db, not_tags=["a", "b"]) == ["s-2", "s-1"]
    assert await _names(db, not_tags=["a", "c"]) == ["s-2", "s-1", "s-0"]
    assert await _names(db, not_tags_any=["c"]) == ["s-1", "s-0"]
    assert await _names(db, locked=True) == ["s-0"]
    assert await _names(db, locked=False) == ["s-2", "s-1"]
    assert await _names(db, task_states=[None]) == ["s-2", "s-0"]
    assert await _names(db, task_states=["spawning"]) == ["s-1"]
    assert await _names(db, task_states=[None, "spawning"]) == ["s-2", "s-1", "s-0"]
    assert await _names(db, vm_states=[]) == []
    assert await _names(db, host="h1") == ["s-2"]
    assert await _names(db, name="^s-[01]$") == ["s-1", "s-0"]
    assert await _names(db, name="2") == ["s-2"]
    assert await _names(db, changes_since=_T0 + datetime.timedelta(minutes=1)) == ["s-2", "s-1"]
    assert await _names(db, changes_since=_T0 + datetime.timedelta(minutes=2)) == ["s-2"]
    many = [new_uuid() for _ in range(instances._LIST_BINDS_MAX + 5)]  # too long for a statement of its own
    assert await _names(db, uuids=many) == []


async def test_the_stored_page_and_request_specs(db: Database) -> None:
    first = await _instance(db, 0, tags=("t",))
    second = await _instance(db, 1)
    async with db.write() as conn:
        await instances.set_metadata(conn, first, {"k": "v"}, replace=True)
        await info_cache.create(conn, [first, second])
        await info_cache.save(conn, first, [{"id": "port-1"}])
        await conn.execute(request_specs.insert(), [
            {"instance_uuid": first, "spec": {"availability_zone": "az1", "scheduler_hints": {"group": ["g"]},
                                              "flavor": {"name": "m1"}}, "created_at": utcnow()},
            {"instance_uuid": second, "spec": {"flavor": {"name": "m1"}}, "created_at": utcnow()}])
    async with db.read() as conn:
        page = await instances.list_page_stored(conn, instances.ListFilters())
        specs = await instances.request_specs_of(conn, [first, second, new_uuid()])
    assert page.metadata == {first: (("k", "v"),)}
    assert page.tags == {first: ("t",)}
    assert page.network_info == {first: '[{"id":"port-1"}]', second: "[]"}
    assert [page.instance(i)["uuid"] for i in range(len(page.rows))] == [second, first]
    assert specs == {first: {"availability_zone": "az1", "scheduler_hints": {"group": ["g"]}},
                     second: {"availability_zone": None, "scheduler_hints": None}}
