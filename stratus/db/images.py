"""Image store queries: plain async functions over one connection, a fixed number of statements per call.

A page of images costs three statements whatever its size: the rows, then their properties and their tags with
one ``IN`` query each. Status changes are compare-and-swap (``WHERE status = :expected``) so two uploads, or an
upload racing a delete, cannot both win.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import CursorResult, Result

from stratus.db.engine import Connection
from stratus.db.models import image_locations, image_properties, image_tags, image_tasks, images
from stratus.db.prepared import prepared

SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at")

# Nullable sort columns are compared through a non-null stand-in: SQLite and PostgreSQL disagree on where NULLs
# sort, and a marker predicate must agree with ORDER BY on every engine.
_NULL_STANDINS: dict[str, Any] = {"name": "", "container_format": "", "disk_format": "", "size": -1}


_TIME_OPS = {"eq": "__eq__", "neq": "__ne__", "gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__"}
TIME_OPS = tuple(_TIME_OPS)


def _changed(result: Result[Any]) -> bool:
    return cast("CursorResult[Any]", result).rowcount > 0


@dataclasses.dataclass
class ListFilters:
    """What ``GET /v2/images`` narrows by; the store sets ``project_id`` (None: an admin, who sees everything)."""

    project_id: str | None = None
    visibility: str | None = None
    ids: list[str] | None = None
    names: list[str] | None = None
    equals: dict[str, Any] = dataclasses.field(default_factory=dict)
    size_min: int | None = None
    size_max: int | None = None
    os_hidden: bool = False
    tags: list[str] = dataclasses.field(default_factory=list)
    properties: dict[str, str] = dataclasses.field(default_factory=dict)
    times: list[tuple[str, str, datetime.datetime]] = dataclasses.field(default_factory=list)


def _visible(project_id: str | None) -> ColumnElement[bool]:
    """Who may see an image at all: its owner, admins, and everyone for public and community images."""
    if project_id is None:
        return images.c.id.is_not(None)
    return or_(images.c.visibility.in_(("public", "community")), images.c.owner == project_id)


def _where(f: ListFilters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [_visible(f.project_id), images.c.os_hidden == f.os_hidden]
    if f.visibility is None:
        # Glance leaves other projects' community images out of the default list.
        if f.project_id is not None:
            conds.append(or_(images.c.visibility == "public", images.c.owner == f.project_id))
    elif f.visibility != "all":
        conds.append(images.c.visibility == f.visibility)
    for column, value in f.equals.items():
        conds.append(images.c[column] == value)
    for column, op, when in f.times:
        conds.append(getattr(images.c[column], _TIME_OPS[op])(when))
    if f.ids is not None:
        conds.append(images.c.id.in_(f.ids))
    if f.names is not None:
        conds.append(images.c.name.in_(f.names))
    if f.size_min is not None:
        conds.append(images.c.size >= f.size_min)
    if f.size_max is not None:
        conds.append(images.c.size <= f.size_max)
    for tag in f.tags:
        conds.append(exists().where(image_tags.c.image_id == images.c.id, image_tags.c.value == tag))
    for name, value in f.properties.items():
        conds.append(exists().where(image_properties.c.image_id == images.c.id, image_properties.c.name == name,
                                    image_properties.c.value == value))
    return conds


def _sort_expr(key: str) -> Any:
    column = images.c[key]
    return func.coalesce(column, _NULL_STANDINS[key]) if key in _NULL_STANDINS else column


def _marker_value(marker: Mapping[str, Any], key: str) -> Any:
    value = marker[key]
    return _NULL_STANDINS[key] if value is None and key in _NULL_STANDINS else value


def _after_marker(sort: Sequence[tuple[str, str]], marker: Mapping[str, Any]) -> ColumnElement[bool]:
    """Rows strictly after ``marker`` in the (total) order ``sort``: the keyset-pagination predicate."""
    branches = []
    for i, (key, direction) in enumerate(sort):
        expr, value = _sort_expr(key), _marker_value(marker, key)
        ties = [_sort_expr(k) == _marker_value(marker, k) for k, _ in sort[:i]]
        branches.append(and_(*ties, expr > value if direction == "asc" else expr < value))
    return or_(*branches)


async def list_images(conn: Connection, filters: ListFilters, sort: Sequence[tuple[str, str]], limit: int,
                      marker: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One page of image rows in ``sort`` order (``id`` is appended so the order is total)."""
    order = [(k, d) for k, d in sort if k != "id"] + [("id", next((d for k, d in sort if k == "id"), "desc"))]
    query = select(images).where(*_where(filters))
    if marker is not None:
        query = query.where(_after_marker(order, marker))
    query = query.order_by(*[_sort_expr(k).asc() if d == "asc" else _sort_expr(k).desc() for k, d in order])
    result = await conn.execute(query.limit(limit))
    return [dict(row) for row in result.mappings()]


