"""A real SQLite database seeded with a simulated fleet, and a real scheduler over it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from stratus import conf as conf_mod
from stratus.db import fleet
from stratus.db.engine import Database
from stratus.scheduler.manager import SchedulerManager
from stratus.service import open_database

Seed = Callable[..., Awaitable[SchedulerManager]]


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[tuple[Any, Database]]:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    db = await open_database(conf)
    try:
        yield conf, db
    finally:
        await db.dispose()


@pytest.fixture
def scheduler(database: tuple[Any, Database]) -> Seed:
    """``await scheduler([SimHost…], **conf overrides by group)`` → a SchedulerManager over that fleet."""
    conf, db = database

    async def make(hosts: list[fleet.SimHost], **overrides: dict[str, Any]) -> SchedulerManager:
        for group, values in overrides.items():
            for key, value in values.items():
                conf.set_override(key, value, group=None if group == "DEFAULT" else group)
        async with db.write() as conn:
            await fleet.seed(conn, hosts)
        return SchedulerManager(conf, db)

    return make


def spec(vcpus: int = 1, ram: int = 512, disk: int = 1, **extra: Any) -> dict[str, Any]:
    flavor = {"vcpus": vcpus, "memory_mb": ram, "root_gb": disk, "ephemeral_gb": 0, "swap": 0,
              "extra_specs": extra.pop("extra_specs", {})}
    return {"project_id": "p", "user_id": "u", "flavor": flavor, "image": extra.pop("image", {}), **extra}
