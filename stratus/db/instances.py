"""Instance records: create, read one, list a page with Nova's filters, state updates that compare-and-swap.

Reads of a page cost a fixed number of queries (instances, then metadata, faults and tags with one IN each),
never one per row.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import defaultdict
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    Select,
    String,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import DBAPIError

from stratus.db import actions, info_cache
from stratus.db.engine import Connection
from stratus.db.group_commit import InlineConnection
from stratus.db.models import (
    instance_group_members,
    instance_metadata,
    instance_tags,
    instances,
    request_specs,
)
from stratus.db.prepared import in_json_array, prepared, unprepare
from stratus.utils import utcnow

SORT_KEYS = {"created_at", "updated_at", "launched_at", "terminated_at", "display_name", "display_description",
             "uuid", "vm_state", "task_state", "power_state", "host", "node", "image_ref", "key_name",
             "availability_zone", "project_id", "user_id", "hostname", "locked", "config_drive", "access_ip_v4",
             "access_ip_v6", "kernel_id", "ramdisk_id", "launch_index", "root_device_name", "progress", "id",
             "memory_mb", "vcpus", "root_gb", "ephemeral_gb"}


class MarkerNotFound(Exception):
    pass


class InvalidRegex(Exception):
    """The ``name`` filter is no pattern the database's regex engine compiles (PostgreSQL's differs from Python's
    ``re``, which the API checks the pattern with, as Nova does)."""

    def __init__(self, pattern: str) -> None:
        super().__init__(pattern)
        self.pattern = pattern


#: PostgreSQL's SQLSTATE invalid_regular_expression
_INVALID_REGEX = "2201B"


@dataclasses.dataclass
class ListFilters:
    project_id: str | None = None
    include_deleted: bool = False
    only_deleted: bool = False
    name: str | None = None
    vm_states: list[str] | None = None
    task_states: list[str | None] | None = None
    changes_since: datetime.datetime | None = None
    changes_before: datetime.datetime | None = None
    image_ref: str | None = None
    flavorid: str | None = None
    host: str | None = None
    node: str | None = None
    user_id: str | None = None
    uuids: list[str] | None = None
    reservation_id: str | None = None
    availability_zone: str | None = None
    locked: bool | None = None
    key_name: str | None = None
    tags: list[str] | None = None
    tags_any: list[str] | None = None
    not_tags: list[str] | None = None
    not_tags_any: list[str] | None = None
    #: column -> pattern, matched (``re.search``) against the column's text, as Nova's regex filters
    regex: dict[str, str] = dataclasses.field(default_factory=dict)
    #: whether the rows carry ``system_metadata`` (the image properties, ``locked_reason``)
    with_system_metadata: bool = False
    #: only what an index shows (uuid, display_name and the sort keys), no metadata, tags, fault or network info:
    #: the index is what clients poll
    basic: bool = False
    sort: list[tuple[str, str]] = dataclasses.field(default_factory=lambda: [("created_at", "desc")])
    limit: int = 1000
    marker: str | None = None


#: prepared (stratus/db/prepared.py): a boot of one server is one execution each; several go through executemany
_INSERT = prepared(instances.insert())
_INSERT_SPEC = prepared(request_specs.insert())


async def create(conn: Connection, values: list[dict[str, Any]], metadata: dict[str, str],
                 specs: list[dict[str, Any]], context: dict[str, Any], tags: list[str] | None = None) -> None:
    """Write the rows of one boot request (every instance of a multi-create) in the caller's transaction."""
    now = utcnow()
    for v in values:
        v.setdefault("created_at", now)
        v.setdefault("updated_at", now)
    await conn.execute(_INSERT, values)
    uuids = [v["uuid"] for v in values]
    if metadata:
        await conn.execute(instance_metadata.insert(), [
            {"instance_uuid": u, "key": k, "value": val} for u in uuids for k, val in metadata.items()])
    if tags:
        await conn.execute(instance_tags.insert(), [{"instance_uuid": u, "tag": t} for u in uuids for t in tags])
    await conn.execute(_INSERT_SPEC, [
        {"instance_uuid": u, "spec": s, "created_at": now} for u, s in zip(uuids, specs, strict=True)])
    await info_cache.create(conn, uuids)
    await actions.action_start(conn, context, uuids, "create")


