"""``terminate_instance`` on a compute host (Nova's): the guest destroyed, the claim given back, the row soft-deleted
with its metadata, the event recorded; and in how few statements, since a fleet's deletes run one after the other
on SQLite's one writer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select

from stratus.db import actions, instances, placement
from stratus.db.models import consumers, instance_metadata, resource_providers
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
    assert host.manager.node["stats"]["num_instances"] == 0
    # its first transaction: the row, the event, moves under way, the info cache; its last: the allocations
    # (DELETE ... RETURNING, the provider's generation, the consumer), the row, what goes with it (asked in one
    # statement: the metadata), the host's stats (read; the same as before, so not written), the event
    assert seen == ["SELECT", "INSERT", "SELECT", "SELECT",
                    "DELETE", "UPDATE", "DELETE", "UPDATE", "SELECT", "DELETE", "SELECT", "UPDATE"]
