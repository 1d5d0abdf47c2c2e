"""`stratus db sync`: run the alembic migrations against the configured database."""

from __future__ import annotations

import os
from typing import Any

from alembic import command
from alembic.config import Config

from stratus.db.engine import Database

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")


def alembic_config(connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    cfg.attributes["connection"] = connection
    return cfg


async def sync(db: Database, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``; idempotent, safe to run at every start."""
    await db.run_sync(lambda conn: command.upgrade(alembic_config(conn), revision))
