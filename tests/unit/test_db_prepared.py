"""Prepared statements (stratus/db/prepared.py): the fast path gives what SQLAlchemy's path gives (rows, keys,
mappings, rowcount, primary keys, what is stored), inside group commit's units and savepoints, and the cases it
does not do exactly go to SQLAlchemy."""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, event, exc, func, select, update

from stratus.api import servers
from stratus.compute import resource_tracker
from stratus.db import (
    actions,
    builds,
    flavors,
    images,
    info_cache,
    instances,
    migration_records,
    network,
    placement,
    quotas,
)
from stratus.db.engine import Database
from stratus.db.models import (
    allocations,
    compute_nodes,
    consumers,
    flavor_extra_specs,
    image_locations,
    image_properties,
    instance_actions,
    instance_actions_events,
    inventories,
    metadata,
    networks,
    ports,
    quota_classes,
    request_specs,
    resource_providers,
    services,
)
from stratus.db.models import flavors as flavor_table
from stratus.db.models import images as image_table
from stratus.db.models import instances as instance_table
from stratus.db.prepared import PreparedResult, plan_of, prepared

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901)
UUID = "11111111-2222-3333-4444-555555555555"
OTHER = "66666666-7777-8888-9999-000000000000"
CONTEXT = {"request_id": "req-1", "user_id": "u1", "project_id": "p1"}


def _instance(uuid: str, **values: Any) -> dict[str, Any]:
    return {"uuid": uuid, "project_id": "p1", "user_id": "u1", "display_name": "vm", "flavor": {"flavorid": "42",
            "extra_specs": {"a": "b"}}, "vcpus": 1, "memory_mb": 64, "root_gb": 1, "vm_state": "building",
            "task_state": "scheduling", "reservation_id": "r-1", "locked": True, "system_metadata": {"k": "v"},
            "trusted_certs": None, "security_groups": [], "launched_at": None, "host": None, **values}


async def _seed(database: Database) -> None:
    async with database.write() as conn:
        sa = conn._conn  # type: ignore[attr-defined]
        sa.execute(instance_table.insert(), [_instance(UUID, created_at=NOW, updated_at=NOW),
                                             _instance(OTHER, created_at=NOW, updated_at=NOW, locked=False,
                                                       trusted_certs=["c1"], task_state=None)])
        sa.execute(request_specs.insert(), [{"instance_uuid": u, "spec": {"x": [1, 2]}, "created_at": NOW}
                                            for u in (UUID, OTHER)])
        sa.execute(instance_actions.insert(), {"action": "create", "instance_uuid": UUID, "request_id": "req-1",
                                               "user_id": "u1", "project_id": "p1", "start_time": NOW,
                                               "created_at": NOW})
        flavor_id = sa.execute(flavor_table.insert().values(
            flavorid="42", name="m1", memory_mb=64, vcpus=1, root_gb=1, created_at=NOW)).inserted_primary_key[0]
        sa.execute(flavor_extra_specs.insert(), [{"flavor_id": flavor_id, "key": k, "value": "v"} for k in "ab"])
        sa.execute(image_table.insert().values(id="img-1", name="i", status="active", visibility="public",
                                               disk_format="raw", container_format="bare", created_at=NOW,
                                               updated_at=NOW))
        sa.execute(image_properties.insert(), {"image_id": "img-1", "name": "hw", "value": "x"})
        sa.execute(image_locations.insert().values(image_id="img-1", url="file:///x", metadata={"m": 1},
                                                   created_at=NOW, updated_at=NOW))
        rp = sa.execute(resource_providers.insert().values(uuid=UUID, name="h1", generation=3,
                                                           created_at=NOW)).inserted_primary_key[0]
        sa.execute(inventories.insert(), [{"resource_provider_id": rp, "resource_class": rc, "total": 8,
                                           "max_unit": 8, "created_at": NOW} for rc in ("VCPU", "MEMORY_MB")])
        sa.execute(consumers.insert().values(uuid=OTHER, project_id="p1", user_id="u1", created_at=NOW))
        sa.execute(allocations.insert(), [{"resource_provider_id": rp, "consumer_id": OTHER, "resource_class": rc,
                                           "used": 2, "created_at": NOW} for rc in ("VCPU", "MEMORY_MB")])
        sa.execute(quota_classes.insert().values(class_name="default", resource="cores", hard_limit=20,
                                                 created_at=NOW))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'prepared.sqlite'}")
    await database.run_sync(metadata.create_all)
    await _seed(database)
    yield database
    await database.dispose()


