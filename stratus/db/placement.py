"""Placement's model: resource providers, inventories, allocations, and atomic claims.

A claim reads the provider's generation and usage, checks capacity, then bumps the generation with a
compare-and-swap; if another claim changed the provider in between, nothing is written and the caller
retries on fresh data. This holds on SQLite (where the write transaction also serialises) and on PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import DateTime, Integer, String, bindparam, delete, exists, func, literal, select, update

from stratus.db.engine import Connection
from stratus.db.models import allocations, consumers, inventories, resource_providers
from stratus.db.prepared import prepared
from stratus.exception import ConcurrentUpdateDetected
from stratus.utils import utcnow

VCPU = "VCPU"
MEMORY_MB = "MEMORY_MB"
DISK_GB = "DISK_GB"


def capacity(inv: dict[str, Any]) -> int:
    """Usable amount of one inventory: (total - reserved) * allocation_ratio, as placement computes it."""
    return int((inv["total"] - inv["reserved"]) * inv["allocation_ratio"])


async def ensure_provider(conn: Connection, uuid: str, name: str, inventory: dict[str, dict[str, Any]]
                          ) -> int:
    """Create the provider if new and make its inventories exactly ``inventory``; returns the provider id."""
    now = utcnow()
    row = (await conn.execute(select(resource_providers.c.id).where(resource_providers.c.uuid == uuid))).first()
    if row is None:
        result = await conn.execute(resource_providers.insert().values(uuid=uuid, name=name, generation=0,
                                                                       created_at=now))
        rp_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        await conn.execute(update(resource_providers).where(resource_providers.c.id == rp_id)
                           .values(root_provider_id=rp_id))
    else:
        rp_id = int(row[0])
    current = {r["resource_class"]: dict(r) for r in (await conn.execute(
        select(inventories).where(inventories.c.resource_provider_id == rp_id))).mappings()}
    changed = False
    for rc, values in inventory.items():
        fields = {"total": values["total"], "reserved": values.get("reserved", 0),
                  "min_unit": values.get("min_unit", 1), "max_unit": values.get("max_unit", values["total"]),
                  "step_size": values.get("step_size", 1),
                  "allocation_ratio": values.get("allocation_ratio", 1.0)}
        if rc not in current:
            await conn.execute(inventories.insert().values(resource_provider_id=rp_id, resource_class=rc,
                                                           created_at=now, **fields))
            changed = True
        elif any(current[rc][k] != v for k, v in fields.items()):
            await conn.execute(update(inventories).where(inventories.c.id == current[rc]["id"])
                               .values(updated_at=now, **fields))
            changed = True
    stale = [current[rc]["id"] for rc in current if rc not in inventory]
    if stale:
        await conn.execute(delete(inventories).where(inventories.c.id.in_(stale)))
        changed = True
    if changed:
        await conn.execute(update(resource_providers).where(resource_providers.c.id == rp_id)
                           .values(generation=resource_providers.c.generation + 1, updated_at=now))
    return rp_id


async def provider_usages(conn: Connection, provider_ids: Iterable[int] | None = None
                          ) -> dict[int, dict[str, int]]:
    """{provider id: {resource class: used}} in one grouped query."""
    query = select(allocations.c.resource_provider_id, allocations.c.resource_class,
                   func.sum(allocations.c.used)).group_by(allocations.c.resource_provider_id,
                                                          allocations.c.resource_class)
    if provider_ids is not None:
        query = query.where(allocations.c.resource_provider_id.in_(list(provider_ids)))
    usage: dict[int, dict[str, int]] = defaultdict(dict)
    for rp_id, rc, used in await conn.execute(query):
        usage[rp_id][rc] = int(used or 0)
    return usage


async def providers_with_inventory(conn: Connection, names: Iterable[str] | None = None
                                   ) -> list[dict[str, Any]]:
    """Every provider with its inventories and usage: three queries whatever the number of providers."""
    query = select(resource_providers)
    if names is not None:
        query = query.where(resource_providers.c.name.in_(list(names)))
    providers = {r["id"]: {**r, "inventories": {}, "usages": {}}
                 for r in (await conn.execute(query)).mappings()}
    if not providers:
        return []
    inv_query = select(inventories)
    if names is not None:
        inv_query = inv_query.where(inventories.c.resource_provider_id.in_(list(providers)))
    for inv in (await conn.execute(inv_query)).mappings():
        rp = providers.get(inv["resource_provider_id"])
        if rp is not None:
            rp["inventories"][inv["resource_class"]] = dict(inv)
    for rp_id, usage in (await provider_usages(conn, None if names is None else list(providers))).items():
        if rp_id in providers:
            providers[rp_id]["usages"] = usage
    return list(providers.values())


def fits(provider: dict[str, Any], resources: dict[str, int]) -> bool:
    """Whether ``resources`` fit the provider's free capacity and unit constraints."""
    for rc, amount in resources.items():
        if amount == 0:
            continue
        inv = provider["inventories"].get(rc)
        if inv is None:
            return False
        if amount < inv["min_unit"] or amount > inv["max_unit"] or amount % inv["step_size"]:
            return False
        if provider["usages"].get(rc, 0) + amount > capacity(inv):
            return False
    return True


