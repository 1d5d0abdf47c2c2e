"""Fixtures for the identity tests: a migrated SQLite database, the identity services over it, bootstrapped."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from oslo_config import cfg

from stratus import conf as conf_mod
from stratus import service
from stratus.db.engine import Database
from stratus.identity import bootstrap, catalog
from stratus.identity.common import IdentityServices
from stratus.identity.passwords import Hasher
from stratus.identity.tokens import TokenStore

ADMIN_PASSWORD = "admin-secret"


@pytest.fixture
def conf(tmp_path: Path) -> cfg.ConfigOpts:
    return conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "identity": {"password_hash_rounds": 4, "clouds_yaml": str(tmp_path / "c.yaml"),
                                                 "listen_port": 15000}})


@pytest.fixture
async def db(tmp_path: Path, migrated: Path, conf: cfg.ConfigOpts) -> AsyncIterator[Database]:
    shutil.copy(migrated, tmp_path / "stratus.sqlite")
    database = await service.open_database(conf, sync_schema=False)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def services(conf: cfg.ConfigOpts, db: Database) -> IdentityServices:
    return IdentityServices(conf=conf, db=db, tokens=TokenStore(db, 3600, 5.0), hasher=Hasher(4),
                            catalog=catalog.build(conf))


@pytest.fixture
async def identity(services: IdentityServices) -> IdentityServices:
    """The services after the bootstrap (default domain, admin ⊇ manager ⊇ member ⊇ reader, service, admin project
    and user)."""
    await bootstrap.bootstrap(services, ADMIN_PASSWORD)
    return services