_TABLES = (instance_table, request_specs, instance_actions, instance_actions_events, resource_providers,
           consumers, allocations, inventories)


def _stored(sa: Any) -> list[list[tuple[Any, ...]]]:
    return [[tuple(r) for r in sa.execute(select(t).order_by(*t.primary_key))] for t in _TABLES]


def _rows(result: Any) -> Any:
    rows = result.all()
    return ([tuple(r) for r in rows], [r._fields for r in rows], [dict(r._mapping) for r in rows],
            list(result.keys()))


async def _both(db: Database, statement: Any, params: Any, read: Callable[[Any], Any] = _rows) -> Any:
    """``read`` of the result and what is stored after it, through the fast path and then (its work rolled back
    to a savepoint) through SQLAlchemy's ``Connection.execute``; asserts they are equal."""
    out = []
    async with db.write() as conn:
        sa = conn._conn  # type: ignore[attr-defined]
        for fast in (True, False):
            savepoint = sa.begin_nested()
            if fast:
                result = await conn.execute(statement, params)
                assert isinstance(result, PreparedResult)
            else:
                result = sa.execute(statement, params)
                assert not isinstance(result, PreparedResult)
            out.append((read(result), _stored(sa)))
            savepoint.rollback()
    assert out[0] == out[1]
    return out[0][0]


async def test_select_of_every_column_type(db: Database) -> None:
    """JSON (a dict, a list, NULL with none_as_null), DateTime, Boolean, NULL strings, integers."""
    (rows, _fields, mappings, keys) = await _both(db, instances._PLAIN, {"b_uuid": OTHER})
    assert mappings[0]["flavor"] == {"flavorid": "42", "extra_specs": {"a": "b"}}
    assert mappings[0]["created_at"] == NOW and mappings[0]["locked"] is False
    assert mappings[0]["trusted_certs"] == ["c1"] and mappings[0]["task_state"] is None
    assert keys[:2] == ["id", "uuid"]
    rows = (await _both(db, instances._PLAIN, {"b_uuid": UUID}))[0]
    assert rows[0][keys.index("trusted_certs")] is None and rows[0][keys.index("locked")] is True


async def test_select_with_joins_labels_and_unions(db: Database) -> None:
    rows = (await _both(db, flavors._FLAVOR, {"b_flavorid": "42"}))[2]
    assert sorted(r["spec_key"] for r in rows) == ["a", "b"]
    await _both(db, flavors._FLAVOR_SHARED, {"b_flavorid": "42", "b_project": "p1"})
    await _both(db, quotas._BOOT_LIMIT_ROWS, {"b_project": "p1", "b_user": "u1"})
    rows = (await _both(db, images._EXTRAS_ONE, {"b_id": "img-1"}))[0]
    assert {r[0] for r in rows} == {0, 2} and any(r[4] == {"m": 1} for r in rows)
    await _both(db, placement._ROOM, {"provider_id": 1})
    await _both(db, instances._HELD, {"b_uuid": UUID})
    await _both(db, migration_records._IN_PROGRESS, {"b_uuid": UUID})
    await _both(db, builds._HOLDER, {"b_uuid": UUID})