#: built once (SQLAlchemy hashes and compiles a statement object once): every boot reads its image with these
_IMAGE = prepared(select(images).where(images.c.id == bindparam("b_id")))
_IMAGE_FOR_UPDATE = prepared(_IMAGE.with_for_update())
_PROPERTIES = select(image_properties).where(image_properties.c.image_id.in_(bindparam("b_ids", expanding=True)))
_TAGS = (select(image_tags).where(image_tags.c.image_id.in_(bindparam("b_ids", expanding=True)))
         .order_by(image_tags.c.value))
_LOCATIONS_ANY = (select(image_locations.c.image_id, image_locations.c.url, image_locations.c.store,
                         image_locations.c.metadata)
                  .where(image_locations.c.image_id.in_(bindparam("b_ids", expanding=True))))
_LOCATIONS = _LOCATIONS_ANY.where(image_locations.c.status == bindparam("b_status")).order_by(image_locations.c.id)
_LOCATIONS_ANY = _LOCATIONS_ANY.order_by(image_locations.c.id)


async def get_image(conn: Connection, image_id: str, for_update: bool = False) -> dict[str, Any] | None:
    """One image row; ``for_update`` locks it on PostgreSQL (SQLite's write transaction already serialises)."""
    row = (await conn.execute(_IMAGE_FOR_UPDATE if for_update else _IMAGE, {"b_id": image_id})).mappings().first()
    return dict(row) if row is not None else None


