"""Flavor queries: pages with Nova's visibility rules, one flavor with its extra specs, access lists.

Visibility is Nova's: an admin sees every flavor; anyone else sees public flavors and the private ones their
project was given access to. A page of flavors costs at most three queries (marker, page, extra specs with
one IN), never one per row. Results are plain dicts, so the API and the servers code can keep or serialise them.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, bindparam, delete, exists, false, func, insert, or_, select, true
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.exc import IntegrityError

from stratus.db.engine import Connection
from stratus.db.models import flavor_extra_specs, flavor_projects, flavors
from stratus.db.prepared import prepared
from stratus.utils import utcnow

#: nova/db/constants.py MAX_INT: the largest value of the integer columns (memory_mb, root_gb, ...)
MAX_INT = 0x7FFFFFFF

# Columns a list may be sorted by (Nova's flavor fields); nullable ones sort as if empty.
SORT_KEYS = {"created_at", "description", "disabled", "ephemeral_gb", "flavorid", "id", "is_public",
             "memory_mb", "name", "root_gb", "rxtx_factor", "swap", "updated_at", "vcpu_weight", "vcpus"}
_NULL_SORT_AS: dict[str, Any] = {"description": "", "vcpu_weight": 0}

# devstack's flavors: (name, flavorid, vcpus, memory_mb, root_gb). Tempest and most guides assume them.
DEFAULT_FLAVORS = [
    ("m1.nano", "42", 1, 128, 1),
    ("m1.micro", "84", 1, 192, 1),
    ("m1.tiny", "1", 1, 512, 1),
    ("m1.small", "2", 1, 2048, 20),
    ("m1.medium", "3", 2, 4096, 40),
    ("m1.large", "4", 4, 8192, 80),
    ("m1.xlarge", "5", 8, 16384, 160),
]

# The keys of a flavor dict: what a server records of the flavor it was booted with.
_FIELDS = ("id", "flavorid", "name", "memory_mb", "vcpus", "root_gb", "ephemeral_gb", "swap", "rxtx_factor",
           "is_public", "disabled", "description")


class MarkerNotFound(Exception):
    """The ``marker`` of a list names no flavor the caller can see."""


class FlavorConflict(Exception):
    """A flavor with the same ``flavorid`` (``column == "flavorid"``) or ``name`` already exists."""

    def __init__(self, column: str, value: str) -> None:
        super().__init__(f"{column} {value} exists")
        self.column = column
        self.value = value


def _changed(result: Result[Any]) -> bool:
    return cast("CursorResult[Any]", result).rowcount > 0


def _visible(project_id: str | None, is_admin: bool) -> ColumnElement[bool]:
    """Nova's read filter: admins see all; others public flavors or those shared with their project."""
    if is_admin:
        return true()
    return or_(flavors.c.is_public == true(), _shared_with(project_id))


def _shared_with(project_id: str | None) -> ColumnElement[bool]:
    return exists().where(flavor_projects.c.flavor_id == flavors.c.id,
                          flavor_projects.c.project_id == project_id)


#: per shape of row (its keys): the getter of the flavor's fields by position, a tenth of what a look-up by name
#: through the row's mapping costs for each (every boot reads its flavor)
_FIELD_GETTERS: dict[tuple[str, ...], Callable[[Any], tuple[Any, ...]]] = {}


def _to_dict(row: Any, extra_specs: dict[str, str] | None = None) -> dict[str, Any]:
    keys = row._fields
    get = _FIELD_GETTERS.get(keys)
    if get is None:
        get = _FIELD_GETTERS[keys] = itemgetter(*(keys.index(name) for name in _FIELDS))
    flavor = dict(zip(_FIELDS, get(row), strict=True))
    flavor["is_public"] = bool(flavor["is_public"])
    flavor["disabled"] = bool(flavor["disabled"])
    flavor["rxtx_factor"] = float(flavor["rxtx_factor"])
    flavor["extra_specs"] = extra_specs if extra_specs is not None else {}
    return flavor


_SPECS_OF = select(flavor_extra_specs).where(flavor_extra_specs.c.flavor_id.in_(bindparam("b_ids", expanding=True)))


async def _specs_for(conn: Connection, ids: list[int]) -> dict[int, dict[str, str]]:
    """Extra specs of many flavors in one query."""
    specs: dict[int, dict[str, str]] = {i: {} for i in ids}
    if ids:
        rows = await conn.execute(_SPECS_OF, {"b_ids": ids})
        for row in rows:
            specs[row.flavor_id][row.key] = row.value
    return specs


def _sort_column(key: str) -> ColumnElement[Any]:
    column = flavors.c[key]
    if key in _NULL_SORT_AS:
        return func.coalesce(column, _NULL_SORT_AS[key])
    if key == "updated_at":
        return func.coalesce(column, flavors.c.created_at)
    return column


