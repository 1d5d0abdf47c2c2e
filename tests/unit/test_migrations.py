"""The alembic migrations build exactly the schema in db/models.py, on SQLite (and PostgreSQL in integration)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from stratus import conf as conf_mod
from stratus.db import migrate
from stratus.db.models import metadata
from stratus.service import open_database


async def test_migrations_match_models(tmp_path: Path) -> None:
    db = await open_database(conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}}))
    await db.dispose()
    engine = create_engine(f"sqlite:///{tmp_path / 'stratus.sqlite'}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


async def test_db_sync_is_idempotent(tmp_path: Path) -> None:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    for _ in range(2):
        db = await open_database(conf)
        await db.dispose()


def test_heads_read_without_alembic_are_alembics() -> None:
    """The start-up's check of the schema reads the scripts' revisions itself; alembic's heads must be the same."""
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert migrate.head_revisions() == frozenset(heads)


async def test_an_old_schema_is_upgraded_at_start(tmp_path: Path) -> None:
    """A database an older release left (alembic at the first revision) is brought to head by the next start."""
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    db = await open_database(conf, sync_schema=False)
    await migrate.sync(db, "0001")
    assert await db.run_sync(migrate.current_revisions) == {"0001"}
    await db.dispose()
    db = await open_database(conf)
    assert await db.run_sync(migrate.current_revisions) == migrate.head_revisions()
    await db.dispose()
    engine = create_engine(f"sqlite:///{tmp_path / 'stratus.sqlite'}")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()


async def test_host_stats_reads_the_host_index(tmp_path: Path) -> None:
    """Every build and delete recounts its host's instances: that must be an index search, not a table scan."""
    from stratus.compute.resource_tracker import _HOST_STATES

    db = await open_database(conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}}))
    await db.dispose()
    engine = create_engine(f"sqlite:///{tmp_path / 'stratus.sqlite'}")
    sql = str(_HOST_STATES.compile(engine))
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, ("compute-1", 0))
        plan = " ".join(str(row[-1]) for row in rows)
    engine.dispose()
    assert "USING INDEX ix_instances_host_deleted" in plan, plan
