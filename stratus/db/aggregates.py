"""Host aggregate queries: the aggregate, its hosts and its metadata (``availability_zone`` is one key of it).

Aggregates are hard-deleted (their hosts and metadata go with them). Reads of many aggregates cost three
statements whatever their number.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from stratus.db.engine import Connection
from stratus.db.models import aggregate_hosts, aggregate_metadata, aggregates, instances, services
from stratus.utils import new_uuid, utcnow

AZ_KEY = "availability_zone"
COMPUTE = "nova-compute"


class AggregateNameExists(Exception):
    """Another aggregate already has this name."""


class HostExists(Exception):
    """The host is already in the aggregate."""


async def _attach(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``hosts`` (sorted) and ``metadata`` to aggregate rows, in two statements."""
    if not rows:
        return rows
    ids = [r["id"] for r in rows]
    hosts: dict[int, list[str]] = defaultdict(list)
    for agg_id, host in await conn.execute(select(aggregate_hosts.c.aggregate_id, aggregate_hosts.c.host)
                                           .where(aggregate_hosts.c.aggregate_id.in_(ids))
                                           .order_by(aggregate_hosts.c.aggregate_id, aggregate_hosts.c.host)):
        hosts[agg_id].append(host)
    meta: dict[int, dict[str, str]] = defaultdict(dict)
    for agg_id, key, value in await conn.execute(
            select(aggregate_metadata.c.aggregate_id, aggregate_metadata.c.key, aggregate_metadata.c.value)
            .where(aggregate_metadata.c.aggregate_id.in_(ids))):
        meta[agg_id][key] = value
    for r in rows:
        r["hosts"] = hosts.get(r["id"], [])
        r["metadata"] = meta.get(r["id"], {})
    return rows


async def list_all(conn: Connection) -> list[dict[str, Any]]:
    """Every aggregate by id: id, uuid, name, created_at, updated_at, hosts, metadata."""
    rows = [dict(r) for r in (await conn.execute(select(aggregates).order_by(aggregates.c.id))).mappings()]
    return await _attach(conn, rows)


async def get(conn: Connection, aggregate_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(select(aggregates).where(aggregates.c.id == aggregate_id))).mappings().first()
    return None if row is None else (await _attach(conn, [dict(row)]))[0]


async def _name_taken(conn: Connection, name: str, other_than: int | None = None) -> bool:
    query = select(aggregates.c.id).where(aggregates.c.name == name)
    if other_than is not None:
        query = query.where(aggregates.c.id != other_than)
    return (await conn.execute(query)).first() is not None


async def create(conn: Connection, name: str, availability_zone: str | None = None) -> dict[str, Any]:
    """Insert an aggregate (and its zone); raises ``AggregateNameExists``."""
    if await _name_taken(conn, name):
        raise AggregateNameExists(name)
    values = {"uuid": new_uuid(), "name": name, "created_at": utcnow(), "updated_at": None}
    try:  # a concurrent creator on a server database; the caller's transaction rolls back
        agg_id = (await conn.execute(insert(aggregates).values(**values).returning(aggregates.c.id))).scalar_one()
    except IntegrityError:
        raise AggregateNameExists(name) from None
    metadata = {AZ_KEY: availability_zone} if availability_zone else {}
    if metadata:
        await conn.execute(aggregate_metadata.insert(), [{"aggregate_id": agg_id, "key": AZ_KEY,
                                                          "value": availability_zone}])
    return {"id": agg_id, **values, "hosts": [], "metadata": metadata}


async def update_name(conn: Connection, aggregate_id: int, name: str) -> None:
    """Rename; raises ``AggregateNameExists`` when another aggregate has the name."""
    if await _name_taken(conn, name, other_than=aggregate_id):
        raise AggregateNameExists(name)
    try:
        await conn.execute(update(aggregates).where(aggregates.c.id == aggregate_id).values(name=name))
    except IntegrityError:
        raise AggregateNameExists(name) from None


async def update_metadata(conn: Connection, aggregate_id: int, changes: dict[str, str | None]) -> None:
    """Set each key; a None value deletes the key (absent keys are fine). Stamps ``updated_at``."""
    if changes:
        await conn.execute(delete(aggregate_metadata).where(aggregate_metadata.c.aggregate_id == aggregate_id,
                                                            aggregate_metadata.c.key.in_(list(changes))))
        rows = [{"aggregate_id": aggregate_id, "key": k, "value": v} for k, v in changes.items() if v is not None]
        if rows:
            await conn.execute(aggregate_metadata.insert(), rows)
    await touch(conn, aggregate_id)


async def touch(conn: Connection, aggregate_id: int) -> None:
    await conn.execute(update(aggregates).where(aggregates.c.id == aggregate_id).values(updated_at=utcnow()))


async def delete_aggregate(conn: Connection, aggregate_id: int) -> bool:
    """Hard delete with hosts and metadata; False if there was none."""
    await conn.execute(delete(aggregate_hosts).where(aggregate_hosts.c.aggregate_id == aggregate_id))
    await conn.execute(delete(aggregate_metadata).where(aggregate_metadata.c.aggregate_id == aggregate_id))
    result = await conn.execute(delete(aggregates).where(aggregates.c.id == aggregate_id))
    return cast("CursorResult[Any]", result).rowcount > 0


async def add_host(conn: Connection, aggregate_id: int, host: str) -> None:
    """Raises ``HostExists`` when the host is already a member."""
    found = (await conn.execute(select(aggregate_hosts.c.host).where(aggregate_hosts.c.aggregate_id == aggregate_id,
                                                                     aggregate_hosts.c.host == host))).first()
    if found is not None:
        raise HostExists(host)
    try:
        await conn.execute(aggregate_hosts.insert().values(aggregate_id=aggregate_id, host=host))
    except IntegrityError:
        raise HostExists(host) from None


async def remove_host(conn: Connection, aggregate_id: int, host: str) -> bool:
    result = await conn.execute(delete(aggregate_hosts).where(aggregate_hosts.c.aggregate_id == aggregate_id,
                                                              aggregate_hosts.c.host == host))
    return cast("CursorResult[Any]", result).rowcount > 0


async def zones_of_hosts(conn: Connection, hosts: list[str]) -> list[tuple[int, str]]:
    """(aggregate id, zone) of every zone aggregate holding one of ``hosts``, by aggregate id."""
    if not hosts:
        return []
    query = (select(aggregate_metadata.c.aggregate_id, aggregate_metadata.c.value)
             .where(aggregate_metadata.c.key == AZ_KEY,
                    aggregate_metadata.c.aggregate_id.in_(select(aggregate_hosts.c.aggregate_id)
                                                          .where(aggregate_hosts.c.host.in_(hosts))))
             .order_by(aggregate_metadata.c.aggregate_id))
    return [(int(a), str(z)) for a, z in await conn.execute(query)]


async def compute_host_exists(conn: Connection, host: str) -> bool:
    """Whether a compute service runs on ``host`` (compared exactly, whatever the database's collation)."""
    rows = await conn.execute(select(services.c.host).where(services.c.binary == COMPUTE, services.c.host == host))
    return any(found == host for (found,) in rows)


async def count_instances_on_hosts(conn: Connection, hosts: list[str]) -> int:
    """Live (not deleted) instances on these hosts, of every project."""
    if not hosts:
        return 0
    return int((await conn.execute(select(func.count()).select_from(instances)
                                   .where(instances.c.host.in_(hosts), instances.c.deleted == 0))).scalar() or 0)
