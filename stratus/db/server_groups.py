"""Server group queries: the group (one policy, its rules) and its members, the instances booted into it.

A member is an instance uuid; a server leaves its groups when it is deleted (``instances.soft_delete``), and
reads show live instances only. ``get`` (within the caller's project) and ``add_members`` are what the boot path
uses.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import CursorResult

from stratus.db.engine import Connection
from stratus.db.models import instance_group_members, instance_groups, instances
from stratus.utils import new_uuid, utcnow


def _live_members(group_ids: Any) -> Any:
    """(group_id, instance_uuid) of these groups, without instances already deleted."""
    m = instance_group_members.c
    deleted = select(instances.c.uuid).where(instances.c.uuid == m.instance_uuid, instances.c.deleted != 0)
    return (select(m.group_id, m.instance_uuid).where(m.group_id.in_(group_ids), ~deleted.exists())
            .order_by(m.group_id, m.instance_uuid))


def _to_dict(row: Any, members: list[str]) -> dict[str, Any]:
    return {"id": row.id, "uuid": row.uuid, "name": row.name, "project_id": row.project_id,
            "user_id": row.user_id, "policy": row.policy, "rules": dict(row.rules or {}), "members": members,
            "created_at": row.created_at}


async def _with_members(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    members: dict[int, list[str]] = defaultdict(list)
    if rows:
        for group_id, uuid in await conn.execute(_live_members([r.id for r in rows])):
            members[group_id].append(uuid)
    return [_to_dict(r, members.get(r.id, [])) for r in rows]


async def get(conn: Connection, uuid: str, project_id: str | None) -> dict[str, Any] | None:
    """The group: id, uuid, name, project_id, user_id, policy, rules, members (live instance uuids); None when
    there is none, or it belongs to another project than ``project_id`` (None: any project, for admins), as Nova's
    group queries are scoped to the caller's project."""
    query = select(instance_groups).where(instance_groups.c.uuid == uuid)
    if project_id is not None:
        query = query.where(instance_groups.c.project_id == project_id)
    row = (await conn.execute(query)).first()
    return None if row is None else (await _with_members(conn, [row]))[0]


async def list_groups(conn: Connection, project_id: str | None, offset: int = 0,
                      limit: int | None = None) -> list[dict[str, Any]]:
    """The project's groups (every project's with None) by creation, sliced as Nova's ``limited``."""
    query = select(instance_groups).order_by(instance_groups.c.id).offset(offset)
    if project_id is not None:
        query = query.where(instance_groups.c.project_id == project_id)
    if limit is not None:
        query = query.limit(limit)
    return await _with_members(conn, list(await conn.execute(query)))


async def count_by_project(conn: Connection, project_id: str) -> int:
    """Groups the project has."""
    return int((await conn.execute(select(func.count()).select_from(instance_groups)
                                   .where(instance_groups.c.project_id == project_id))).scalar() or 0)


async def count_members(conn: Connection, group_id: int, user_id: str) -> int:
    """Live members of the group owned by ``user_id`` (Nova's server_group_members count); callers checking the
    quota hold ``quotas.lock_group`` first."""
    m = instance_group_members.c
    query = (select(func.count()).select_from(instance_group_members)
             .join(instances, instances.c.uuid == m.instance_uuid)
             .where(m.group_id == group_id, instances.c.user_id == user_id, instances.c.deleted == 0))
    return int((await conn.execute(query)).scalar() or 0)


async def create(conn: Connection, *, name: str, project_id: str, user_id: str, policy: str,
                 rules: dict[str, Any] | None = None) -> dict[str, Any]:
    values = {"uuid": new_uuid(), "name": name, "project_id": project_id, "user_id": user_id, "policy": policy,
              "rules": rules or {}, "created_at": utcnow(), "updated_at": None}
    group_id = (await conn.execute(insert(instance_groups).values(**values)
                                   .returning(instance_groups.c.id))).scalar_one()
    return {"id": group_id, **values, "members": []}


async def add_members(conn: Connection, group_id: int, instance_uuids: list[str]) -> None:
    """Record instances as members (those already members are skipped)."""
    if not instance_uuids:
        return
    m = instance_group_members.c
    have = set((await conn.execute(select(m.instance_uuid).where(m.group_id == group_id,
                                                                 m.instance_uuid.in_(instance_uuids)))).scalars())
    new = [u for u in dict.fromkeys(instance_uuids) if u not in have]
    if new:
        await conn.execute(instance_group_members.insert(), [{"group_id": group_id, "instance_uuid": u} for u in new])


async def remove_instance(conn: Connection, instance_uuid: str) -> None:
    """Take a deleted instance out of every group."""
    await conn.execute(delete(instance_group_members).where(instance_group_members.c.instance_uuid == instance_uuid))


async def delete_group(conn: Connection, group_id: int) -> bool:
    await conn.execute(delete(instance_group_members).where(instance_group_members.c.group_id == group_id))
    result = await conn.execute(delete(instance_groups).where(instance_groups.c.id == group_id))
    return cast("CursorResult[Any]", result).rowcount > 0


async def groups_of(conn: Connection, instance_uuid: str) -> list[str]:
    """The uuids of the server groups the instance is a member of (Nova allows one)."""
    m, g = instance_group_members.c, instance_groups.c
    rows = await conn.execute(select(g.uuid).join(instance_group_members, m.group_id == g.id)
                              .where(m.instance_uuid == instance_uuid).order_by(g.uuid))
    return [row[0] for row in rows]