async def claim(conn: Connection, provider_id: int, consumer_uuid: str, project_id: str, user_id: str,
                resources: dict[str, int]) -> bool:
    """Allocate ``resources`` on one provider for a consumer, atomically; False if they no longer fit.

    Raises ``ConcurrentUpdateDetected`` when another writer changed the provider between our read and our
    write; the caller retries with fresh data.
    """
    gen_row = (await conn.execute(select(resource_providers.c.generation)
                                  .where(resource_providers.c.id == provider_id))).first()
    if gen_row is None:
        return False
    generation = gen_row[0]
    provider = {"inventories": {r["resource_class"]: dict(r) for r in (await conn.execute(
        select(inventories).where(inventories.c.resource_provider_id == provider_id))).mappings()},
        "usages": (await provider_usages(conn, [provider_id])).get(provider_id, {})}
    if not fits(provider, resources):
        return False
    now = utcnow()
    result = await conn.execute(update(resource_providers)
                                .where(resource_providers.c.id == provider_id,
                                       resource_providers.c.generation == generation)
                                .values(generation=generation + 1, updated_at=now))
    if result.rowcount != 1:
        raise ConcurrentUpdateDetected(provider=provider_id)
    await _ensure_consumer(conn, consumer_uuid, project_id, user_id)
    await conn.execute(allocations.insert(), [
        {"resource_provider_id": provider_id, "consumer_id": consumer_uuid, "resource_class": rc, "used": amount,
         "created_at": now} for rc, amount in resources.items() if amount])
    return True


_CAS = prepared(update(resource_providers)
        .where(resource_providers.c.id == bindparam("provider_id"),
               resource_providers.c.generation == bindparam("generation"))
        .values(generation=bindparam("next_generation"), updated_at=bindparam("now")))
#: a claim's allocations (prepared: one row is one execution; several rows go through executemany)
_NEW_ALLOCATIONS = prepared(allocations.insert())
#: the provider's capacity and committed usage per resource class, in one statement: its inventories with the
#: sum of its allocations of each class (none: 0)
_USED_BY_CLASS = (select(allocations.c.resource_class, func.sum(allocations.c.used).label("used"))
                  .where(allocations.c.resource_provider_id == bindparam("provider_id"))
                  .group_by(allocations.c.resource_class).subquery())
_ROOM = prepared(select(inventories.c.resource_class, inventories.c.total, inventories.c.reserved,
                inventories.c.allocation_ratio, func.coalesce(_USED_BY_CLASS.c.used, 0).label("used"))
         .select_from(inventories.outerjoin(_USED_BY_CLASS,
                                            _USED_BY_CLASS.c.resource_class == inventories.c.resource_class))
         .where(inventories.c.resource_provider_id == bindparam("provider_id")))
