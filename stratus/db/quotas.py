"""Quota limits and usage, counted from the records themselves as Nova does since Pike (no reservations).

A hard limit comes from, first to last: a user-level override (``quotas`` row with that ``user_id``), a
project-level override (``quotas`` row with ``user_id == ""``), the ``default`` quota class, ``[quota]`` in the
configuration. ``-1`` means unlimited. Usage is computed in one query whatever the number of instances.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg
from sqlalchemy import and_, func, or_, select

from stratus.db.engine import Connection
from stratus.db.models import instance_groups, instances, key_pairs, quota_classes, quotas

UNLIMITED = -1

# Quota resource -> the [quota] option holding its default (Nova's names on both sides).
CONF_OPTION = {
    "instances": "instances",
    "cores": "cores",
    "ram": "ram",
    "metadata_items": "metadata_items",
    "injected_files": "injected_files",
    "injected_file_content_bytes": "injected_file_content_bytes",
    "injected_file_path_bytes": "injected_file_path_length",
    "key_pairs": "key_pairs",
    "server_groups": "server_groups",
    "server_group_members": "server_group_members",
}

# nova-network's quotas: Nova still reports them (as unlimited) below 2.36 to keep responses stable.
NETWORK_RESOURCES = ("fixed_ips", "floating_ips", "security_groups", "security_group_rules")

# Soft-deleted servers can be restored, so Nova does not charge them against the quota.
_SOFT_DELETED = "soft-delete"


async def limits(conn: Connection, conf: cfg.ConfigOpts, project_id: str,
                 user_id: str | None = None) -> dict[str, int]:
    """Hard limits of every quota resource for the project (and the user, when given)."""
    result: dict[str, int] = {name: int(getattr(conf.quota, option)) for name, option in CONF_OPTION.items()}
    result.update(dict.fromkeys(NETWORK_RESOURCES, UNLIMITED))
    class_rows = await conn.execute(select(quota_classes.c.resource, quota_classes.c.hard_limit)
                                    .where(quota_classes.c.class_name == "default"))
    for row in class_rows:
        if row.resource in result:
            result[row.resource] = int(row.hard_limit)
    owners = [quotas.c.user_id == ""] + ([quotas.c.user_id == user_id] if user_id else [])
    rows = (await conn.execute(select(quotas.c.user_id, quotas.c.resource, quotas.c.hard_limit)
                               .where(quotas.c.project_id == project_id, or_(*owners)))).all()
    # Project rows first, then the user's rows override them.
    for row in sorted(rows, key=lambda r: r.user_id != ""):
        if row.resource in result:
            result[row.resource] = int(row.hard_limit)
    return result


async def usage(conn: Connection, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """What the project uses now: instances, cores, ram, server groups; key pairs of ``user_id`` if given."""
    live = and_(instances.c.project_id == project_id, instances.c.deleted == 0,
                or_(instances.c.vm_state != _SOFT_DELETED, instances.c.vm_state.is_(None)))
    groups = (select(func.count()).select_from(instance_groups)
              .where(instance_groups.c.project_id == project_id).scalar_subquery())
    keys = (select(func.count()).select_from(key_pairs)
            .where(key_pairs.c.user_id == (user_id or "")).scalar_subquery())
    query = select(func.count(instances.c.id).label("instances"),
                   func.coalesce(func.sum(instances.c.vcpus), 0).label("cores"),
                   func.coalesce(func.sum(instances.c.memory_mb), 0).label("ram"),
                   groups.label("server_groups"), keys.label("key_pairs")).where(live)
    row = (await conn.execute(query)).one()._mapping
    return {"instances": int(row["instances"]), "cores": int(row["cores"]), "ram": int(row["ram"]),
            "server_groups": int(row["server_groups"]), "key_pairs": int(row["key_pairs"]) if user_id else 0}


def over(limit: int, in_use: int, delta: int) -> bool:
    """Whether using ``delta`` more would pass ``limit`` (``-1`` never does)."""
    return limit >= 0 and in_use + delta > limit


def headroom(limits_: dict[str, int], usage_: dict[str, int], deltas: dict[str, Any]) -> list[str]:
    """The resources among ``deltas`` that would go over their limit, sorted (for Nova's 403 message)."""
    return sorted(r for r, d in deltas.items() if over(limits_.get(r, UNLIMITED), usage_.get(r, 0), int(d)))