async def _attach(conn: Connection, rows: list[dict[str, Any]], with_tags: bool = True) -> list[dict[str, Any]]:
    if not rows:
        return rows
    uuids = [r["uuid"] for r in rows]
    meta: dict[str, dict[str, str]] = defaultdict(dict)
    for u, k, v in await conn.execute(select(instance_metadata.c.instance_uuid, instance_metadata.c.key,
                                             instance_metadata.c.value)
                                      .where(instance_metadata.c.instance_uuid.in_(uuids))):
        meta[u][k] = v
    tags: dict[str, list[str]] = defaultdict(list)
    if with_tags:
        for u, t in await conn.execute(select(instance_tags.c.instance_uuid, instance_tags.c.tag)
                                       .where(instance_tags.c.instance_uuid.in_(uuids))):
            tags[u].append(t)
    errored = [r["uuid"] for r in rows if r["vm_state"] == "error"]
    faults = await actions.latest_faults(conn, errored)
    caches = await info_cache.get_many(conn, uuids)
    for r in rows:
        r["network_info"] = caches.get(r["uuid"], [])
        r["metadata"] = meta.get(r["uuid"], {})
        r["tags"] = sorted(tags.get(r["uuid"], []))
        r["fault"] = faults.get(r["uuid"])
    return rows


async def get(conn: Connection, uuid: str, read_deleted: bool = False, project_id: str | None = None
              ) -> dict[str, Any] | None:
    """The instance with metadata, tags and fault; None if there is none (or, with ``project_id``, it belongs to
    another project)."""
    query = select(instances).where(instances.c.uuid == uuid)
    if project_id is not None:
        query = query.where(instances.c.project_id == project_id)
    if not read_deleted:
        query = query.where(instances.c.deleted == 0)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    return (await _attach(conn, [dict(row)]))[0]


#: built once: the services read an instance's row at every step of its life
_PLAIN = prepared(select(instances).where(instances.c.uuid == bindparam("b_uuid")))
_PLAIN_OF_PROJECT = prepared(_PLAIN.where(instances.c.project_id == bindparam("b_project")))


async def get_plain(conn: Connection, uuid: str, project_id: str | None = None) -> dict[str, Any] | None:
    """The instance row alone (no metadata, tags or fault) for the services' state machine; with ``project_id``,
    None for another project's."""
    if project_id is None:
        result = await conn.execute(_PLAIN, {"b_uuid": uuid})
    else:
        result = await conn.execute(_PLAIN_OF_PROJECT, {"b_uuid": uuid, "b_project": project_id})
    row = result.mappings().first()
    return None if row is None else dict(row)


# What a server body shows; system_metadata (image properties copied at boot) stays in the database.
_LIST_COLUMNS = [c for c in instances.c if c.name != "system_metadata"]


#: a list filter longer than this (``uuids`` of an ``ip`` filter, say) makes a page statement that is neither cached
#: nor prepared: each length is a statement of its own
_LIST_BINDS_MAX = 20


def _params(f: ListFilters) -> dict[str, Any]:
    """The values of ``f``'s filters, limit and marker (``m_<key>``, added by ``_page_statement``) by the names of
    the bind parameters ``_filtered`` and ``_page_statement`` give them: one statement serves every request of the
    same shape (``_shape``), prepared on SQLite (stratus/db/prepared.py)."""
    params: dict[str, Any] = {"f_limit": f.limit}
    for name, value in (("f_project", f.project_id), ("f_user", f.user_id), ("f_since", f.changes_since),
                        ("f_before", f.changes_before), ("f_host", f.host), ("f_node", f.node),
                        ("f_reservation", f.reservation_id), ("f_zone", f.availability_zone),
                        ("f_key", f.key_name), ("f_locked", f.locked)):
        if value is not None:
            params[name] = value
    for name, value in (("f_name", f.name), ("f_image", f.image_ref), ("f_flavor", f.flavorid)):
        if value:
            params[name] = value
    for column, pattern in f.regex.items():
        params[f"f_re_{column}"] = pattern
    for prefix, values in (("f_vm", f.vm_states), ("f_uuid", f.uuids), ("f_tag", f.tags), ("f_tany", f.tags_any),
                           ("f_ntag", f.not_tags), ("f_ntany", f.not_tags_any)):
        for i, value in enumerate(values or ()):
            params[f"{prefix}{i}"] = value
    for i, value in enumerate(t for t in f.task_states or () if t is not None):
        params[f"f_task{i}"] = value
    return params


