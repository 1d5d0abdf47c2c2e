"""`stratus db sync`: run the alembic migrations against the configured database.

Every service runs the migrations at its start, so services started together on an empty database would race to
create alembic's version table and the schema (PostgreSQL refuses the loser with a unique violation on its
catalog, ``pg_type_typname_nsp_index``). On PostgreSQL the upgrade therefore runs under a transaction-scoped
advisory lock: one process migrates, the others wait for its commit and then find the schema at head. SQLite
needs no lock: its write transaction (BEGIN IMMEDIATE) already admits one migrating process at a time.
"""

from __future__ import annotations

import os
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from stratus.db.engine import Database

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")
# The advisory lock key of Stratus' migrations (any 64-bit number other applications on the database do not use):
# the first eight bytes of "stratus!" read as a big-endian integer.
MIGRATION_LOCK_KEY = int.from_bytes(b"stratus!", "big") - (1 << 63)


def alembic_config(connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(conn: Any, revision: str) -> None:
    if conn.dialect.name == "postgresql":
        # held until this transaction (the whole upgrade) commits or rolls back
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    command.upgrade(alembic_config(conn), revision)


async def sync(db: Database, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``; idempotent, safe to run at every start, and by several processes at
    once."""
    await db.run_sync(lambda conn: _upgrade(conn, revision))