#: the consumer's row unless it has one already (a claim retried, a move's second provider, the consumer a move
#: hands its allocations to), in one statement
_NEW_CONSUMER = prepared(consumers.insert().from_select(
    ["uuid", "project_id", "user_id", "consumer_type", "generation", "created_at"],
    select(bindparam("uuid", type_=String), bindparam("project_id", type_=String),
           bindparam("user_id", type_=String), bindparam("consumer_type", type_=String), literal(0, Integer),
           bindparam("now", type_=DateTime))
    .where(~exists().where(consumers.c.uuid == bindparam("uuid")))))


async def _still_fits(conn: Connection, provider_id: int, resources: dict[str, int]) -> bool:
    """Placement's own check at the write: the provider's committed usage plus ``resources`` within (total -
    reserved) * allocation_ratio of each class. Asked with the provider's row locked by the compare-and-swap, so
    no other claim on it commits in between: a caller whose picture was not exact (a sync that read usage and
    generation at different moments) cannot over-commit."""
    room = {rc: ((total - reserved) * ratio, int(used or 0))
            for rc, total, reserved, ratio, used in await conn.execute(_ROOM, {"provider_id": provider_id})}
    return all(rc in room and room[rc][1] + amount <= room[rc][0] for rc, amount in resources.items() if amount)


async def claim_at_generation(conn: Connection, provider_id: int, generation: int, consumer_uuid: str,
                              project_id: str, user_id: str, resources: dict[str, int], *,
                              fit_checked_at_generation: bool = False) -> bool:
    """Allocate on a provider the caller saw at ``generation``; False, writing nothing, if it has moved since.

    This is placement's own contract (a client sends the generation it read); the fit is checked again against
    the committed allocations once the compare-and-swap holds the provider's row, as placement checks capacity
    on every allocation write (statements built once: this is the scheduler's hot path).

    ``fit_checked_at_generation``: the caller checked the fit against inventories and usage it read at
    ``generation`` itself, or after it with the generation read first (the scheduler's picture: see
    stratus/scheduler/host_manager.py). Every write of inventories or allocations bumps the generation, so a
    compare-and-swap that succeeds at ``generation`` proves nothing the check read has changed, and the re-check
    (one SELECT per claim) is skipped. A caller whose usage may be older than its generation leaves it False.
    """
    now = utcnow()
    result = await conn.execute(_CAS, {"provider_id": provider_id, "generation": generation,
                                       "next_generation": generation + 1, "now": now})
    if result.rowcount != 1:
        return False
    if not fit_checked_at_generation and not await _still_fits(conn, provider_id, resources):
        # the caller's picture was behind: the generation moved on (harmless), nothing allocated; the caller
        # re-reads the provider and decides again
        return False
    await _ensure_consumer(conn, consumer_uuid, project_id, user_id)
    await conn.execute(_NEW_ALLOCATIONS, [
        {"resource_provider_id": provider_id, "consumer_id": consumer_uuid, "resource_class": rc, "used": amount,
         "created_at": now} for rc, amount in resources.items() if amount])
    return True


async def _ensure_consumer(conn: Connection, consumer_uuid: str, project_id: str, user_id: str,
                           consumer_type: str = "INSTANCE") -> None:
    await conn.execute(_NEW_CONSUMER, {"uuid": consumer_uuid, "project_id": project_id, "user_id": user_id,
                                       "consumer_type": consumer_type, "now": utcnow()})


#: built once (every delete and every failed build gives its claims back): the allocations deleted in the statement
#: that names their providers (RETURNING), then those providers' generations bumped, then the consumer
_DROP_ALLOCATIONS = prepared(delete(allocations).where(allocations.c.consumer_id == bindparam("b_consumer"))
                     .returning(allocations.c.resource_provider_id))
_BUMP_GENERATIONS = (update(resource_providers)
                     .where(resource_providers.c.id.in_(bindparam("b_rp_ids", expanding=True)))
                     .values(generation=resource_providers.c.generation + 1, updated_at=bindparam("b_now")))