def _shape(f: ListFilters, params: dict[str, Any], stored: bool) -> tuple[Any, ...] | None:
    """What the page statement of ``f`` is made of besides its values (the key of ``_PAGES``); None when a list
    filter is too long to be worth a statement of its own."""
    lists = (f.vm_states, f.task_states, f.uuids, f.tags, f.tags_any, f.not_tags, f.not_tags_any)
    if any(values is not None and len(values) > _LIST_BINDS_MAX for values in lists):
        return None
    return (stored, f.basic, f.with_system_metadata, f.include_deleted, f.only_deleted, tuple(f.sort),
            tuple(None if values is None else len(values) for values in lists),
            f.task_states is not None and None in f.task_states, len(set(f.not_tags or ())), tuple(params))


def _filtered(f: ListFilters, params: dict[str, Any]) -> Select[Any]:
    """The page's columns and filters, each value a bind parameter named as in ``params`` (see ``_params``)."""
    c = instances.c
    if f.basic:  # what an index shows; the sort keys order the rows without being read
        q = select(c.uuid, c.display_name)
    else:
        q = select(instances) if f.with_system_metadata else select(*_LIST_COLUMNS)
    if f.only_deleted:
        q = q.where(c.deleted != 0)
    elif not f.include_deleted:
        q = q.where(c.deleted == 0)

    def binds(prefix: str, count: int) -> list[Any]:
        return [bindparam(f"{prefix}{i}") for i in range(count)]

    for name, column in (("f_project", c.project_id), ("f_user", c.user_id), ("f_image", c.image_ref),
                         ("f_host", c.host), ("f_node", c.node), ("f_reservation", c.reservation_id),
                         ("f_zone", c.availability_zone), ("f_key", c.key_name), ("f_locked", c.locked)):
        if name in params:
            q = q.where(column == bindparam(name))
    if "f_name" in params:
        q = q.where(c.display_name.regexp_match(bindparam("f_name")))
    if f.vm_states is not None:
        q = q.where(c.vm_state.in_(binds("f_vm", len(f.vm_states))))
    if f.task_states is not None:
        cond = c.task_state.in_(binds("f_task", sum(t is not None for t in f.task_states)))
        q = q.where(or_(cond, c.task_state.is_(None)) if None in f.task_states else cond)
    if "f_since" in params:
        q = q.where(c.updated_at >= bindparam("f_since"))
    if "f_before" in params:
        q = q.where(c.updated_at <= bindparam("f_before"))
    for column in f.regex:
        q = q.where(cast(c[column], String).regexp_match(bindparam(f"f_re_{column}")))
    if "f_flavor" in params:
        q = q.where(c.flavor["flavorid"].as_string() == bindparam("f_flavor"))
    if f.uuids is not None:
        q = q.where(c.uuid.in_(binds("f_uuid", len(f.uuids))))
    t = instance_tags.c
    for tag in binds("f_tag", len(f.tags or ())):
        q = q.where(c.uuid.in_(select(t.instance_uuid).where(t.tag == tag)))
    if f.tags_any:
        q = q.where(c.uuid.in_(select(t.instance_uuid).where(t.tag.in_(binds("f_tany", len(f.tags_any))))))
    if f.not_tags:
        # excluded only when the instance has every one of these tags
        sub = select(t.instance_uuid).where(t.tag.in_(binds("f_ntag", len(f.not_tags)))).group_by(t.instance_uuid)
        sub = sub.having(func.count(t.tag.distinct()) == len(set(f.not_tags)))
        q = q.where(c.uuid.not_in(sub))
    if f.not_tags_any:
        q = q.where(c.uuid.not_in(select(t.instance_uuid).where(t.tag.in_(binds("f_ntany", len(f.not_tags_any))))))
    return q


def _sort_keys(f: ListFilters) -> list[tuple[str, str]]:
    return [(k, d) for k, d in f.sort if k != "id"] + [("id", f.sort[0][1] if f.sort else "desc")]


