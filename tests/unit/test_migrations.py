"""The alembic migrations build exactly the schema in db/models.py, on SQLite (and PostgreSQL in integration)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from stratus import conf as conf_mod
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
