"""Quota limits and usage, counted from the records themselves as Nova does since Pike (no reservations).

A hard limit comes from, first to last: a user-level override (``quotas`` row with that ``user_id``), a
project-level override (``quotas`` row with ``user_id == ""``), the ``default`` quota class, ``[quota]`` in the
configuration. ``-1`` means unlimited. Usage is computed in one query whatever the number of instances.

Checks follow Nova's ``Quotas.check_deltas`` / ``limit_check``: counted resources (instances, cores, ram,
server_groups) must fit both the project's limit with the project's usage and the user's limit with the user's
usage; per-request values (metadata items, injected files, and the per-user key_pairs and server_group_members
counts) must fit both limits. A check and the insert it allows run in one write transaction after ``lock_*``:
on SQLite the write transaction already holds the database's only write lock, on PostgreSQL the lock is a
transaction-scoped advisory lock, so concurrent creators of one project (or user, or group) queue there instead
of both counting the same free slot.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg
from sqlalchemy import and_, bindparam, case, delete, func, insert, literal, or_, select, text, union_all, update

from stratus.db.engine import Connection
from stratus.db.models import instance_groups, instances, key_pairs, quota_classes, quotas
from stratus.db.prepared import prepared
from stratus.utils import utcnow

UNLIMITED = -1
DEFAULT_CLASS = "default"

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
# Nova's registered resources (``QUOTAS.resources``), sorted as Nova lists them.
RESOURCES = tuple(sorted((*CONF_OPTION, *NETWORK_RESOURCES)))
# Counted per project and per user; the others are limits on one request (or counted per user only).
COUNTED = ("instances", "cores", "ram", "server_groups")
# Nova keeps these per project even when a user's quota is set (nova-network's per-project resources).
PER_PROJECT_ONLY = ("fixed_ips", "floating_ips")

# Soft-deleted servers can be restored, so Nova does not charge them against the quota.
_SOFT_DELETED = "soft-delete"


class OverQuota(Exception):
    """Values over a limit: the resources over (sorted), and the limits and usages of the scope that refused."""

    def __init__(self, overs: list[str], quotas_: dict[str, int], usages: dict[str, int], scope: str) -> None:
        super().__init__(f"Quota exceeded for resources: {overs}")
        self.overs = overs
        self.quotas = quotas_
        self.usages = usages
        self.scope = scope


# --- locks ---------------------------------------------------------------------------------------------------
async def _advisory_lock(conn: Connection, key: str) -> None:
    dialect = getattr(conn, "dialect", None)
    if dialect is not None and dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


async def lock_project(conn: Connection, project_id: str) -> None:
    """Serialise the project's quota-checked creates until this write transaction ends (no-op on SQLite)."""
    await _advisory_lock(conn, f"quota:project:{project_id}")


async def lock_user(conn: Connection, user_id: str) -> None:
    """The same for a user's own resources (key pairs are counted per user, across projects)."""
    await _advisory_lock(conn, f"quota:user:{user_id}")


async def lock_group(conn: Connection, group_id: int) -> None:
    """The same for a server group's members (boots from several projects may join one group)."""
    await _advisory_lock(conn, f"quota:server_group:{group_id}")


# --- limits --------------------------------------------------------------------------------------------------
#: where the ``[quota]`` limits ride in oslo.config's own cache of option values (keyed (group, option name); no
#: option has this name), which every change clears: set_override, clear_override, set_default, registering an
#: option, a reload or mutation of the config files. Reading ten options costs some 40 us (each a chain of
#: oslo.config's attribute look-ups), every boot asks them, and a cached copy costs 1 us.
_CACHE_KEY = ("quota", " stratus configured limits")


def _configured(conf: cfg.ConfigOpts) -> dict[str, int]:
    """The limits ``[quota]`` sets (a new dict: the caller may change it)."""
    cache = getattr(conf, "_ConfigOpts__cache", None)
    if type(cache) is not dict:  # an oslo.config whose cache moved: read the options each time
        return _read_configured(conf)
    found = cache.get(_CACHE_KEY)
    if found is None:
        found = cache[_CACHE_KEY] = _read_configured(conf)
    return dict(found)


def _read_configured(conf: cfg.ConfigOpts) -> dict[str, int]:
    group = conf.quota
    result = {name: int(getattr(group, option)) for name, option in CONF_OPTION.items()}
    result.update(dict.fromkeys(NETWORK_RESOURCES, UNLIMITED))
    return result