async def _marker_values(conn: Connection, f: ListFilters, params: dict[str, Any]) -> None:
    """The marker's sort key values into ``params`` (``m_<key>``; a NULL one has none: it changes the statement);
    ``MarkerNotFound`` if the marker is unknown (or, for a list of one project, another project's instance: a
    marker is no way to learn of those)."""
    assert f.marker is not None
    marker = await get_plain(conn, f.marker, project_id=f.project_id)
    if marker is None:
        raise MarkerNotFound(f.marker)
    for key, _ in _sort_keys(f):
        if marker[key] is not None:
            params[f"m_{key}"] = marker[key]


def _page_statement(f: ListFilters, params: dict[str, Any]) -> Select[Any]:
    """The page's query: filters, sort, the rows after the marker (its values in ``params``) and the limit."""
    q = _filtered(f, params)
    keys = _sort_keys(f)
    if f.marker is not None:
        # (k1, k2, ..., id) strictly after the marker in the chosen order
        clauses = []
        for i, (key, direction) in enumerate(keys):
            col = instances.c[key]
            eqs = [instances.c[k] == bindparam(f"m_{k}") if f"m_{k}" in params else instances.c[k].is_(None)
                   for k, _ in keys[:i]]
            if f"m_{key}" not in params:
                cmp = col.is_not(None) if direction == "asc" else None
            else:
                value = bindparam(f"m_{key}")
                cmp = col > value if direction == "asc" else or_(col < value, col.is_(None))
            if cmp is not None:
                clauses.append(and_(*eqs, cmp))
        q = q.where(or_(*clauses)) if clauses else q.where(False)
    order = [instances.c[k].asc() if d == "asc" else instances.c[k].desc() for k, d in keys]
    return q.order_by(*order).limit(bindparam("f_limit", type_=Integer))


async def _run_page(conn: Connection, f: ListFilters, q: Select[Any], params: dict[str, Any]
                    ) -> tuple[list[str], list[Any]]:
    try:
        result = await conn.execute(q, params)
        return list(result.keys()), result.all()
    except DBAPIError as exc:
        if f.name and getattr(exc.orig, "sqlstate", None) == _INVALID_REGEX:
            raise InvalidRegex(f.name) from None
        raise


#: page statements by their shape (``_shape``), prepared: a poll repeated costs its execution only, and a page of
#: another project, marker or state of the same shape runs the same statement with its own values
_PAGES: dict[tuple[Any, ...], Select[Any]] = {}
_PAGES_MAX = 256


async def _statement(conn: Connection, f: ListFilters, stored: bool) -> tuple[Select[Any], dict[str, Any]]:
    """The page's statement and its parameters."""
    params = _params(f)
    if f.marker is not None:
        await _marker_values(conn, f, params)
    key = _shape(f, params, stored)
    q = _PAGES.get(key) if key is not None else None
    if q is None:
        q = _page_statement(f, params)
        if stored:
            q = q.with_only_columns(*(_stored(c) for c in q.selected_columns), maintain_column_froms=True)
        if key is not None:
            if len(_PAGES) >= _PAGES_MAX:
                for old in _PAGES.values():
                    unprepare(old)
                _PAGES.clear()
            _PAGES[key] = prepared(q)
    return q, params


async def list_page(conn: Connection, f: ListFilters) -> list[dict[str, Any]]:
    """One page of instances, sorted, after the marker; ``MarkerNotFound`` if the marker is unknown (or, for a list
    of one project, another project's instance: a marker is no way to learn of those)."""
    keys, result = await _run_page(conn, f, *await _statement(conn, f, stored=False))
    if f.basic:  # (uuid, display_name): what the index polled every few ms shows
        return [{"uuid": uuid, "display_name": name} for uuid, name in result]
    rows = [dict(zip(keys, r, strict=True)) for r in result]  # the keys once: a row mapping asks for them each row
    return await _attach(conn, rows)


def _stored(column: Any) -> Any:
    """A column as the database stores it: JSON as its text (a CAST in SQL: PostgreSQL's driver decodes JSON
    itself), times as the driver gives them (SQLite: text), so that a row is a tuple of plain, hashable values."""
    if isinstance(column.type, JSON):
        return cast(column, Text).label(column.name)
    if isinstance(column.type, DateTime):
        return type_coerce(column, String).label(column.name)
    return column


_JSON_COLUMNS = frozenset(c.name for c in instances.c if isinstance(c.type, JSON))
_TIME_COLUMNS = frozenset(c.name for c in instances.c if isinstance(c.type, DateTime))


