"""Usage reads: the instances active in a window (Nova's ``instance_get_active_by_window_joined``), for the simple
tenant usage API."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from stratus.db.engine import Connection
from stratus.db.models import instances


class MarkerNotFound(Exception):
    pass


async def active_in_window(conn: Connection, begin: datetime.datetime, end: datetime.datetime,
                           project_id: str | None = None, limit: int | None = None, marker: str | None = None
                           ) -> list[dict[str, Any]]:
    """Instances (deleted ones too) launched before ``end`` and not terminated by ``begin``, ordered by project
    and uuid as Nova pages them; after the instance ``marker`` (any, deleted included), at most ``limit``."""
    c = instances.c
    query = select(c.uuid, c.project_id, c.display_name, c.flavor, c.vm_state, c.launched_at, c.terminated_at,
                   c.deleted).where(or_(c.terminated_at.is_(None), c.terminated_at > begin), c.launched_at < end)
    if project_id is not None:
        query = query.where(c.project_id == project_id)
    if marker is not None:
        row = (await conn.execute(select(c.project_id, c.uuid).where(c.uuid == marker))).first()
        if row is None:
            raise MarkerNotFound(marker)
        query = query.where(or_(c.project_id > row.project_id, and_(c.project_id == row.project_id,
                                                                    c.uuid > row.uuid)))
    query = query.order_by(c.project_id, c.uuid)
    if limit is not None:
        query = query.limit(limit)
    return [dict(r) for r in (await conn.execute(query)).mappings()]
