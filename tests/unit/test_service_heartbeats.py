"""A service's heartbeats do not wait for its periodic work: a recovery pass that takes longer than
``service_down_time`` must not make a live conductor (or compute host) look down to the others, who would then
take its builds over."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from sqlalchemy import select

from stratus import conf as conf_mod
from stratus import service
from stratus.db import services as services_db
from stratus.db.models import services


class SlowConductor:
    """A conductor whose periodic pass never ends within the test."""

    def __init__(self) -> None:
        self.passes = 0

    async def periodic_tasks(self, now: float | None = None) -> list[Any]:
        self.passes += 1
        await asyncio.sleep(3600)
        return []


async def test_heartbeats_go_on_while_a_periodic_pass_is_long(tmp_path: Path) -> None:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path), "report_interval": 1}})
    db = await service.open_database(conf)
    try:
        async with db.write() as conn:
            row = await services_db.register(conn, "c1", "nova-conductor", "conductor")
        runner = service.Services(conf, {"conductor"}, None)
        runner.db, runner.service_ids, runner.conductor = db, [row["id"]], SlowConductor()  # type: ignore[assignment]
        tasks = [asyncio.create_task(runner._heartbeats()), asyncio.create_task(runner._periodic())]
        await asyncio.sleep(3.5)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with db.read() as conn:
            count = (await conn.execute(select(services.c.report_count).where(services.c.id == row["id"]))).scalar()
        assert runner.conductor.passes == 1  # type: ignore[attr-defined]
        assert count is not None and count >= 2, count
    finally:
        await db.dispose()