@dataclasses.dataclass(slots=True)
class StoredPage:
    """A page of instances as stored: each row a tuple (hashable: the key of a rendered body, see
    ``api/server_cache.py``) with what a server body shows of its metadata, tags, newest fault and network info,
    each as a hashable value too. ``instance(i)`` decodes row ``i`` into ``list_page``'s dict."""

    keys: list[str]
    rows: list[tuple[Any, ...]]
    metadata: dict[str, tuple[tuple[str, str], ...]]
    tags: dict[str, tuple[str, ...]]
    faults: dict[str, tuple[Any, ...]]
    network_info: dict[str, str | None]
    fault_keys: list[str]

    def instance(self, index: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in zip(self.keys, self.rows[index], strict=True):
            if value is not None and key in _JSON_COLUMNS:
                value = orjson.loads(value)
            elif isinstance(value, str) and key in _TIME_COLUMNS:
                value = datetime.datetime.fromisoformat(value)
            out[key] = value
        uuid = out["uuid"]
        out["metadata"] = dict(self.metadata.get(uuid, ()))
        out["tags"] = sorted(self.tags.get(uuid, ()))
        fault = self.faults.get(uuid)
        out["fault"] = None if fault is None else dict(zip(self.fault_keys, fault, strict=True))
        cached = self.network_info.get(uuid)
        out["network_info"] = list(orjson.loads(cached) or []) if cached else []
        return out


#: built once, the uuids bound at execution (a statement with a thousand literals is built and compiled each time)
_METADATA_OF = select(instance_metadata.c.instance_uuid, instance_metadata.c.key, instance_metadata.c.value).where(
    instance_metadata.c.instance_uuid.in_(bindparam("b_uuids", expanding=True)))
_TAGS_OF = select(instance_tags.c.instance_uuid, instance_tags.c.tag).where(
    instance_tags.c.instance_uuid.in_(bindparam("b_uuids", expanding=True)))


#: the SQLite twins of the page's IN statements (``InlineConnection``: SQLite's inline connection runs them)
_METADATA_OF_EACH = prepared(select(instance_metadata.c.instance_uuid, instance_metadata.c.key,
                                    instance_metadata.c.value).where(
    in_json_array(instance_metadata.c.instance_uuid)))
_TAGS_OF_EACH = prepared(select(instance_tags.c.instance_uuid, instance_tags.c.tag).where(
    in_json_array(instance_tags.c.instance_uuid)))


async def list_page_stored(conn: Connection, f: ListFilters) -> StoredPage:
    """``list_page`` with the rows as stored (see ``StoredPage``): the detail listing renders only the servers
    whose stored values changed since it last rendered them."""
    keys, result = await _run_page(conn, f, *await _statement(conn, f, stored=True))
    rows = [tuple(r) for r in result]  # plain tuples: Row's own hash and equality cost more
    page = StoredPage(keys=keys, rows=rows, metadata={}, tags={}, faults={}, network_info={}, fault_keys=[])
    if not rows:
        return page
    at_uuid, at_state = keys.index("uuid"), keys.index("vm_state")
    uuids = [r[at_uuid] for r in rows]
    meta: dict[str, list[tuple[str, str]]] = defaultdict(list)
    inline = isinstance(conn, InlineConnection)
    for u, k, v in await conn.execute(_METADATA_OF_EACH if inline else _METADATA_OF, {"b_uuids": uuids}):
        meta[u].append((k, v))
    page.metadata = {u: tuple(items) for u, items in meta.items()}
    tags: dict[str, list[str]] = defaultdict(list)
    for u, t in await conn.execute(_TAGS_OF_EACH if inline else _TAGS_OF, {"b_uuids": uuids}):
        tags[u].append(t)
    page.tags = {u: tuple(items) for u, items in tags.items()}
    errored = [r[at_uuid] for r in rows if r[at_state] == "error"]
    faults = await actions.latest_faults(conn, errored)
    if faults:
        page.fault_keys = list(next(iter(faults.values())))
        page.faults = {u: tuple(fault.values()) for u, fault in faults.items()}
    page.network_info = await info_cache.get_many_stored(conn, uuids)
    return page


def _state_in(column: Any, expected: tuple[str | None, ...]) -> Any:
    """``column`` is one of ``expected`` (None: NULL); ``=`` for a single value, which costs less than an IN."""
    named = [v for v in expected if v is not None]
    if len(named) == 1:
        cond = column == named[0]
    else:
        cond = column.in_(named)
    return or_(cond, column.is_(None)) if None in expected else cond


def _build_update(keys: tuple[str, ...], expected_task_state: tuple[str | None, ...] | None,
                  expected_vm_state: tuple[str, ...] | None, expected_host: tuple[str | None, ...] | None) -> Any:
    c = instances.c
    q = update(instances).where(c.uuid == bindparam("b_uuid"), c.deleted == 0)
    if expected_host is not None:
        named = [h for h in expected_host if h is not None]
        on = c.host.in_(bindparam("b_hosts", expanding=True)) if len(named) != 1 else c.host == bindparam("b_host")
        q = q.where(or_(on, c.host.is_(None)) if None in expected_host else on)
    if expected_task_state is not None:
        q = q.where(_state_in(c.task_state, expected_task_state))
    if expected_vm_state is not None:
        q = q.where(_state_in(c.vm_state, expected_vm_state))
    return q.values({k: bindparam(f"v_{k}") for k in keys})


#: the compare-and-swap statements by their shape (columns set, states expected, number of hosts): built once
#: each, so SQLAlchemy hashes and compiles them once; a build runs five of them per instance
_UPDATES: dict[tuple[Any, ...], Any] = {}
_UPDATES_MAX = 1024


async def update_instance(conn: Connection, uuid: str, values: dict[str, Any],
                          expected_task_state: tuple[str | None, ...] | None = None,
                          expected_vm_state: tuple[str, ...] | None = None,
                          expected_host: tuple[str | None, ...] | None = None) -> bool:
    """Apply ``values`` only if the instance is live, in the expected states and (``expected_host``, None for no
    host) on an expected host; False means it moved on."""
    result = await _swap(conn, uuid, values, expected_task_state, expected_vm_state, expected_host, False)
    return bool(result.rowcount == 1)


async def update_instance_returning(conn: Connection, uuid: str, values: dict[str, Any],
                                    expected_task_state: tuple[str | None, ...] | None = None,
                                    expected_vm_state: tuple[str, ...] | None = None,
                                    expected_host: tuple[str | None, ...] | None = None) -> dict[str, Any] | None:
    """``update_instance`` that returns the row as it is after the update (None: it moved on), in the same one
    statement (``UPDATE ... RETURNING``): a step that needs the row and moves it pays one round trip, not two."""
    row = (await _swap(conn, uuid, values, expected_task_state, expected_vm_state, expected_host,
                       True)).mappings().first()
    return None if row is None else dict(row)


async def _swap(conn: Connection, uuid: str, values: dict[str, Any],
                expected_task_state: tuple[str | None, ...] | None, expected_vm_state: tuple[str, ...] | None,
                expected_host: tuple[str | None, ...] | None, returning: bool) -> Any:
    values = {"updated_at": utcnow(), **values}
    keys = tuple(sorted(values))
    # tuples (hashable) whatever sequence the caller passed
    expected_task_state = None if expected_task_state is None else tuple(expected_task_state)
    expected_vm_state = None if expected_vm_state is None else tuple(expected_vm_state)
    named_hosts = [h for h in expected_host if h is not None] if expected_host is not None else []
    shape = (keys, expected_task_state, expected_vm_state,
             None if expected_host is None else (len(named_hosts) == 1, None in expected_host), returning)
    statement = _UPDATES.get(shape)
    if statement is None:
        if len(_UPDATES) >= _UPDATES_MAX:
            for dropped in _UPDATES.values():
                unprepare(dropped)
            _UPDATES.clear()
        statement = _build_update(keys, expected_task_state, expected_vm_state, expected_host)
        if returning:
            statement = statement.returning(*instances.c)
        _UPDATES[shape] = prepared(statement)
    params = {f"v_{k}": v for k, v in values.items()}
    params["b_uuid"] = uuid
    if expected_host is not None:
        if len(named_hosts) == 1:
            params["b_host"] = named_hosts[0]
        else:
            params["b_hosts"] = named_hosts
    return await conn.execute(statement, params)


#: built once (every delete runs them): the row marked deleted, then what goes with it
_SOFT_DELETE = prepared(update(instances).where(instances.c.uuid == bindparam("b_uuid"), instances.c.deleted == 0)
                .values(deleted=instances.c.id, deleted_at=bindparam("b_now"), updated_at=bindparam("b_now"),
                        terminated_at=bindparam("b_now"), vm_state="deleted", task_state=None, power_state=0))
_WITH_IT = (instance_metadata, instance_tags, instance_group_members)
#: which of those tables hold rows of the instance, in one statement: most servers have none, and a DELETE each
#: would be three statements
_HELD = prepared(select(*(exists().where(table.c.instance_uuid == bindparam("b_uuid")).label(table.name)
                          for table in _WITH_IT)))
_GONE_WITH_IT = [prepared(delete(table).where(table.c.instance_uuid == bindparam("b_uuid"))) for table in _WITH_IT]


async def soft_delete(conn: Connection, uuid: str) -> bool:
    """Mark deleted (kept for changes-since and instance actions); metadata, tags and group membership go with
    it."""
    result = await conn.execute(_SOFT_DELETE, {"b_uuid": uuid, "b_now": utcnow()})
    if result.rowcount:
        held = (await conn.execute(_HELD, {"b_uuid": uuid})).one()
        for statement, rows in zip(_GONE_WITH_IT, held, strict=True):
            if rows:
                await conn.execute(statement, {"b_uuid": uuid})
    return result.rowcount == 1


async def request_spec(conn: Connection, uuid: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(request_specs.c.spec).where(request_specs.c.instance_uuid == uuid))).first()
    return None if row is None else dict(row[0])


