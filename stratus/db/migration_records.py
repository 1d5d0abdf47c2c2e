"""Nova's migration records: one row per move of an instance (resize, cold migration, live migration,
evacuation), its status moving from ``pre-migrating`` to ``confirmed``, ``reverted``, ``completed`` or ``error``.

The record is also the consumer that holds the instance's usage on the source host while the instance's own
allocation is on the destination (placement's model; db/placement.py ``move_allocations``). Status changes are
compare-and-swaps on the status read, so of two requests that race on one migration (a confirm and a revert, a
periodic auto-confirm and a user's revert) only one proceeds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, update

from stratus.db.engine import Connection
from stratus.db.models import migrations
from stratus.db.prepared import prepared
from stratus.utils import new_uuid, utcnow

RESIZE = "resize"
MIGRATION = "migration"
LIVE_MIGRATION = "live-migration"
EVACUATION = "evacuation"

#: statuses of a move that is over; any other is in progress (Nova's ``migration_get_in_progress_by_*``)
DONE = ("confirmed", "reverted", "error", "failed", "completed", "cancelled", "done")


async def create(conn: Connection, values: dict[str, Any]) -> dict[str, Any]:
    """A new record (``uuid`` made here); returns it as stored."""
    now = utcnow()
    row = {"uuid": new_uuid(), "hidden": False, "cross_cell_move": False, "deleted": 0, "created_at": now,
           "updated_at": now, **values}
    result = await conn.execute(migrations.insert().values(**row))
    return {**row, "id": int(result.inserted_primary_key[0])}  # type: ignore[index]


async def get(conn: Connection, migration_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(select(migrations).where(migrations.c.id == migration_id,
                                                       migrations.c.deleted == 0))).mappings().first()
    return None if row is None else dict(row)


async def latest_for_instance(conn: Connection, instance_uuid: str, statuses: tuple[str, ...] | None = None,
                              migration_type: tuple[str, ...] | None = None) -> dict[str, Any] | None:
    """The instance's newest record (in one of ``statuses``, of one of the types), or None."""
    c = migrations.c
    query = select(migrations).where(c.instance_uuid == instance_uuid, c.deleted == 0)
    if statuses is not None:
        query = query.where(c.status.in_(statuses))
    if migration_type is not None:
        query = query.where(c.migration_type.in_(migration_type))
    row = (await conn.execute(query.order_by(c.id.desc()).limit(1))).mappings().first()
    return None if row is None else dict(row)


#: built once (every delete asks it); the statuses as a conjunction of inequalities (the column is NOT NULL, so
#: the same as NOT IN), which binds no expanding list and so runs on the fast path (stratus/db/prepared.py)
_IN_PROGRESS = prepared(select(migrations).where(migrations.c.instance_uuid == bindparam("b_uuid"),
                                                 migrations.c.deleted == 0,
                                                 *(migrations.c.status != status for status in DONE))
                        .order_by(migrations.c.id))


async def in_progress_for_instance(conn: Connection, instance_uuid: str) -> list[dict[str, Any]]:
    rows = await conn.execute(_IN_PROGRESS, {"b_uuid": instance_uuid})
    return [dict(r) for r in rows.mappings()]


async def update_migration(conn: Connection, migration_id: int, values: dict[str, Any],
                           expected_status: tuple[str, ...] | None = None) -> bool:
    """Apply ``values`` if the record is (still) in one of ``expected_status``; False means it moved on."""
    query = update(migrations).where(migrations.c.id == migration_id)
    if expected_status is not None:
        query = query.where(migrations.c.status.in_(expected_status))
    result = await conn.execute(query.values(updated_at=utcnow(), **values))
    return result.rowcount == 1


async def finished_before(conn: Connection, dest_compute: str, before: Any) -> list[dict[str, Any]]:
    """Resizes and cold migrations to ``dest_compute`` waiting for a confirm since before ``before`` (Nova's
    ``migration_get_unconfirmed_by_dest_compute``)."""
    c = migrations.c
    rows = await conn.execute(select(migrations).where(
        c.status == "finished", c.dest_compute == dest_compute, c.updated_at < before, c.deleted == 0,
        c.migration_type.in_((RESIZE, MIGRATION))).order_by(c.id))
    return [dict(r) for r in rows.mappings()]


class MarkerNotFound(Exception):
    """A page's marker names no migration."""


async def list_filtered(conn: Connection, filters: dict[str, Any], *, newest_first: bool = False,
                        limit: int | None = None, marker: str | None = None) -> list[dict[str, Any]]:
    """Nova's ``migration_get_all_by_filters``: ``status``, ``host`` (source or destination), ``source_compute``,
    ``migration_type``, ``instance_uuid``, ``hidden``, ``changes-since`` / ``changes-before`` (updated at or
    after / before), ``user_id``, ``project_id``; from 2.59 newest first (created_at, id) and paged after the
    migration whose uuid is ``marker``."""
    c = migrations.c
    query = select(migrations).where(c.deleted == 0)
    for key, column in (("status", c.status), ("source_compute", c.source_compute),
                        ("migration_type", c.migration_type), ("instance_uuid", c.instance_uuid),
                        ("user_id", c.user_id), ("project_id", c.project_id)):
        if filters.get(key) is not None:
            query = query.where(column == filters[key])
    if filters.get("host") is not None:
        query = query.where((c.source_compute == filters["host"]) | (c.dest_compute == filters["host"]))
    if filters.get("hidden") is not None:
        query = query.where(c.hidden == bool(filters["hidden"]))
    if filters.get("changes-since") is not None:
        query = query.where(c.updated_at >= filters["changes-since"])
    if filters.get("changes-before") is not None:
        query = query.where(c.updated_at <= filters["changes-before"])
    if newest_first:
        if marker is not None:
            row = (await conn.execute(select(c.created_at, c.id).where(c.uuid == marker))).first()
            if row is None:
                raise MarkerNotFound(marker)
            query = query.where((c.created_at < row.created_at)
                                | ((c.created_at == row.created_at) & (c.id < row.id)))
        query = query.order_by(c.created_at.desc(), c.id.desc())
    else:
        query = query.order_by(c.id)
    if limit is not None:
        query = query.limit(limit)
    return [dict(r) for r in (await conn.execute(query)).mappings()]
