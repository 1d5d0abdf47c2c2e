"""A compute host in process: a real SQLite database, the fake driver, the in-process transport, no mocks.

Tests play the hypervisor by changing the fake driver's guests directly (a guest that powers itself off, one that
vanished, one nobody knows), then run a sync or a restart and read the database.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from stratus import conf as conf_mod
from stratus import service
from stratus.compute.manager import ComputeManager
from stratus.context import RequestContext
from stratus.db import actions, instances
from stratus.db.engine import Database
from stratus.db.models import instance_actions, instance_actions_events, instance_faults, services
from stratus.db.models import instances as instances_table
from stratus.rpc.local import LocalTransport
from stratus.utils import new_uuid, utcnow
from stratus.virt.fake import FakeDriver

HOST = "h1"


class Schedulers:
    """A scheduler endpoint on the transport that only records what it was told (the fanouts a host sends)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def refresh_hosts(self, context: dict[str, Any]) -> None:
        self.calls.append("refresh_hosts")

    async def update_host_stats(self, context: dict[str, Any], nodename: str, stats: dict[str, Any]) -> None:
        self.calls.append("update_host_stats")


@dataclasses.dataclass
class Host:
    """One compute host under test: its manager (replaced by ``restart``) and its hypervisor (kept)."""

    conf: Any
    db: Database
    transport: LocalTransport
    driver: FakeDriver
    manager: ComputeManager
    schedulers: Schedulers

    async def restart(self) -> ComputeManager:
        """A new compute agent on the same hypervisor, started, with its background actions finished."""
        await self.manager.cleanup_host()
        self.manager = ComputeManager(self.conf, self.db, self.transport, host=HOST, driver=self.driver,
                                      images=None)
        await self.transport.listen("compute", self.manager, server=HOST)
        await self.manager.init_host()
        await self.manager.drain()
        return self.manager

    async def settle(self) -> None:
        """Let background actions and the messages sent so far finish."""
        await self.manager.drain()
        await self.transport.stop()

    async def add(self, vm_state: str = "active", task_state: str | None = None, power_state: int = 1,
                  guest: int | None = 1, host: str | None = HOST, launched: bool = True,
                  **values: Any) -> str:
        """An instance row on ``host`` with a ``create`` action, and (unless ``guest`` is None) its guest on
        this hypervisor in power state ``guest``."""
        uuid = new_uuid()
        now = utcnow()
        row = {"uuid": uuid, "project_id": "p", "user_id": "u", "flavor": {"extra_specs": {}}, "vcpus": 1,
               "memory_mb": 64, "root_gb": 1, "ephemeral_gb": 0, "vm_state": vm_state, "task_state": task_state,
               "power_state": power_state, "config_drive": "", "reservation_id": "r-1", "host": host,
               "node": host, "system_metadata": {}, "security_groups": [], "created_at": now,
               "updated_at": now, "launched_at": now if launched else None, **values}
        async with self.db.write() as conn:
            await conn.execute(instances_table.insert().values(row))
            await actions.action_start(conn, context(), [uuid], "create")
            stored = await instances.get_plain(conn, uuid)
        assert stored is not None
        if guest is not None:
            await self.driver.spawn(self.manager.driver_instance(stored), {}, network_info=[])
            self.driver.guests[uuid].power_state = guest
        return uuid

    async def get(self, uuid: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = await instances.get_plain(conn, uuid)
        assert row is not None
        return row

    async def states(self, uuid: str) -> tuple[str, str | None, int]:
        row = await self.get(uuid)
        return row["vm_state"], row["task_state"], row["power_state"]

    async def actions(self, uuid: str) -> list[tuple[str, str, list[tuple[str, str | None]]]]:
        """(action, user id, [(event, result)…]) oldest first."""
        out = []
        async with self.db.read() as conn:
            acts = (await conn.execute(select(instance_actions).where(instance_actions.c.instance_uuid == uuid)
                                       .order_by(instance_actions.c.id))).mappings().all()
            for a in acts:
                evs = await conn.execute(select(instance_actions_events.c.event, instance_actions_events.c.result)
                                         .where(instance_actions_events.c.action_id == a["id"])
                                         .order_by(instance_actions_events.c.id))
                out.append((a["action"], a["user_id"], [(str(e.event), e.result) for e in evs]))
        return out

    async def faults(self, uuid: str) -> list[str]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(instance_faults.c.message).where(instance_faults.c.instance_uuid == uuid)
                                      .order_by(instance_faults.c.id))
            return [r[0] for r in rows]

    async def service(self) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = (await conn.execute(select(services).where(services.c.host == HOST))).mappings().one()
        return dict(row)


def context(request_id: str | None = None) -> dict[str, Any]:
    ctx = RequestContext(user_id="u", project_id="p")
    if request_id:
        ctx.request_id = request_id
    return ctx.to_dict()


@pytest.fixture
def overrides() -> dict[str, dict[str, Any]]:
    """Configuration for the ``host`` fixture; a test changes it with ``@pytest.mark.parametrize`` or indirectly."""
    return {}


@pytest.fixture
async def host(tmp_path: Path, migrated: Path, overrides: dict[str, dict[str, Any]]) -> AsyncIterator[Host]:
    """Host ``h1``, started (``init_host``) on an empty hypervisor."""
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path), "shutdown_timeout": 0,
                                                **overrides.get("DEFAULT", {})},
                                    **{k: v for k, v in overrides.items() if k != "DEFAULT"}})
    shutil.copy(migrated, tmp_path / "stratus.sqlite")
    db = await service.open_database(conf, sync_schema=False)
    transport = LocalTransport(timeout=5)
    schedulers = Schedulers()
    await transport.listen("scheduler", schedulers)
    driver = FakeDriver(conf, HOST)
    manager = ComputeManager(conf, db, transport, host=HOST, driver=driver, images=None)
    await transport.listen("compute", manager, server=HOST)
    await manager.init_host()
    under_test = Host(conf, db, transport, driver, manager, schedulers)
    try:
        yield under_test
    finally:
        await under_test.manager.cleanup_host()
        await transport.stop()
        await db.dispose()