async def set_request_spec(conn: Connection, uuid: str, spec: dict[str, Any]) -> None:
    """Replace the instance's request spec (a move that changes what later schedulings ask for: the zone an
    unshelve pinned)."""
    await conn.execute(update(request_specs).where(request_specs.c.instance_uuid == uuid)
                       .values(spec=spec, updated_at=utcnow()))


async def set_metadata(conn: Connection, uuid: str, items: dict[str, str], replace: bool) -> None:
    if replace:
        await conn.execute(delete(instance_metadata).where(instance_metadata.c.instance_uuid == uuid))
    elif items:
        await conn.execute(delete(instance_metadata).where(instance_metadata.c.instance_uuid == uuid,
                                                           instance_metadata.c.key.in_(list(items))))
    if items:
        await conn.execute(instance_metadata.insert(), [
            {"instance_uuid": uuid, "key": k, "value": v} for k, v in items.items()])
    await conn.execute(update(instances).where(instances.c.uuid == uuid).values(updated_at=utcnow()))


async def delete_metadata_key(conn: Connection, uuid: str, key: str) -> bool:
    result = await conn.execute(delete(instance_metadata).where(instance_metadata.c.instance_uuid == uuid,
                                                                instance_metadata.c.key == key))
    return result.rowcount == 1


