"""Conductors in process over a real SQLite database, the in-process transport and a real scheduler over a
seeded fleet; compute hosts are endpoints that only record the builds cast to them (no mocks).

Tests write instances as the API does (rows, request specs, a ``create`` action), put their leases where a crash
would have left them, run a recovery pass and read the database."""

from __future__ import annotations

import dataclasses
import datetime
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from stratus import conf as conf_mod
from stratus import service
from stratus.conductor.manager import ConductorManager
from stratus.context import RequestContext
from stratus.db import actions, fleet, instances, placement
from stratus.db import services as services_db
from stratus.db.engine import Database
from stratus.db.models import (
    allocations,
    instance_actions,
    instance_actions_events,
    instance_faults,
    request_specs,
    resource_providers,
    services,
)
from stratus.rpc.local import LocalTransport
from stratus.scheduler.manager import SchedulerManager
from stratus.scheduler.request import resources_from_flavor
from stratus.utils import new_uuid, utcnow

HOSTS = ("h1", "h2")
FLAVOR = {"id": 1, "flavorid": "1", "name": "tiny", "memory_mb": 512, "vcpus": 1, "root_gb": 1,
          "ephemeral_gb": 0, "swap": 0, "rxtx_factor": 1.0, "extra_specs": {}}
RESOURCES = resources_from_flavor(FLAVOR)


class ComputeHost:
    """A compute endpoint that records the builds cast to it."""

    def __init__(self, host: str, builds: Counter[str]) -> None:
        self.host = host
        self.builds = builds

    async def build_and_run_instance(self, context: dict[str, Any], instance_uuid: str, **_: Any) -> None:
        self.builds[instance_uuid] += 1


