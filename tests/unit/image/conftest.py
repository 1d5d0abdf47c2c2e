"""Fixtures for the image store tests: a migrated SQLite database and a data directory in a tmp dir."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from stratus import conf as conf_mod
from stratus import service
from stratus.db.engine import Database
from stratus.identity.auth import NoAuth2
from stratus.image.api import create_app
from stratus.image.embedded import Caller, ImageStore

ADMIN = Caller("admin", is_admin=True)
ALICE = Caller("alice")
BOB = Caller("bob")


@pytest.fixture
async def db(tmp_path: Path, migrated: Path) -> AsyncIterator[Database]:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    shutil.copy(migrated, tmp_path / "stratus.sqlite")
    database = await service.open_database(conf, sync_schema=False)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def store(db: Database, tmp_path: Path) -> ImageStore:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    return ImageStore(conf, db)


@pytest.fixture
async def api(store: ImageStore) -> AsyncIterator[httpx.AsyncClient]:
    """The image API in process, as user alice of project alice."""
    transport = httpx.ASGITransport(app=create_app(store, NoAuth2()))
    async with httpx.AsyncClient(transport=transport, base_url="http://images.test",
                                 headers={"X-Auth-Token": "alice:alice"}) as client:
        yield client


def data_files(store: ImageStore) -> list[str]:
    """What is in the data directory (it may not exist before the first upload)."""
    root = Path(store.datadir)
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