def _at_least(column: ColumnElement[Any], minimum: int) -> ColumnElement[bool]:
    """``column >= minimum`` for a 32-bit column: a minimum past its range matches no row (and is never bound as a
    parameter the column's type cannot hold)."""
    if minimum > MAX_INT:
        return false()
    return column >= max(minimum, -MAX_INT - 1)


async def list_flavors(conn: Connection, *, project_id: str | None, is_admin: bool,
                       is_public: bool | None = True, disabled: bool | None = None,
                       min_memory_mb: int | None = None, min_root_gb: int | None = None,
                       sort_key: str = "flavorid", sort_dir: str = "asc", limit: int | None = None,
                       marker: str | None = None, with_extra_specs: bool = False) -> list[dict[str, Any]]:
    """One page of flavors, ordered by ``(sort_key, id)``, after the flavor named by ``marker``.

    ``is_public``: True lists public flavors plus those shared with the project (Nova's default), False only
    private ones, None all. Raises ``MarkerNotFound`` and ``ValueError`` (unknown sort key or direction).
    """
    if sort_key not in SORT_KEYS:
        raise ValueError(f"sort_key {sort_key}")
    if sort_dir not in ("asc", "desc"):
        raise ValueError(f"sort_dir {sort_dir}")
    visible = _visible(project_id, is_admin)
    query = select(flavors).where(visible)
    if min_memory_mb is not None:
        query = query.where(_at_least(flavors.c.memory_mb, min_memory_mb))
    if min_root_gb is not None:
        query = query.where(_at_least(flavors.c.root_gb, min_root_gb))
    if disabled is not None:
        query = query.where(flavors.c.disabled == disabled)
    if is_public is True:
        query = query.where(or_(flavors.c.is_public == true(), _shared_with(project_id)))
    elif is_public is False:
        query = query.where(flavors.c.is_public == false())

    key_col, id_col = _sort_column(sort_key), flavors.c.id
    if marker is not None:
        found = (await conn.execute(select(key_col.label("k"), id_col)
                                    .where(visible, flavors.c.flavorid == marker))).first()
        if found is None:
            raise MarkerNotFound(marker)
        after = (key_col > found.k) if sort_dir == "asc" else (key_col < found.k)
        same_then_id = and_(key_col == found.k, (id_col > found.id) if sort_dir == "asc" else (id_col < found.id))
        query = query.where(or_(after, same_then_id))
    order = [key_col.asc(), id_col.asc()] if sort_dir == "asc" else [key_col.desc(), id_col.desc()]
    query = query.order_by(*order)
    if limit is not None:
        query = query.limit(limit)
    rows = (await conn.execute(query)).all()
    specs = await _specs_for(conn, [r.id for r in rows]) if with_extra_specs else {}
    return [_to_dict(r, specs.get(r.id)) for r in rows]


#: built once (every boot reads its flavor): SQLAlchemy hashes and compiles a statement object once. The flavor
#: with its extra specs in one statement: a row per spec (one with no spec when it has none)
_FLAVOR = prepared(
    select(flavors, flavor_extra_specs.c.key.label("spec_key"), flavor_extra_specs.c.value.label("spec_value"))
    .select_from(flavors.outerjoin(flavor_extra_specs, flavor_extra_specs.c.flavor_id == flavors.c.id))
    .where(flavors.c.flavorid == bindparam("b_flavorid")))
_FLAVOR_SHARED = prepared(_FLAVOR.where(or_(flavors.c.is_public == true(), exists().where(
    flavor_projects.c.flavor_id == flavors.c.id, flavor_projects.c.project_id == bindparam("b_project")))))


async def get(conn: Connection, flavorid: str, *, project_id: str | None = None,
              is_admin: bool = True) -> dict[str, Any] | None:
    """The flavor with its extra specs (one query), or None when it does not exist or the caller may not see it."""
    if is_admin:
        rows = (await conn.execute(_FLAVOR, {"b_flavorid": flavorid})).all()
    else:
        rows = (await conn.execute(_FLAVOR_SHARED, {"b_flavorid": flavorid, "b_project": project_id})).all()
    if not rows:
        return None
    specs = {row.spec_key: row.spec_value for row in rows if row.spec_key is not None}
    return _to_dict(rows[0], specs)


async def get_for_boot(conn: Connection, flavorid: str, context_project_id: str | None,
                       is_admin: bool) -> dict[str, Any] | None:
    """The flavor a server boots with, as a plain JSON-able dict, or None if missing or not accessible.

    A disabled flavor is returned (``disabled`` is True): the caller decides, as Nova's servers API does.
    """
    return await get(conn, flavorid, project_id=context_project_id, is_admin=is_admin)