@dataclasses.dataclass
class Cell:
    conf: Any
    db: Database
    transport: LocalTransport
    builds: Counter[str]  #: builds cast to any compute host, by instance
    conductors: dict[str, int]  #: services.id of the conductors "c1", "c2"
    requests: dict[str, str] = dataclasses.field(default_factory=dict)  #: request id of each instance's boot

    def conductor(self, name: str = "c1") -> ConductorManager:
        """A conductor process (a new one each call: a restart) registered as ``name``."""
        return ConductorManager(self.conf, self.db, self.transport, service_id=self.conductors[name])

    async def settle(self) -> None:
        """Let every cast sent so far run."""
        await self.transport.stop()

    async def boot(self, count: int = 1, age: float = 0.0, **spec_extra: Any) -> list[str]:
        """Instances of one boot request as the API writes them, created ``age`` seconds ago; nobody's lease."""
        now = utcnow() - datetime.timedelta(seconds=age)
        reservation = "r-" + new_uuid()[:8]
        rows, specs = [], []
        for index in range(count):
            uuid = new_uuid()
            rows.append({"uuid": uuid, "project_id": "p", "user_id": "u", "display_name": f"vm-{index}",
                         "flavor": FLAVOR, "vcpus": 1, "memory_mb": 512, "root_gb": 1, "ephemeral_gb": 0,
                         "vm_state": "building", "task_state": "scheduling", "power_state": 0,
                         "reservation_id": reservation, "launch_index": index, "system_metadata": {},
                         "security_groups": [], "created_at": now, "updated_at": now})
            specs.append({"instance_uuid": uuid, "project_id": "p", "user_id": "u", "flavor": FLAVOR, "image": {},
                          "availability_zone": None, "scheduler_hints": {}, "force_hosts": [],
                          "force_nodes": [], "resources": RESOURCES, "num_instances": count, **spec_extra})
        ctx = RequestContext(user_id="u", project_id="p").to_dict()
        self.requests.update((r["uuid"], ctx["request_id"]) for r in rows)
        async with self.db.write() as conn:
            await instances.create(conn, rows, {}, specs, ctx)
            await conn.execute(update(request_specs).where(request_specs.c.instance_uuid.in_(
                [r["uuid"] for r in rows])).values(created_at=now))
        return [r["uuid"] for r in rows]

    async def lease(self, uuid: str, conductor: str | None, generation: int = 1, age: float = 0.0) -> None:
        """Put the build's lease where a conductor (None: nobody) left it ``age`` seconds ago, with the scheduling
        event it started (and never finished) if it is some conductor's."""
        async with self.db.write() as conn:
            if conductor is not None:
                await actions.event_start(conn, {"request_id": self.requests[uuid]}, uuid,
                                          "conductor_schedule_and_build_instances", host=f"{conductor}-host")
            await conn.execute(update(request_specs).where(request_specs.c.instance_uuid == uuid).values(
                conductor_id=None if conductor is None else self.conductors[conductor], generation=generation,
                updated_at=utcnow() - datetime.timedelta(seconds=age)))

    async def silence(self, conductor: str, seconds: float) -> None:
        """The conductor's last heartbeat ``seconds`` ago."""
        async with self.db.write() as conn:
            await conn.execute(update(services).where(services.c.id == self.conductors[conductor]).values(
                last_seen_up=utcnow() - datetime.timedelta(seconds=seconds)))

    async def claim(self, uuid: str, host: str = "h1") -> None:
        """An allocation for the instance on ``host``, as the scheduler's claim writes it."""
        async with self.db.write() as conn:
            provider = (await conn.execute(select(resource_providers.c.id).where(
                resource_providers.c.name == host))).scalar_one()
            assert await placement.claim(conn, provider, uuid, "p", "u", RESOURCES)

    async def instance(self, uuid: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = await instances.get_plain(conn, uuid)
        assert row is not None
        return row

    async def spec_lease(self, uuid: str) -> tuple[int | None, int]:
        async with self.db.read() as conn:
            row = (await conn.execute(select(request_specs.c.conductor_id, request_specs.c.generation).where(
                request_specs.c.instance_uuid == uuid))).one()
        return row[0], row[1]

    async def allocations(self, uuid: str) -> list[tuple[str, str, int]]:
        """(provider name, resource class, used) of the instance's allocations."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(resource_providers.c.name, allocations.c.resource_class, allocations.c.used)
                .join(resource_providers, resource_providers.c.id == allocations.c.resource_provider_id)
                .where(allocations.c.consumer_id == uuid).order_by(allocations.c.resource_class))
            return [tuple(r) for r in rows]  # type: ignore[misc]

    async def faults(self, uuid: str) -> list[str]:
        async with self.db.read() as conn:
            return [r[0] for r in await conn.execute(select(instance_faults.c.message).where(
                instance_faults.c.instance_uuid == uuid).order_by(instance_faults.c.id))]

    async def events(self, uuid: str) -> list[tuple[str, str | None]]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(instance_actions_events.c.event, instance_actions_events.c.result)
                .join(instance_actions, instance_actions.c.id == instance_actions_events.c.action_id)
                .where(instance_actions.c.instance_uuid == uuid).order_by(instance_actions_events.c.id))
            return [(r[0], r[1]) for r in rows]


def placed_exactly_once(allocs: list[tuple[str, str, int]], host: str) -> bool:
    return sorted(allocs) == sorted((host, rc, used) for rc, used in RESOURCES.items())


@pytest.fixture
def overrides() -> dict[str, dict[str, Any]]:
    return {}


@pytest.fixture
async def cell(tmp_path: Path, migrated: Path, overrides: dict[str, dict[str, Any]]) -> AsyncIterator[Cell]:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path), **overrides.get("DEFAULT", {})},
                                    **{k: v for k, v in overrides.items() if k != "DEFAULT"}})
    shutil.copy(migrated, tmp_path / "stratus.sqlite")
    db = await service.open_database(conf, sync_schema=False)
    transport = LocalTransport(timeout=5)
    builds: Counter[str] = Counter()
    async with db.write() as conn:
        await fleet.seed(conn, [fleet.SimHost(h) for h in HOSTS])
        conductors = {name: (await services_db.register(conn, f"{name}-host", "nova-conductor", "conductor"))["id"]
                      for name in ("c1", "c2")}
    await transport.listen("scheduler", SchedulerManager(conf, db))
    for host in HOSTS:
        await transport.listen("compute", ComputeHost(host, builds), server=host)
    try:
        yield Cell(conf, db, transport, builds, conductors)
    finally:
        await transport.stop()
        await db.dispose()
