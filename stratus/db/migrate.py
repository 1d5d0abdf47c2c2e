"""`stratus db sync`: run the alembic migrations against the configured database.

Every service runs the migrations at its start, so services started together on an empty database would race to
create alembic's version table and the schema (PostgreSQL refuses the loser with a unique violation on its
catalog, ``pg_type_typname_nsp_index``). On PostgreSQL the upgrade therefore runs under a transaction-scoped
advisory lock: one process migrates, the others wait for its commit and then find the schema at head. SQLite
needs no lock: its write transaction (BEGIN IMMEDIATE) already admits one migrating process at a time.

Most starts find the schema already at head. That is checked without alembic (its version table against the
revisions the migration scripts declare), so a process only imports alembic (and mako, which alembic imports for
its script templates: some 11 MiB of a process's memory together) when there is something to upgrade.
"""

from __future__ import annotations

import ast
import functools
import os
from typing import Any

from sqlalchemy import inspect, text

from stratus.db.engine import Database

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")
VERSIONS_DIR = os.path.join(MIGRATIONS_DIR, "versions")
# The advisory lock key of Stratus' migrations (any 64-bit number other applications on the database do not use):
# the first eight bytes of "stratus!" read as a big-endian integer.
MIGRATION_LOCK_KEY = int.from_bytes(b"stratus!", "big") - (1 << 63)


def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    cfg.attributes["connection"] = connection
    return cfg


def _declared(path: str) -> tuple[str, tuple[str, ...]]:
    """A migration script's ``revision`` and its ``down_revision`` (none, one, or several for a merge)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    values: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            values[node.target.id] = node.value
    revision = ast.literal_eval(values["revision"])
    down = ast.literal_eval(values["down_revision"]) if "down_revision" in values else None
    return str(revision), tuple(down) if isinstance(down, (tuple, list)) else (() if down is None else (down,))


@functools.cache
def head_revisions() -> frozenset[str]:
    """The heads of the migration scripts (alembic's ``heads``): the revisions no other one revises."""
    declared = [_declared(os.path.join(VERSIONS_DIR, name)) for name in sorted(os.listdir(VERSIONS_DIR))
                if name.endswith(".py") and not name.startswith("_")]
    revised = {down for _, downs in declared for down in downs}
    return frozenset(revision for revision, _ in declared if revision not in revised)


def current_revisions(conn: Any) -> frozenset[str]:
    """The revisions alembic's version table records (none on an empty database)."""
    if not inspect(conn).has_table("alembic_version"):
        return frozenset()
    return frozenset(str(row[0]) for row in conn.execute(text("SELECT version_num FROM alembic_version")))


def _upgrade(conn: Any, revision: str) -> None:
    if revision == "head" and current_revisions(conn) == head_revisions():
        return  # at head already: nothing for alembic to do
    from alembic import command

    if conn.dialect.name == "postgresql":
        # held until this transaction (the whole upgrade) commits or rolls back
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    command.upgrade(alembic_config(conn), revision)


async def sync(db: Database, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``; idempotent, safe to run at every start, and by several processes at
    once."""
    await db.run_sync(lambda conn: _upgrade(conn, revision))