async def test_result_methods(db: Database) -> None:
    statement = prepared(select(instance_table.c.uuid, instance_table.c.locked).order_by(instance_table.c.uuid))
    one = prepared(select(instance_table.c.uuid).where(instance_table.c.uuid == bindparam("b_uuid")))
    for read in (lambda r: r.scalars().all(), lambda r: r.scalars().first(), lambda r: r.scalar(),
                 lambda r: [dict(m) for m in r.mappings()], lambda r: dict(r.mappings().first()),
                 lambda r: [tuple(row) for row in r], lambda r: r.first() == (OTHER, False),
                 lambda r: r.first().uuid, lambda r: r.first()._mapping[instance_table.c.uuid],
                 lambda r: (r.fetchone(), r.fetchall())):
        await _both(db, statement, None, read)
    for read in (lambda r: r.one(), lambda r: r.scalar_one(), lambda r: r.scalar_one_or_none(),
                 lambda r: r.one_or_none(), lambda r: r.mappings().one()["uuid"], lambda r: r.scalars().one()):
        await _both(db, one, {"b_uuid": UUID}, read)
    for read in (lambda r: r.first(), lambda r: r.scalar(), lambda r: r.one_or_none(),
                 lambda r: r.scalar_one_or_none(), lambda r: r.all()):
        assert await _both(db, one, {"b_uuid": "nope"}, read) in (None, [])
    for statement_, params, method in ((one, {"b_uuid": "nope"}, "one"), (statement, None, "one"),
                                       (one, {"b_uuid": "nope"}, "scalar_one")):
        async with db.read() as conn:
            with pytest.raises((exc.NoResultFound, exc.MultipleResultsFound)) as fast:
                getattr(await conn.execute(statement_, params), method)()
            with pytest.raises((exc.NoResultFound, exc.MultipleResultsFound)) as slow:
                getattr(conn._conn.execute(statement_, params), method)()  # type: ignore[attr-defined]
            assert type(fast.value) is type(slow.value)


async def test_updates_and_deletes_with_rowcount_and_returning(db: Database) -> None:
    await _both(db, instances._SOFT_DELETE, {"b_uuid": UUID, "b_now": NOW}, lambda r: r.rowcount)
    await _both(db, instances._SOFT_DELETE, {"b_uuid": "nope", "b_now": NOW}, lambda r: r.rowcount)
    swap = instances._build_update(("task_state", "updated_at"), ("scheduling",), ("building",), None)
    await _both(db, prepared(swap), {"b_uuid": UUID, "v_task_state": None, "v_updated_at": NOW},
                lambda r: r.rowcount)
    returning = prepared(swap.returning(*instance_table.c))
    rows = (await _both(db, returning, {"b_uuid": UUID, "v_task_state": "spawning", "v_updated_at": NOW}))[2]
    assert rows[0]["task_state"] == "spawning" and rows[0]["flavor"]["flavorid"] == "42"
    assert (await _both(db, placement._DROP_ALLOCATIONS, {"b_consumer": OTHER}))[0] == [(1,), (1,)]
    await _both(db, placement._CAS, {"provider_id": 1, "generation": 3, "next_generation": 4, "now": NOW},
                lambda r: r.rowcount)
    await _both(db, placement._CAS, {"provider_id": 1, "generation": 9, "next_generation": 10, "now": NOW},
                lambda r: r.rowcount)
    await _both(db, placement._BUMP_GENERATION, {"b_rp_id": 1, "b_now": NOW}, lambda r: r.rowcount)
    await _both(db, builds._TAKE_ONE, {"b_uuid": UUID, "b_conductor": 7, "b_now": NOW})
    await _both(db, info_cache._SAVE, {"b_uuid": UUID, "b_network_info": [{"id": "p"}], "b_now": NOW},
                lambda r: r.rowcount)


