"""``terminate_instance`` on a compute host (Nova's): the guest destroyed, the claim given back, the row soft-deleted
with its metadata, the event recorded; and in how few statements, since a fleet's deletes run one after the other
on SQLite's one writer."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event, select

from stratus.db import actions, instances, placement
from stratus.db.models import compute_nodes, consumers, instance_metadata, resource_providers
from tests.unit.compute.conftest import Host, context

RESOURCES = {"VCPU": 1, "MEMORY_MB": 64, "DISK_GB": 1}


class Statements:
    """The SQL statements the host's database runs (SAVEPOINTs and BEGINs go to the driver directly)."""

    def __init__(self, host: Host) -> None:
        self.seen: list[str] = []
        assert host.db.sync_engine is not None
        event.listen(host.db.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(statement.split(None, 1)[0])


async def _generation(host: Host) -> int:
    async with host.db.read() as conn:
        return int((await conn.execute(select(resource_providers.c.generation).where(
            resource_providers.c.id == host.manager.node["provider_id"]))).scalar_one())


async def test_terminate_gives_everything_back_in_few_statements(host: Host) -> None:
    uuid = await host.add(task_state="deleting")
    ctx = context("req-delete")
    async with host.db.write() as conn:
        assert await placement.claim(conn, host.manager.node["provider_id"], uuid, "p", "u", RESOURCES)
        await instances.set_metadata(conn, uuid, {"k": "v"}, replace=True)
        await actions.action_start(conn, ctx, [uuid], "delete")
    generation = await _generation(host)

    statements = Statements(host)
    await host.manager.terminate_instance(ctx, uuid)
    seen = list(statements.seen)
    await host.manager.drain()
    stats_unit = statements.seen[len(seen):]

    row = await host.get(uuid)
    assert row["deleted"] == row["id"] and (row["vm_state"], row["task_state"]) == ("deleted", None)
    assert row["terminated_at"] is not None and uuid not in host.driver.guests
    assert (await host.actions(uuid))[-1] == ("delete", "u", [("compute_terminate_instance", "Success")])
    async with host.db.read() as conn:
        assert await placement.allocations_for_consumer(conn, uuid) == {}
        assert (await conn.execute(select(consumers).where(consumers.c.uuid == uuid))).first() is None
        assert (await conn.execute(select(instance_metadata).where(instance_metadata.c.instance_uuid == uuid))
                ).first() is None
    assert await _generation(host) == generation + 1  # the provider's usage changed
    # its first transaction: the row, the event, moves under way, the info cache; its last: the allocations
    # (DELETE ... RETURNING, the provider's generation, the consumer), the row, what goes with it (asked in one
    # statement: the metadata), the event; the host's stats come after, in a unit of their own (read; the same as
    # before, so not written)
    assert seen == ["SELECT", "INSERT", "SELECT", "SELECT",
                    "DELETE", "UPDATE", "DELETE", "UPDATE", "SELECT", "DELETE", "UPDATE"]
    assert stats_unit == ["SELECT"]
    assert host.manager.node["stats"]["num_instances"] == 0


async def test_deletes_that_end_together_write_the_host_stats_once(host: Host) -> None:
    """The stats after a delete are written in a unit of work of their own that the deletes ending together share:
    one count of the host's instances and one write for all of them, which count none of them."""
    uuids = [await host.add(task_state="deleting") for _ in range(4)]
    async with host.db.write() as conn:
        await host.manager.report_stats(conn)
    assert host.manager.node["stats"]["num_instances"] == 4
    texts: list[str] = []
    assert host.db.sync_engine is not None
    event.listen(host.db.sync_engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: texts.append(" ".join(statement.split())))

    await asyncio.gather(*(host.manager.terminate_instance(context(f"req-{i}"), uuid)
                           for i, uuid in enumerate(uuids)))
    await host.manager.drain()

    counts = [t for t in texts if t.startswith("SELECT instances.vm_state, instances.task_state, count(*)")]
    writes = [t for t in texts if t.startswith("UPDATE compute_nodes SET")]
    assert (len(counts), len(writes)) == (1, 1)
    assert host.manager.node["stats"] == {"num_instances": 0, "io_workload": 0, "failed_builds": 0}
    async with host.db.read() as conn:
        running, stats = (await conn.execute(select(compute_nodes.c.running_vms, compute_nodes.c.stats).where(
            compute_nodes.c.id == host.manager.node["id"]))).one()
    assert running == 0 and stats["num_instances"] == 0