#: built once (SQLAlchemy hashes and compiles a statement object once): a quota class's limits
_CLASS_ROWS = prepared(select(quota_classes.c.resource, quota_classes.c.hard_limit).where(
    quota_classes.c.class_name == bindparam("b_class")))


async def _class_rows(conn: Connection, class_name: str) -> dict[str, int]:
    rows = await conn.execute(_CLASS_ROWS, {"b_class": class_name})
    return {row.resource: int(row.hard_limit) for row in rows}


async def defaults(conn: Connection, conf: cfg.ConfigOpts) -> dict[str, int]:
    """Nova's ``get_defaults``: the ``default`` quota class over ``[quota]``."""
    return await class_limits(conn, conf, DEFAULT_CLASS)


async def class_limits(conn: Connection, conf: cfg.ConfigOpts, class_name: str) -> dict[str, int]:
    """Nova's ``get_class_quotas``: the class's rows over ``[quota]`` (another class does not inherit ``default``)."""
    result = _configured(conf)
    result.update({r: v for r, v in (await _class_rows(conn, class_name)).items() if r in result})
    return result


async def overrides(conn: Connection, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """The limits set for the project (``user_id`` None) or for one user of it."""
    rows = await conn.execute(select(quotas.c.resource, quotas.c.hard_limit)
                              .where(quotas.c.project_id == project_id, quotas.c.user_id == (user_id or "")))
    return {row.resource: int(row.hard_limit) for row in rows}


async def limits(conn: Connection, conf: cfg.ConfigOpts, project_id: str,
                 user_id: str | None = None) -> dict[str, int]:
    """Hard limits of every quota resource for the project (and the user, when given)."""
    project, user = await project_and_user_limits(conn, conf, project_id, user_id or "")
    return user if user_id else project


#: a boot's limits in one statement: the ``default`` class's rows, then the project's and the user's overrides
_BOOT_LIMIT_ROWS = prepared(union_all(
    select(literal(0).label("level"), quota_classes.c.resource, quota_classes.c.hard_limit)
    .where(quota_classes.c.class_name == DEFAULT_CLASS),
    select(case((quotas.c.user_id == "", 1), else_=2), quotas.c.resource, quotas.c.hard_limit)
    .where(quotas.c.project_id == bindparam("b_project"),
           or_(quotas.c.user_id == "", quotas.c.user_id == bindparam("b_user")))))


async def project_and_user_limits(conn: Connection, conf: cfg.ConfigOpts, project_id: str, user_id: str
                                  ) -> tuple[dict[str, int], dict[str, int]]:
    """The project's hard limits and the user's (the project's with the user's overrides), in one query: the
    ``default`` class over ``[quota]``, the project's rows over those, the user's over the project's."""
    project = _configured(conf)
    user = dict(project)
    rows = (await conn.execute(_BOOT_LIMIT_ROWS, {"b_project": project_id, "b_user": user_id})).all()
    for level, resource, hard_limit in sorted(rows, key=lambda r: r[0]):
        if resource not in project:
            continue
        if level < 2:  # the class's, then the project's: both scopes
            project[resource] = user[resource] = int(hard_limit)
        elif user_id:
            user[resource] = int(hard_limit)
    return project, user


async def set_limits(conn: Connection, project_id: str, values: dict[str, int], user_id: str | None = None) -> None:
    """Create or update the project's (or the user's) limits; fixed_ips and floating_ips stay per project."""
    now = utcnow()
    for resource, limit in values.items():
        owner = "" if resource in PER_PROJECT_ONLY else (user_id or "")
        where = and_(quotas.c.project_id == project_id, quotas.c.user_id == owner, quotas.c.resource == resource)
        result = await conn.execute(update(quotas).where(where).values(hard_limit=limit, updated_at=now))
        if not _changed(result):
            await conn.execute(insert(quotas).values(project_id=project_id, user_id=owner, resource=resource,
                                                     hard_limit=limit, created_at=now))


async def delete_limits(conn: Connection, project_id: str, user_id: str | None = None) -> None:
    """Back to the defaults: every limit of the project and of its users, or only the user's."""
    query = delete(quotas).where(quotas.c.project_id == project_id)
    if user_id:
        query = query.where(quotas.c.user_id == user_id)
    await conn.execute(query)


async def set_class(conn: Connection, class_name: str, values: dict[str, int]) -> None:
    """Create or update a quota class's limits."""
    now = utcnow()
    for resource, limit in values.items():
        where = and_(quota_classes.c.class_name == class_name, quota_classes.c.resource == resource)
        result = await conn.execute(update(quota_classes).where(where).values(hard_limit=limit, updated_at=now))
        if not _changed(result):
            await conn.execute(insert(quota_classes).values(class_name=class_name, resource=resource,
                                                            hard_limit=limit, created_at=now))


def _changed(result: Any) -> bool:
    return bool(getattr(result, "rowcount", 0))


# --- usage ---------------------------------------------------------------------------------------------------
def _live_instances(project_id: Any) -> Any:
    return and_(instances.c.project_id == project_id, instances.c.deleted == 0,
                or_(instances.c.vm_state != _SOFT_DELETED, instances.c.vm_state.is_(None)))


async def usage(conn: Connection, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """What the project uses now: instances, cores, ram, server groups; key pairs of ``user_id`` if given."""
    groups = (select(func.count()).select_from(instance_groups)
              .where(instance_groups.c.project_id == project_id).scalar_subquery())
    keys = (select(func.count()).select_from(key_pairs)
            .where(key_pairs.c.user_id == (user_id or "")).scalar_subquery())
    query = select(func.count(instances.c.id).label("instances"),
                   func.coalesce(func.sum(instances.c.vcpus), 0).label("cores"),
                   func.coalesce(func.sum(instances.c.memory_mb), 0).label("ram"),
                   groups.label("server_groups"), keys.label("key_pairs")).where(_live_instances(project_id))
    row = (await conn.execute(query)).one()._mapping
    return {"instances": int(row["instances"]), "cores": int(row["cores"]), "ram": int(row["ram"]),
            "server_groups": int(row["server_groups"]), "key_pairs": int(row["key_pairs"]) if user_id else 0}


def _counts_statement() -> Any:
    i, g = instances.c, instance_groups.c
    project, user = bindparam("b_project"), bindparam("b_user")
    mine = i.user_id == user
    user_groups = (select(func.count()).select_from(instance_groups)
                   .where(g.project_id == project, g.user_id == user).scalar_subquery())
    project_groups = (select(func.count()).select_from(instance_groups)
                      .where(g.project_id == project).scalar_subquery())
    # every column labelled: anonymous labels (count_1, coalesce_1) would take SQLAlchemy's path (prepared.py)
    return select(
        func.count(i.id).label("instances"), func.coalesce(func.sum(i.vcpus), 0).label("cores"),
        func.coalesce(func.sum(i.memory_mb), 0).label("ram"), project_groups.label("server_groups"),
        func.coalesce(func.sum(case((mine, 1), else_=0)), 0).label("user_instances"),
        func.coalesce(func.sum(case((mine, i.vcpus), else_=0)), 0).label("user_cores"),
        func.coalesce(func.sum(case((mine, i.memory_mb), else_=0)), 0).label("user_ram"),
        user_groups.label("user_server_groups"),
    ).where(_live_instances(project))


_COUNTS = prepared(_counts_statement())


async def counts(conn: Connection, project_id: str, user_id: str | None = None) -> dict[str, dict[str, int]]:
    """Nova's ``count_as_dict`` for the counted resources, in one query: ``{"project": {...}, "user": {...}}``
    (``user`` only with ``user_id``)."""
    row = [int(v) for v in (await conn.execute(_COUNTS, {"b_project": project_id, "b_user": user_id or ""})).one()]
    result = {"project": dict(zip(COUNTED, row[:4], strict=True))}
    if user_id:
        result["user"] = dict(zip(COUNTED, row[4:], strict=True))
    return result


async def _user_limit_totals(conn: Connection, project_id: str) -> dict[str, int]:
    """The sum of every user-level limit of the project, per resource (Nova's "remains" arithmetic)."""
    rows = await conn.execute(select(quotas.c.resource, func.sum(quotas.c.hard_limit).label("total"))
                              .where(quotas.c.project_id == project_id, quotas.c.user_id != "")
                              .group_by(quotas.c.resource))
    return {row.resource: int(row.total) for row in rows}


def _unlimited_sum(a: int, b: int) -> int:
    return UNLIMITED if a <= UNLIMITED or b <= UNLIMITED else a + b


def _unlimited_sub(a: int, b: int) -> int:
    return UNLIMITED if a <= UNLIMITED or b <= UNLIMITED else a - b


async def detail(conn: Connection, conf: cfg.ConfigOpts, project_id: str,
                 user_id: str | None = None) -> dict[str, dict[str, int]]:
    """Nova's quota detail: ``{resource: {limit, in_use, reserved}}``; only the counted resources have a usage
    (key_pairs and server_group_members are per user or per group: 0 here, as Nova)."""
    hard = await limits(conn, conf, project_id, user_id)
    used = (await counts(conn, project_id, user_id))["user" if user_id else "project"]
    return {r: {"limit": hard[r], "in_use": used.get(r, 0), "reserved": 0} for r in RESOURCES}


async def settable(conn: Connection, conf: cfg.ConfigOpts, project_id: str,
                   user_id: str | None = None) -> dict[str, tuple[int, int]]:
    """Nova's ``get_settable_quotas``: ``{resource: (minimum, maximum)}``, ``-1`` meaning no maximum.

    A project's limit may not go under its usage nor under the sum of its users' limits; a user's limit may not
    go under the user's usage nor over what the project has left to give (its limit minus the users' limits,
    plus this user's own)."""
    project_limits = await limits(conn, conf, project_id)
    given = await _user_limit_totals(conn, project_id)
    remains = {r: project_limits[r] - given.get(r, 0) for r in RESOURCES}
    used = await counts(conn, project_id, user_id)
    if user_id:
        mine = await overrides(conn, project_id, user_id)
        return {r: (used["user"].get(r, 0), _unlimited_sum(remains[r], mine.get(r, 0))) for r in RESOURCES}
    return {r: (max(_unlimited_sub(project_limits[r], remains[r]), used["project"].get(r, 0)), UNLIMITED)
            for r in RESOURCES}


# --- checks --------------------------------------------------------------------------------------------------
def over(limit: int, in_use: int, delta: int) -> bool:
    """Whether using ``delta`` more would pass ``limit`` (``-1`` never does)."""
    return limit >= 0 and in_use + delta > limit


def headroom(limits_: dict[str, int], usage_: dict[str, int], deltas: dict[str, Any]) -> list[str]:
    """The resources among ``deltas`` that would go over their limit, sorted (for Nova's 403 message)."""
    return sorted(r for r, d in deltas.items() if over(limits_.get(r, UNLIMITED), usage_.get(r, 0), int(d)))


async def check_deltas(conn: Connection, conf: cfg.ConfigOpts, project_id: str, user_id: str,
                       deltas: dict[str, int]) -> None:
    """Nova's ``check_deltas`` for counted resources: raise ``OverQuota`` unless usage plus ``deltas`` fits the
    project's limits (project usage) and the user's limits (user usage). Call ``lock_project`` first."""
    project_limits, user_limits = await project_and_user_limits(conn, conf, project_id, user_id)
    if all(project_limits[r] <= UNLIMITED and user_limits[r] <= UNLIMITED for r in deltas):
        return  # nothing to count against: no usage passes an unlimited quota
    used = await counts(conn, project_id, user_id)
    overs: list[str] = []
    user_scope = False
    for resource, delta in deltas.items():
        if over(project_limits[resource], used["project"].get(resource, 0), delta):
            overs.append(resource)
        elif over(user_limits[resource], used["user"].get(resource, 0), delta):
            overs.append(resource)
            user_scope = True
    if overs:
        scope = "user" if user_scope else "project"
        raise OverQuota(sorted(overs), user_limits if user_scope else project_limits, used[scope], scope)


async def limit_check(conn: Connection, conf: cfg.ConfigOpts, project_id: str, user_id: str,
                      values: dict[str, int]) -> None:
    """Nova's ``limit_check``: raise ``OverQuota`` (with the project's limits) if a value passes the project's
    or the user's limit."""
    project_limits, user_limits = await project_and_user_limits(conn, conf, project_id, user_id)
    overs = sorted(r for r, v in values.items() if over(project_limits[r], 0, v) or over(user_limits[r], 0, v))
    if overs:
        raise OverQuota(overs, project_limits, {}, "project")