async def test_inserts_with_defaults_and_primary_keys(db: Database) -> None:
    new = "99999999-2222-3333-4444-555555555555"
    await _both(db, instances._INSERT, [_instance(new, created_at=NOW, updated_at=NOW)],
                lambda r: tuple(r.inserted_primary_key))
    action = {"action": "delete", "instance_uuid": UUID, "request_id": "req-2", "user_id": "u1",
              "project_id": "p1", "start_time": NOW, "created_at": NOW}
    assert (await _both(db, actions._ACTION_START, action, lambda r: tuple(r.inserted_primary_key))) == (2,)
    await _both(db, actions._EVENT_START, {"b_uuid": UUID, "b_request_id": "req-1", "b_event": "e", "b_host": None,
                                           "b_start_time": NOW}, lambda r: r.rowcount)
    # consumer_type and generation: the columns' scalar defaults, which the plan applies itself
    await _both(db, placement._NEW_CONSUMER, {"uuid": new, "project_id": "p1", "user_id": "u1",
                                              "consumer_type": "INSTANCE", "now": NOW}, lambda r: r.rowcount)
    await _both(db, placement._NEW_ALLOCATIONS, [{"resource_provider_id": 1, "consumer_id": OTHER,
                                                  "resource_class": "DISK_GB", "used": 1, "created_at": NOW}],
                lambda r: tuple(r.inserted_primary_key))
    rows = [{"resource_provider_id": 1, "consumer_id": new, "resource_class": rc, "used": 1, "created_at": NOW}
            for rc in ("VCPU", "MEMORY_MB", "DISK_GB")]
    assert await _both(db, placement._NEW_ALLOCATIONS, rows, lambda r: r.rowcount) == 3  # executemany
    await _both(db, prepared(consumers.insert()), {"uuid": new, "project_id": "p1", "user_id": "u1",
                                                   "created_at": NOW}, lambda r: tuple(r.inserted_primary_key))


async def test_driver_errors_are_sqlalchemys(db: Database) -> None:
    duplicate = {"instance_uuid": UUID, "spec": {}, "created_at": NOW}
    for fast in (True, False):
        with pytest.raises(exc.IntegrityError) as raised:
            async with db.write() as conn:
                if fast:
                    await conn.execute(instances._INSERT_SPEC, [duplicate])
                else:
                    conn._conn.execute(instances._INSERT_SPEC, [duplicate])  # type: ignore[attr-defined]
        assert isinstance(raised.value.orig, sqlite3.IntegrityError)


async def test_a_failed_unit_rolls_back_what_the_fast_path_wrote(db: Database) -> None:
    async def unit(uuid: str, fail: bool) -> None:
        async with db.write() as conn:
            assert isinstance(await conn.execute(instances._SOFT_DELETE, {"b_uuid": uuid, "b_now": NOW}),
                              PreparedResult)
            if fail:
                raise ValueError("the unit failed after its statement")

    results = await asyncio.gather(unit(UUID, False), unit(OTHER, True), return_exceptions=True)
    assert results[0] is None and isinstance(results[1], ValueError)
    async with db.read() as conn:
        assert (await conn.execute(instances._PLAIN, {"b_uuid": UUID})).mappings().one()["vm_state"] == "deleted"
        assert (await conn.execute(instances._PLAIN, {"b_uuid": OTHER})).mappings().one()["vm_state"] == "building"


async def test_the_fast_path_does_not_reach_sqlalchemys_execution(db: Database) -> None:
    """A prepared statement's execution neither compiles through the engine's cache nor runs its execution:
    SQLAlchemy's path would add the statement to the compiled cache."""
    assert db.sync_engine is not None
    cache = db.sync_engine._compiled_cache
    assert cache is not None
    statement = prepared(select(instance_table.c.uuid).where(instance_table.c.display_name == bindparam("b_n")))
    before = len(cache)
    async with db.read() as conn:
        for _ in range(3):
            assert (await conn.execute(statement, {"b_n": "vm"})).scalars().all() == [UUID, OTHER]
    assert len(cache) == before
    async with db.read() as conn:
        conn._conn.execute(statement, {"b_n": "vm"})  # type: ignore[attr-defined]
    assert len(cache) == before + 1