async def create(conn: Connection, *, flavorid: str, name: str, memory_mb: int, vcpus: int, root_gb: int,
                 ephemeral_gb: int = 0, swap: int = 0, rxtx_factor: float = 1.0, is_public: bool = True,
                 description: str | None = None) -> dict[str, Any]:
    """Insert a flavor; raises ``FlavorConflict`` when its id or name is taken.

    Checked before the insert (SQLite's write transaction serialises creators); on a server database a
    concurrent creator can still win, and the unique constraint's error says which column clashed. The insert
    is the last statement, so the caller's transaction only has to roll back.
    """
    await _check_unique(conn, flavorid, name)
    values = {"flavorid": flavorid, "name": name, "memory_mb": memory_mb, "vcpus": vcpus, "root_gb": root_gb,
              "ephemeral_gb": ephemeral_gb, "swap": swap, "rxtx_factor": rxtx_factor, "is_public": is_public,
              "disabled": False, "description": description, "created_at": utcnow()}
    try:
        result = await conn.execute(insert(flavors).values(**values).returning(flavors.c.id))
    except IntegrityError as exc:
        if "flavorid" in str(exc.orig):
            raise FlavorConflict("flavorid", flavorid) from None
        raise FlavorConflict("name", name) from None
    values["id"] = result.scalar_one()
    return {**{k: values[k] for k in _FIELDS}, "extra_specs": {}}


async def _check_unique(conn: Connection, flavorid: str, name: str) -> None:
    rows = (await conn.execute(select(flavors.c.flavorid, flavors.c.name)
                               .where(or_(flavors.c.flavorid == flavorid, flavors.c.name == name)))).all()
    if any(r.flavorid == flavorid for r in rows):
        raise FlavorConflict("flavorid", flavorid)
    if rows:
        raise FlavorConflict("name", name)


async def delete_flavor(conn: Connection, flavorid: str) -> bool:
    """Delete a flavor with its extra specs and access list; False if there was none."""
    db_id = (await conn.execute(select(flavors.c.id).where(flavors.c.flavorid == flavorid))).scalar()
    if db_id is None:
        return False
    await conn.execute(delete(flavor_extra_specs).where(flavor_extra_specs.c.flavor_id == db_id))
    await conn.execute(delete(flavor_projects).where(flavor_projects.c.flavor_id == db_id))
    await conn.execute(delete(flavors).where(flavors.c.id == db_id))
    return True


async def update_description(conn: Connection, db_id: int, description: str | None) -> None:
    await conn.execute(flavors.update().where(flavors.c.id == db_id)
                       .values(description=description, updated_at=utcnow()))


async def update_extra_specs(conn: Connection, db_id: int, specs: dict[str, str]) -> None:
    """Set the given keys, keeping the others (Nova merges, it never replaces the whole set)."""
    if not specs:
        return
    await conn.execute(delete(flavor_extra_specs).where(flavor_extra_specs.c.flavor_id == db_id,
                                                        flavor_extra_specs.c.key.in_(list(specs))))
    await conn.execute(insert(flavor_extra_specs),
                       [{"flavor_id": db_id, "key": k, "value": v} for k, v in specs.items()])
    await conn.execute(flavors.update().where(flavors.c.id == db_id).values(updated_at=utcnow()))


async def delete_extra_spec(conn: Connection, db_id: int, key: str) -> bool:
    return _changed(await conn.execute(delete(flavor_extra_specs).where(flavor_extra_specs.c.flavor_id == db_id,
                                                                        flavor_extra_specs.c.key == key)))


async def access_list(conn: Connection, db_id: int) -> list[str]:
    """Projects a private flavor is shared with, in a stable order."""
    rows = await conn.execute(select(flavor_projects.c.project_id).where(flavor_projects.c.flavor_id == db_id)
                              .order_by(flavor_projects.c.project_id))
    return list(rows.scalars())


async def add_access(conn: Connection, db_id: int, project_id: str) -> bool:
    """Share the flavor with a project; False when it already was."""
    present = (await conn.execute(select(flavor_projects.c.flavor_id).where(
        flavor_projects.c.flavor_id == db_id, flavor_projects.c.project_id == project_id))).first()
    if present is not None:
        return False
    await conn.execute(insert(flavor_projects).values(flavor_id=db_id, project_id=project_id))
    return True


async def remove_access(conn: Connection, db_id: int, project_id: str) -> bool:
    return _changed(await conn.execute(delete(flavor_projects).where(flavor_projects.c.flavor_id == db_id,
                                                                     flavor_projects.c.project_id == project_id)))


async def ensure_defaults(conn: Connection) -> None:
    """Create devstack's default flavors once, on an empty table (an operator's deletions are kept)."""
    if (await conn.execute(select(func.count()).select_from(flavors))).scalar():
        return
    now = utcnow()
    await conn.execute(insert(flavors), [
        {"flavorid": flavorid, "name": name, "memory_mb": ram, "vcpus": vcpus, "root_gb": disk, "ephemeral_gb": 0,
         "swap": 0, "rxtx_factor": 1.0, "is_public": True, "disabled": False, "created_at": now}
        for name, flavorid, vcpus, ram, disk in DEFAULT_FLAVORS])
