"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stratus import conf as conf_mod
from stratus import service
from stratus.db.engine import Database


@pytest.fixture(scope="session")
async def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly migrated database file, made once per session; each test copies it (migrating takes ~0.1 s)."""
    state = tmp_path_factory.mktemp("migrated-db")
    database = await service.open_database(conf_mod.load(overrides={"DEFAULT": {"state_path": str(state)}}))
    await database.dispose()
    return state / "stratus.sqlite"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database of the test's own (its default flavors and all), disposed of after the test; a module
    that needs another (a bare table, seeded rows) defines its own ``db``."""
    database = await service.open_database(conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}}))
    try:
        yield database
    finally:
        await database.dispose()