async def test_the_boots_and_deletes_other_statements_on_the_fast_path(db: Database) -> None:
    """The statements a boot or a delete runs besides the instance's own: the quota counts, the host's stats
    (its count labelled), the compute service of a delete's host, a port look-up of the Networking service;
    each gives what SQLAlchemy's path gives."""
    async with db.write() as conn:
        sa = conn._conn  # type: ignore[attr-defined]
        sa.execute(update(instance_table).values(host="h1"))
        sa.execute(services.insert().values(uuid=OTHER, host="h1", binary="nova-compute", topic="compute",
                                            created_at=NOW))
        sa.execute(compute_nodes.insert().values(host="h1", uuid=UUID, hypervisor_hostname="h1", hypervisor_type="fake",
                                                 vcpus=8, memory_mb=64, local_gb=1, cpu_allocation_ratio=1,
                                                 ram_allocation_ratio=1, disk_allocation_ratio=1, created_at=NOW))
        sa.execute(networks.insert().values(id="net-1", project_id="p1", status="ACTIVE", mtu=1450,
                                            network_type="geneve", created_at=NOW))
        sa.execute(ports.insert().values(id="port-1", network_id="net-1", project_id="p1", mac_address="m",
                                         status="ACTIVE", device_id=UUID, created_at=NOW))
    assert (await _both(db, quotas._COUNTS, {"b_project": "p1", "b_user": "u1"}))[0] == [(2, 2, 128, 0, 2, 2, 128, 0)]
    assert sorted((await _both(db, resource_tracker._HOST_STATES, {"b_host": "h1"}))[0], key=str) == [
        ("building", "scheduling", 1), ("building", None, 1)]
    stats = {"num_instances": 2, "io_workload": 2, "failed_builds": 0}
    await _both(db, resource_tracker._STATS, {"b_id": 1, "b_stats": stats, "b_running": 2, "b_workload": 2,
                                               "b_now": NOW}, read=lambda result: result.rowcount)
    assert (await _both(db, servers._COMPUTE_SERVICE, {"b_host": "h1"}))[2][0]["binary"] == "nova-compute"
    statement, params = network._where(ports, "find", {"device_id": [UUID]})
    assert (await _both(db, statement, params))[2][0]["id"] == "port-1"


async def _via_sqlalchemy(db: Database, statement: Any, params: Any) -> bool:
    async with db.write() as conn:
        return not isinstance(await conn.execute(statement, params), PreparedResult)


async def test_what_falls_back(db: Database) -> None:
    expanding = prepared(select(instance_table.c.uuid)
                         .where(instance_table.c.uuid.in_(bindparam("b_uuids", expanding=True))))
    assert await _via_sqlalchemy(db, expanding, {"b_uuids": [UUID]})
    literal_in = prepared(select(instance_table.c.uuid).where(instance_table.c.vm_state.in_(["active", "error"])))
    assert await _via_sqlalchemy(db, literal_in, None)
    # anonymous labels (count_1, coalesce_1), which SQLAlchemy matches to the cursor's columns by its own rules
    counted = prepared(select(instance_table.c.vm_state, func.count()).group_by(instance_table.c.vm_state))
    assert await _via_sqlalchemy(db, counted, None)
    # a callable default (system_metadata's default=dict) the plan cannot apply exactly
    row = _instance("77777777-2222-3333-4444-555555555555", created_at=NOW, updated_at=NOW)
    del row["system_metadata"]
    assert await _via_sqlalchemy(db, instances._INSERT, [row])
    # executemany whose rows differ in their keys: SQLAlchemy's path, which refuses it
    actions_ = [{"action": "x", "instance_uuid": UUID, "request_id": f"r{i}", "user_id": "u", "project_id": "p",
                 "start_time": NOW, "created_at": NOW} for i in range(2)]
    del actions_[1]["user_id"]
    with pytest.raises(exc.StatementError, match="parameter group 1"):
        await _via_sqlalchemy(db, actions._ACTION_START, actions_)
    # a required bind left out: SQLAlchemy raises its own error
    with pytest.raises(exc.StatementError):
        await _via_sqlalchemy(db, instances._PLAIN, {})
    # execution options: the statement's, or the connection's
    assert await _via_sqlalchemy(db, prepared(select(instance_table.c.uuid).execution_options(yield_per=1)), None)
    async with db.read() as conn:
        conn._conn.execution_options(logging_token="x")  # type: ignore[attr-defined]
        assert not isinstance(await conn.execute(instances._PLAIN, {"b_uuid": UUID}), PreparedResult)
    # not prepared at all
    assert await _via_sqlalchemy(db, update(instance_table).values(progress=1), None)
    assert plan_of(expanding) is not None and plan_of(select(instance_table)) is None


