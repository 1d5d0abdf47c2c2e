"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratus import conf as conf_mod
from stratus import service


@pytest.fixture(scope="session")
async def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly migrated database file, made once per session; each test copies it (migrating takes ~0.1 s)."""
    state = tmp_path_factory.mktemp("migrated-db")
    database = await service.open_database(conf_mod.load(overrides={"DEFAULT": {"state_path": str(state)}}))
    await database.dispose()
    return state / "stratus.sqlite"