async def properties_of(conn: Connection, image_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Extra properties of many images with one query."""
    out: dict[str, dict[str, str]] = {}
    ids = list(image_ids)
    if ids:
        result = await conn.execute(_PROPERTIES, {"b_ids": ids})
        for row in result.mappings():
            out.setdefault(row["image_id"], {})[row["name"]] = row["value"]
    return out


async def tags_of(conn: Connection, image_ids: Iterable[str]) -> dict[str, list[str]]:
    """Tags of many images with one query, each image's in a stable order."""
    out: dict[str, list[str]] = {}
    ids = list(image_ids)
    if ids:
        for row in (await conn.execute(_TAGS, {"b_ids": ids})).mappings():
            out.setdefault(row["image_id"], []).append(row["value"])
    return out


async def locations_of(conn: Connection, image_ids: Iterable[str], status: str | None = "active"
                       ) -> dict[str, list[dict[str, Any]]]:
    """Where the data of many images is (url, store, metadata), oldest first, with one query; ``status``
    None includes uploads under way."""
    ids = list(image_ids)
    out: dict[str, list[dict[str, Any]]] = {}
    if not ids:
        return out
    if status is None:
        result = await conn.execute(_LOCATIONS_ANY, {"b_ids": ids})
    else:
        result = await conn.execute(_LOCATIONS, {"b_ids": ids, "b_status": status})
    for row in result.mappings():
        out.setdefault(row["image_id"], []).append({"url": row["url"], "store": row["store"],
                                                    "metadata": dict(row["metadata"] or {})})
    return out


#: what an image view shows besides its row, for many images in one statement: its properties (kind 0), its tags
#: (kind 1, by value) and its active locations (kind 2, oldest first); every boot reads its image with it
def _extras(of: Any) -> Any:
    """The union of an image's active locations, properties and tags; ``of(column)`` says which images."""
    return union_all(
        select(literal_column("2", Integer).label("kind"), image_locations.c.image_id,
               image_locations.c.url.label("a"), image_locations.c.store.label("b"),
               image_locations.c.metadata.label("meta"), image_locations.c.id.label("ord"))
        .where(of(image_locations.c.image_id), image_locations.c.status == "active"),
        select(literal_column("0", Integer), image_properties.c.image_id, image_properties.c.name,
               image_properties.c.value, null(), literal_column("0", Integer))
        .where(of(image_properties.c.image_id)),
        select(literal_column("1", Integer), image_tags.c.image_id, image_tags.c.value, null(), null(),
               literal_column("0", Integer))
        .where(of(image_tags.c.image_id)),
    ).order_by(literal_column("kind"), literal_column("ord"), literal_column("a"))


_EXTRAS = _extras(lambda column: column.in_(bindparam("b_ids", expanding=True)))
#: the same for one image (a boot's): equalities, which the fast path runs (stratus/db/prepared.py)
_EXTRAS_ONE = prepared(_extras(lambda column: column == bindparam("b_id")))


async def extras_of(conn: Connection, image_ids: Iterable[str]
                    ) -> tuple[dict[str, dict[str, str]], dict[str, list[str]], dict[str, list[dict[str, Any]]]]:
    """``properties_of``, ``tags_of`` and ``locations_of`` (active ones) of many images, in one query."""
    props: dict[str, dict[str, str]] = {}
    tags: dict[str, list[str]] = {}
    locations: dict[str, list[dict[str, Any]]] = {}
    ids = list(image_ids)
    if not ids:
        return props, tags, locations
    rows = await (conn.execute(_EXTRAS_ONE, {"b_id": ids[0]}) if len(ids) == 1
                  else conn.execute(_EXTRAS, {"b_ids": ids}))
    for kind, image_id, a, b, meta, _ in rows:
        if kind == 0:
            props.setdefault(image_id, {})[a] = b
        elif kind == 1:
            tags.setdefault(image_id, []).append(a)
        else:
            locations.setdefault(image_id, []).append({"url": a, "store": b, "metadata": dict(meta or {})})
    return props, tags, locations


async def add_location(conn: Connection, image_id: str, url: str, store: str, now: datetime.datetime) -> None:
    """A complete copy of the image's data (a copy-image import, a direct snapshot)."""
    await conn.execute(insert(image_locations).values(image_id=image_id, url=url, store=store, metadata={},
                                                      status="active", created_at=now, updated_at=now))


async def insert_image(conn: Connection, values: Mapping[str, Any], properties: Mapping[str, str],
                       tags: Iterable[str]) -> None:
    await conn.execute(insert(images).values(**values))
    await replace_properties(conn, values["id"], properties)
    await replace_tags(conn, values["id"], tags)


async def replace_properties(conn: Connection, image_id: str, properties: Mapping[str, str]) -> None:
    """Make the image's extra properties exactly ``properties`` (two statements at most)."""
    await conn.execute(delete(image_properties).where(image_properties.c.image_id == image_id))
    if properties:
        await conn.execute(insert(image_properties),
                           [{"image_id": image_id, "name": k, "value": v} for k, v in properties.items()])


async def replace_tags(conn: Connection, image_id: str, tags: Iterable[str]) -> None:
    await conn.execute(delete(image_tags).where(image_tags.c.image_id == image_id))
    rows = [{"image_id": image_id, "value": t} for t in dict.fromkeys(tags)]
    if rows:
        await conn.execute(insert(image_tags), rows)


async def add_tag(conn: Connection, image_id: str, tag: str) -> bool:
    """Add ``tag`` unless present; True if it was added."""
    present = await conn.execute(select(image_tags.c.value).where(image_tags.c.image_id == image_id,
                                                                  image_tags.c.value == tag))
    if present.first() is not None:
        return False
    await conn.execute(insert(image_tags).values(image_id=image_id, value=tag))
    return True


async def count_tags(conn: Connection, image_id: str) -> int:
    query = select(func.count()).select_from(image_tags).where(image_tags.c.image_id == image_id)
    return int((await conn.execute(query)).scalar_one())


async def remove_tag(conn: Connection, image_id: str, tag: str) -> bool:
    result = await conn.execute(delete(image_tags).where(image_tags.c.image_id == image_id,
                                                         image_tags.c.value == tag))
    return _changed(result)


async def update_image(conn: Connection, image_id: str, values: Mapping[str, Any],
                       expect_status: str | Sequence[str] | None = None) -> bool:
    """Update the row if its status is still one of ``expect_status``; True if it did (compare-and-swap)."""
    query = update(images).where(images.c.id == image_id)
    if expect_status is not None:
        statuses = [expect_status] if isinstance(expect_status, str) else list(expect_status)
        query = query.where(images.c.status.in_(statuses))
    result = await conn.execute(query.values(**values))
    return _changed(result)


async def add_pending_location(conn: Connection, image_id: str, url: str, now: datetime.datetime,
                               store: str = "file") -> int:
    """Record an upload in progress; its row id is the upload's token and ``updated_at`` its heartbeat."""
    result = await conn.execute(insert(image_locations).values(image_id=image_id, url=url, store=store, metadata={},
                                                               status="pending", created_at=now, updated_at=now))
    key = cast("CursorResult[Any]", result).inserted_primary_key
    assert key is not None
    return int(key[0])


async def touch_location(conn: Connection, location_id: int, now: datetime.datetime) -> bool:
    """Heartbeat of an upload; False if the upload lost its claim (image deleted or upload reclaimed)."""
    result = await conn.execute(update(image_locations)
                                .where(image_locations.c.id == location_id, image_locations.c.status == "pending")
                                .values(updated_at=now))
    return _changed(result)


async def activate_location(conn: Connection, location_id: int, now: datetime.datetime) -> bool:
    result = await conn.execute(update(image_locations)
                                .where(image_locations.c.id == location_id, image_locations.c.status == "pending")
                                .values(status="active", updated_at=now))
    return _changed(result)


async def drop_pending_location(conn: Connection, location_id: int) -> bool:
    """Forget an upload; True if it still held its claim (so its image may go back to ``queued``)."""
    result = await conn.execute(delete(image_locations).where(image_locations.c.id == location_id,
                                                              image_locations.c.status == "pending"))
    return _changed(result)


async def stale_uploads(conn: Connection, older_than: datetime.datetime) -> list[dict[str, Any]]:
    """Uploads whose heartbeat stopped (their process died): location id, image id and url."""
    query = select(image_locations.c.id, image_locations.c.image_id, image_locations.c.url,
                   image_locations.c.store).where(
        image_locations.c.status == "pending", image_locations.c.updated_at < older_than)
    return [dict(row) for row in (await conn.execute(query)).mappings()]


async def delete_image(conn: Connection, image_id: str) -> list[str]:
    """Delete the image and what hangs off it; returns the data URLs the caller should now remove."""
    urls = (await conn.execute(select(image_locations.c.url)
                               .where(image_locations.c.image_id == image_id))).scalars().all()
    for table in (image_locations, image_properties, image_tags):
        await conn.execute(delete(table).where(table.c.image_id == image_id))
    await conn.execute(delete(images).where(images.c.id == image_id))
    return list(urls)


async def insert_task(conn: Connection, values: Mapping[str, Any]) -> None:
    """A task of an image (Glance's ``api_image_import`` of a copy-image import)."""
    await conn.execute(insert(image_tasks).values(**values))


async def update_task(conn: Connection, task_id: str, values: Mapping[str, Any]) -> None:
    await conn.execute(update(image_tasks).where(image_tasks.c.id == task_id).values(**values))


async def tasks_of(conn: Connection, image_id: str) -> list[dict[str, Any]]:
    """The image's tasks, newest first (Glance's order)."""
    rows = await conn.execute(select(image_tasks).where(image_tasks.c.image_id == image_id)
                              .order_by(image_tasks.c.created_at.desc(), image_tasks.c.id))
    return [dict(r) for r in rows.mappings()]