#: the same for one provider (a server's allocations are on one): an equality, which the fast path runs
_BUMP_GENERATION = prepared(update(resource_providers).where(resource_providers.c.id == bindparam("b_rp_id"))
                            .values(generation=resource_providers.c.generation + 1, updated_at=bindparam("b_now")))
_DROP_CONSUMER = prepared(delete(consumers).where(consumers.c.uuid == bindparam("b_consumer")))


async def _bump_generations(conn: Connection, rp_ids: list[int]) -> None:
    if len(rp_ids) == 1:
        await conn.execute(_BUMP_GENERATION, {"b_rp_id": rp_ids[0], "b_now": utcnow()})
    else:
        await conn.execute(_BUMP_GENERATIONS, {"b_rp_ids": rp_ids, "b_now": utcnow()})


async def remove_allocations(conn: Connection, consumer_uuid: str) -> list[int]:
    """Drop every allocation of a consumer; bumps the generation of each provider touched (three statements)."""
    rp_ids = sorted({r[0] for r in await conn.execute(_DROP_ALLOCATIONS, {"b_consumer": consumer_uuid})})
    if rp_ids:
        await _bump_generations(conn, rp_ids)
    await conn.execute(_DROP_CONSUMER, {"b_consumer": consumer_uuid})
    return rp_ids


async def remove_allocations_on(conn: Connection, consumer_uuid: str, provider_ids: list[int]) -> None:
    """Drop a consumer's allocations on some providers only (bumping their generations); the rest stay."""
    if not provider_ids:
        return
    await conn.execute(delete(allocations).where(allocations.c.consumer_id == consumer_uuid,
                                                 allocations.c.resource_provider_id.in_(provider_ids)))
    await conn.execute(update(resource_providers).where(resource_providers.c.id.in_(provider_ids))
                       .values(generation=resource_providers.c.generation + 1, updated_at=utcnow()))


#: built once (every scheduling request asks it)
_HOLDING = (select(allocations.c.consumer_id).distinct()
            .where(allocations.c.consumer_id.in_(bindparam("b_uuids", expanding=True))))
#: the same for one consumer (a boot of one server): an equality, which the fast path runs
_HOLDING_ONE = prepared(select(allocations.c.consumer_id).distinct()
                        .where(allocations.c.consumer_id == bindparam("b_uuid")))


async def consumers_holding(conn: Connection, consumer_uuids: list[str]) -> list[str]:
    """Those of ``consumer_uuids`` that hold any allocation (one statement)."""
    if not consumer_uuids:
        return []
    if len(consumer_uuids) == 1:
        return [r[0] for r in await conn.execute(_HOLDING_ONE, {"b_uuid": consumer_uuids[0]})]
    return [r[0] for r in await conn.execute(_HOLDING, {"b_uuids": consumer_uuids})]


async def allocations_for_consumer(conn: Connection, consumer_uuid: str) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for r in (await conn.execute(select(allocations).where(allocations.c.consumer_id == consumer_uuid))).mappings():
        out[r["resource_provider_id"]][r["resource_class"]] = r["used"]
    return dict(out)


async def move_allocations(conn: Connection, source_consumer: str, target_consumer: str, project_id: str,
                           user_id: str, consumer_type: str = "INSTANCE") -> list[int]:
    """Hand every allocation of ``source_consumer`` to ``target_consumer`` (placement's
    ``POST /allocations`` move, as Nova's ``move_allocations``): a move's source usage goes from the instance to
    its migration record before scheduling, and back on revert. The target must hold nothing; the providers'
    generations move. Returns the providers touched."""
    rp_ids = [r[0] for r in await conn.execute(select(allocations.c.resource_provider_id).distinct()
                                               .where(allocations.c.consumer_id == source_consumer))]
    if not rp_ids:
        return []
    await _ensure_consumer(conn, target_consumer, project_id, user_id, consumer_type)
    await conn.execute(update(allocations).where(allocations.c.consumer_id == source_consumer)
                       .values(consumer_id=target_consumer))
    await _bump_generations(conn, rp_ids)
    await conn.execute(_DROP_CONSUMER, {"b_consumer": source_consumer})
    return rp_ids