async def test_statement_listeners_see_every_statement(db: Database) -> None:
    """While a ``before_cursor_execute`` listener is registered, prepared statements take SQLAlchemy's path, so
    the listener (the tests that count statements) sees each one; removed, the fast path is back."""
    assert db.sync_engine is not None
    seen: list[str] = []

    def listener(*args: Any) -> None:
        seen.append(args[2])

    event.listen(db.sync_engine, "before_cursor_execute", listener)
    assert await _via_sqlalchemy(db, instances._PLAIN, {"b_uuid": UUID})
    assert seen and seen[-1].startswith("SELECT instances.id")
    event.remove(db.sync_engine, "before_cursor_execute", listener)
    assert not await _via_sqlalchemy(db, instances._PLAIN, {"b_uuid": UUID})
    # a connection's own listener, and the dialect's handle_error
    async with db.read() as conn:
        sa = conn._conn  # type: ignore[attr-defined]
        event.listen(sa, "after_cursor_execute", listener)
        assert not isinstance(await conn.execute(instances._PLAIN, {"b_uuid": UUID}), PreparedResult)
    event.listen(db.sync_engine, "handle_error", _ignore)
    assert await _via_sqlalchemy(db, instances._PLAIN, {"b_uuid": UUID})
    event.remove(db.sync_engine, "handle_error", _ignore)
    assert len(seen) == 2


async def test_query_functions_on_the_fast_path(db: Database) -> None:
    """The converted query functions give the same on a database whose listeners force SQLAlchemy's path."""
    async def run() -> Any:
        async with db.read() as conn:
            return (await instances.get_plain(conn, UUID), await flavors.get(conn, "42"),
                    await images.extras_of(conn, ["img-1"]), await info_cache.get(conn, UUID),
                    await placement.consumers_holding(conn, [OTHER]), await builds.held(conn, UUID, 1))

    fast = await run()
    assert db.sync_engine is not None
    event.listen(db.sync_engine, "before_cursor_execute", _ignore)
    try:
        assert await run() == fast
    finally:
        event.remove(db.sync_engine, "before_cursor_execute", _ignore)
    assert fast[0]["uuid"] == UUID and fast[4] == [OTHER]


def _ignore(*_args: Any) -> None:
    pass


def test_an_sqlalchemy_whose_rows_differ_turns_the_fast_path_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path builds SQLAlchemy's ``Row``s from private parts; should a release change them, nothing is
    prepared (everything runs on SQLAlchemy's path) rather than every prepared statement failing."""
    from stratus.db import prepared as module

    assert module._rows_work() and module.ROWS_WORK

    def changed(*_args: Any) -> Any:
        raise TypeError("Row() takes other arguments now")

    monkeypatch.setattr(module, "Row", changed)
    assert not module._rows_work()
    monkeypatch.setattr(module, "ROWS_WORK", False)
    statement = select(instance_table.c.uuid).where(instance_table.c.uuid == bindparam("u"))
    assert prepared(statement) is statement and plan_of(statement) is None


def test_a_compiler_whose_internals_moved_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """An AttributeError (or KeyError, TypeError) while reading the compiled statement leaves it to SQLAlchemy."""
    from stratus.db import prepared as module

    def moved(*_args: Any) -> Any:
        raise AttributeError("'SQLiteCompiler' object has no attribute '_bind_processors'")

    monkeypatch.setattr(module, "_Compiled", moved)
    statement = select(instance_table.c.uuid).where(instance_table.c.uuid == bindparam("u"))
    assert module._compile(statement, sqlite3_dialect(), None) is None


def sqlite3_dialect() -> Any:
    from sqlalchemy.dialects.sqlite import pysqlite

    return pysqlite.SQLiteDialect_pysqlite()
