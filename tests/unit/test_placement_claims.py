"""Claims against a real SQLite database: capacity holds under concurrency, nothing leaks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from stratus import conf as conf_mod
from stratus import exception
from stratus.db import placement
from stratus.service import open_database


async def _db(tmp_path: Path):  # type: ignore[no-untyped-def]
    return await open_database(conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}}))


async def test_concurrent_claims_never_overcommit(tmp_path: Path) -> None:
    db = await _db(tmp_path)
    async with db.write() as conn:
        rp = await placement.ensure_provider(conn, "11111111-1111-1111-1111-111111111111", "node1", {
            "VCPU": {"total": 4, "allocation_ratio": 2.0}, "MEMORY_MB": {"total": 4096, "reserved": 512}})

    async def one(i: int) -> bool:
        for _ in range(20):
            try:
                async with db.write() as conn:
                    return await placement.claim(conn, rp, f"consumer-{i}", "p", "u", {"VCPU": 1, "MEMORY_MB": 512})
            except exception.ConcurrentUpdateDetected:
                continue
        return False

    results = await asyncio.gather(*(one(i) for i in range(12)))
    # VCPU capacity 8, MEMORY capacity (4096-512)=3584 -> 7 fit by memory
    assert sum(results) == 7
    async with db.read() as conn:
        usage = (await placement.provider_usages(conn, [rp]))[rp]
    assert usage == {"VCPU": 7, "MEMORY_MB": 3584}
    async with db.write() as conn:
        for i in range(12):
            await placement.remove_allocations(conn, f"consumer-{i}")
    async with db.read() as conn:
        assert await placement.provider_usages(conn, [rp]) == {}
    await db.dispose()


async def test_inventory_update_bumps_generation_and_limits(tmp_path: Path) -> None:
    db = await _db(tmp_path)
    async with db.write() as conn:
        rp = await placement.ensure_provider(conn, "22222222-2222-2222-2222-222222222222", "node2",
                                             {"VCPU": {"total": 2, "max_unit": 2}})
        assert not await placement.claim(conn, rp, "c1", "p", "u", {"VCPU": 3})  # above max_unit
        assert not await placement.claim(conn, rp, "c1", "p", "u", {"DISK_GB": 1})  # no such inventory
        assert await placement.claim(conn, rp, "c1", "p", "u", {"VCPU": 2})
        assert not await placement.claim(conn, rp, "c2", "p", "u", {"VCPU": 1})
    await db.dispose()


async def test_a_claim_at_the_current_generation_still_cannot_overcommit(tmp_path: Path) -> None:
    """A scheduler whose picture has the provider's generation but not all its usage (a sync that read the two
    at different moments) is refused at the write: placement checks capacity against what is committed."""
    from sqlalchemy import select

    from stratus.db.models import resource_providers

    db = await _db(tmp_path)
    async with db.write() as conn:
        rp = await placement.ensure_provider(conn, "33333333-3333-3333-3333-333333333333", "node3",
                                             {"VCPU": {"total": 2}})
        assert await placement.claim(conn, rp, "c1", "p", "u", {"VCPU": 2})  # full
        generation = (await conn.execute(select(resource_providers.c.generation)
                                         .where(resource_providers.c.id == rp))).scalar_one()
        assert not await placement.claim_at_generation(conn, rp, generation, "c2", "p", "u", {"VCPU": 1})
    async with db.read() as conn:
        assert (await placement.provider_usages(conn, [rp]))[rp] == {"VCPU": 2}
    await db.dispose()


async def test_a_claim_costs_four_statements_and_one_consumer_row(tmp_path: Path) -> None:
    """The scheduler's claim is its hot path: the compare-and-swap, the provider's room (inventories with their
    usage), the consumer (written only if new) and the allocations; a consumer claiming on a second provider
    keeps its one row."""
    from sqlalchemy import event, func, select

    from stratus.db.models import consumers

    db = await _db(tmp_path)
    async with db.write() as conn:
        rp1 = await placement.ensure_provider(conn, "44444444-4444-4444-4444-444444444444", "node4",
                                              {"VCPU": {"total": 2}, "MEMORY_MB": {"total": 1024}})
        rp2 = await placement.ensure_provider(conn, "55555555-5555-5555-5555-555555555555", "node5",
                                              {"VCPU": {"total": 2}})
    seen: list[str] = []
    assert db.sync_engine is not None
    event.listen(db.sync_engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    async with db.write() as conn:
        assert await placement.claim_at_generation(conn, rp1, 1, "c1", "p", "u", {"VCPU": 1, "MEMORY_MB": 512})
        assert len([s for s in seen if not s.startswith(("SAVEPOINT", "RELEASE"))]) == 4
        assert not await placement.claim_at_generation(conn, rp1, 2, "c2", "p", "u", {"MEMORY_MB": 600})
        assert await placement.claim_at_generation(conn, rp2, 1, "c1", "p", "u", {"VCPU": 2})
        assert (await conn.execute(select(func.count()).select_from(consumers)
                                   .where(consumers.c.uuid == "c1"))).scalar_one() == 1
    async with db.read() as conn:
        assert await placement.provider_usages(conn, [rp1, rp2]) == {rp1: {"VCPU": 1, "MEMORY_MB": 512},
                                                                     rp2: {"VCPU": 2}}
    await db.dispose()


async def test_a_claim_whose_fit_was_checked_at_its_generation_is_not_checked_again(tmp_path: Path) -> None:
    """The scheduler checked the fit against usage it read at the generation it claims at: the compare-and-swap
    proves nothing moved since, so placement's re-check (the provider's room) is left out, one statement less;
    a claim at a generation that moved is refused all the same, writing nothing."""
    from sqlalchemy import event

    db = await _db(tmp_path)
    async with db.write() as conn:
        rp = await placement.ensure_provider(conn, "66666666-6666-6666-6666-666666666666", "node6",
                                             {"VCPU": {"total": 2}})
    seen: list[str] = []
    assert db.sync_engine is not None
    event.listen(db.sync_engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    async with db.write() as conn:
        assert await placement.claim_at_generation(conn, rp, 1, "c1", "p", "u", {"VCPU": 1},
                                                   fit_checked_at_generation=True)
        statements = [s for s in seen if not s.startswith(("SAVEPOINT", "RELEASE"))]
        assert len(statements) == 3 and not any("inventories" in s for s in statements)
        assert not await placement.claim_at_generation(conn, rp, 1, "c2", "p", "u", {"VCPU": 1},
                                                       fit_checked_at_generation=True)
    async with db.read() as conn:
        assert (await placement.provider_usages(conn, [rp]))[rp] == {"VCPU": 1}
    await db.dispose()