#: what of a request spec a server body shows (2.96's pinned zone, 2.100's hints): on SQLite the two values taken
#: out of the stored JSON (``json_extract`` with two paths: a JSON array of both), not the whole spec decoded per row
_SPEC_SHOWN = ("availability_zone", "scheduler_hints")
_SPECS_OF = select(request_specs.c.instance_uuid, request_specs.c.spec).where(
    request_specs.c.instance_uuid.in_(bindparam("b_uuids", expanding=True)))
_SPECS_SHOWN_EACH = prepared(select(
    request_specs.c.instance_uuid,
    func.json_extract(type_coerce(request_specs.c.spec, Text), *(f"$.{key}" for key in _SPEC_SHOWN),
                      type_=Text).label("shown")).where(in_json_array(request_specs.c.instance_uuid)))


async def request_specs_of(conn: Connection, uuids: list[str]) -> dict[str, dict[str, Any]]:
    """What server bodies show of these instances' request specs (``availability_zone``, ``scheduler_hints``), in
    one query (a page of servers shows their pinned zone and hints)."""
    if not uuids:
        return {}
    if isinstance(conn, InlineConnection):
        return {uuid: dict(zip(_SPEC_SHOWN, orjson.loads(shown) if shown else (None, None), strict=True))
                for uuid, shown in await conn.execute(_SPECS_SHOWN_EACH, {"b_uuids": uuids})}
    return {uuid: {key: spec.get(key) for key in _SPEC_SHOWN}
            for uuid, spec in await conn.execute(_SPECS_OF, {"b_uuids": uuids})}
