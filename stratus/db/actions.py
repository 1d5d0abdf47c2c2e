"""Instance actions (one per user request), their events (one per step per attempt), and faults."""

from __future__ import annotations

import datetime
import traceback as tb
from typing import Any

from sqlalchemy import DateTime, String, and_, bindparam, case, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from stratus.db.engine import Connection
from stratus.db.models import instance_actions, instance_actions_events, instance_faults
from stratus.db.prepared import prepared
from stratus.utils import utcnow

#: Nova's size of a fault's ``message`` and of an action event's ``details`` (``String(255)`` columns)
MESSAGE_LENGTH = 255
ELLIPSIS = "..."


#: built once (every action of the API writes it)
_ACTION_START = prepared(instance_actions.insert())


async def action_start(conn: Connection, context: dict[str, Any], instance_uuids: list[str], action: str
                       ) -> None:
    if not instance_uuids:
        return
    now = utcnow()
    rows = [{"action": action, "instance_uuid": u, "request_id": context["request_id"],
             "user_id": context["user_id"], "project_id": context["project_id"], "start_time": now, "created_at": now}
            for u in instance_uuids]
    # one row as a single execution: executemany's path through SQLAlchemy costs more for a single row
    await conn.execute(_ACTION_START, rows[0] if len(rows) == 1 else rows)


def _newest_action_id() -> Any:
    """The id of the instance's newest action of the request (bound ``b_uuid`` and ``b_request_id``), as a subquery:
    every event statement below finds its action inside the statement, not with a round trip of its own."""
    a = instance_actions.c
    return (select(a.id).where(a.instance_uuid == bindparam("b_uuid"), a.request_id == bindparam("b_request_id"))
            .order_by(a.id.desc()).limit(1).scalar_subquery())


def _open_event_id() -> Any:
    """The newest open event (bound ``b_event``) of that action."""
    e = instance_actions_events.c
    return (select(e.id).where(e.action_id == _newest_action_id(), e.event == bindparam("b_event"),
                               e.finish_time.is_(None)).order_by(e.id.desc()).limit(1).scalar_subquery())


# Built once: a statement object SQLAlchemy has seen keeps its cache key, so each use costs only the execution
# (these run several times per build, and building and hashing them again cost more than running them).
_EVENT_START = prepared(instance_actions_events.insert().from_select(
    ["action_id", "event", "host", "start_time"],
    select(instance_actions.c.id, bindparam("b_event", type_=String), bindparam("b_host", type_=String),
           bindparam("b_start_time", type_=DateTime))
    .where(instance_actions.c.instance_uuid == bindparam("b_uuid"),
           instance_actions.c.request_id == bindparam("b_request_id"))
    .order_by(instance_actions.c.id.desc()).limit(1)))
_EVENT_FINISH = prepared(update(instance_actions_events).where(instance_actions_events.c.id == _open_event_id())
                 .values(finish_time=bindparam("b_finish_time"), result=bindparam("b_result")))
_EVENT_FAIL = prepared(update(instance_actions_events).where(instance_actions_events.c.id == _open_event_id())
               .values(finish_time=bindparam("b_finish_time"), result=bindparam("b_result"),
                       traceback=bindparam("b_traceback"), details=bindparam("b_details")))
_ACTION_ERROR = prepared(update(instance_actions).where(instance_actions.c.id == _newest_action_id())
                 .values(message="Error", updated_at=bindparam("b_updated_at")))


async def event_start(conn: Connection, context: dict[str, Any], instance_uuid: str, event: str,
                      host: str | None = None) -> None:
    """Open an event on the request's action of the instance, in one statement (none if it has no such action)."""
    await conn.execute(_EVENT_START, {"b_uuid": instance_uuid, "b_request_id": context["request_id"], "b_event": event,
                                      "b_host": host, "b_start_time": utcnow()})


async def event_finish(conn: Connection, context: dict[str, Any], instance_uuid: str, event: str,
                       error: BaseException | None = None) -> None:
    """Close the newest open event of that name; an error makes it 'Error' with the traceback, as in Nova."""
    params: dict[str, Any] = {"b_uuid": instance_uuid, "b_request_id": context["request_id"], "b_event": event,
                              "b_finish_time": utcnow(), "b_result": "Success"}
    if error is None:
        await conn.execute(_EVENT_FINISH, params)
        return
    params.update(b_result="Error", b_traceback="".join(tb.format_exception(error)),
                  b_details=short_message(error_message(error)))
    if (await conn.execute(_EVENT_FAIL, params)).rowcount:
        await conn.execute(_ACTION_ERROR, {"b_uuid": instance_uuid, "b_request_id": context["request_id"],
                                           "b_updated_at": utcnow()})


def error_message(error: BaseException) -> str:
    """An error's whole message, as Nova's ``exception_to_dict`` takes it: its own message, else its class name."""
    return getattr(error, "message", None) or str(error) or type(error).__name__


def short_message(text: str, limit: int = MESSAGE_LENGTH) -> str:
    """``text`` as it fits a ``message`` column of ``limit`` characters. Messages say their cause first, so a
    long one keeps its start, cut at a word boundary (unless that loses more than half) and ending in ``...``
    to show it goes on; whoever writes it keeps the whole text elsewhere (a fault's details)."""
    if len(text) <= limit:
        return text
    head = text[:limit - len(ELLIPSIS)]
    space = head.rfind(" ")
    if space >= limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:") + ELLIPSIS


def fault_details(error: BaseException, code: int, details: str | None = None) -> str:
    """A fault's ``details`` (shown to admins, and to everyone when the code is not 500, as Nova's view does):
    the whole message when ``message`` had to be cut, what the error tells beyond its message, then
    ``details`` if given, else the traceback, which Nova writes for code 500 only."""
    message = error_message(error)
    parts = [message] if len(message) > MESSAGE_LENGTH else []
    extra = getattr(error, "details", None)  # a StratusException's; other errors have none
    if extra:
        parts.append(str(extra))
    if details is not None:
        parts.append(details)
    elif code == 500:
        parts.append("".join(tb.format_exception(error)))
    return "\n\n".join(p for p in parts if p)


async def add_fault(conn: Connection, instance_uuid: str, error: BaseException, host: str | None = None,
                    code: int | None = None, details: str | None = None) -> None:
    """Record why an instance failed: the cause in ``message`` for its owner (at most 255 characters, see
    ``short_message``), the rest in ``details`` (see ``fault_details``)."""
    code = code or getattr(error, "code", 500) or 500
    await conn.execute(instance_faults.insert().values(
        instance_uuid=instance_uuid, code=code, message=short_message(error_message(error)),
        details=fault_details(error, code, details), host=host, created_at=utcnow()))


async def latest_faults(conn: Connection, instance_uuids: list[str]) -> dict[str, dict[str, Any]]:
    """The newest fault of each instance, in one query."""
    if not instance_uuids:
        return {}
    out: dict[str, dict[str, Any]] = {}
    rows = await conn.execute(select(instance_faults).where(instance_faults.c.instance_uuid.in_(instance_uuids))
                              .order_by(instance_faults.c.id))
    for r in rows.mappings():
        out[r["instance_uuid"]] = dict(r)
    return out


# --- reads for the os-instance-actions API ---------------------------------------------------------------
class MarkerNotFound(Exception):
    """The ``marker`` request id names no action of the instance."""


def _later(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    """The later of two times, either possibly NULL (GREATEST ignoring NULLs, on SQLite and PostgreSQL alike)."""
    return case((or_(b.is_(None), a >= b), a), else_=b)


def _actions_query(instance_uuid: str) -> tuple[Any, ColumnElement[Any]]:
    """The instance's actions, each with Nova's ``updated_at``: the last time the action or one of its events
    started or finished. Nova's writers store that on the action row; here it is derived from the events, so
    rows written without it read the same."""
    acts, evs = instance_actions, instance_actions_events
    times = (select(evs.c.action_id, func.max(evs.c.start_time).label("started"),
                    func.max(evs.c.finish_time).label("finished"))
             .where(evs.c.action_id.in_(select(acts.c.id).where(acts.c.instance_uuid == instance_uuid)))
             .group_by(evs.c.action_id).subquery())
    updated_at = _later(_later(acts.c.start_time, acts.c.updated_at), _later(times.c.started, times.c.finished))
    columns = [c for c in acts.c if c.name != "updated_at"]
    return (select(*columns, updated_at.label("updated_at"))
            .select_from(acts.outerjoin(times, times.c.action_id == acts.c.id))
            .where(acts.c.instance_uuid == instance_uuid)), updated_at


async def list_actions(conn: Connection, instance_uuid: str, limit: int | None = None, marker: str | None = None,
                       changes_since: datetime.datetime | None = None,
                       changes_before: datetime.datetime | None = None) -> list[dict[str, Any]]:
    """The instance's actions newest first (``created_at``, then ``id``, descending, as Nova sorts them): those
    after the action whose request id is ``marker`` (``MarkerNotFound`` if none), updated at or after
    ``changes_since`` and at or before ``changes_before``, at most ``limit``."""
    if limit == 0:
        return []
    acts = instance_actions
    query, updated_at = _actions_query(instance_uuid)
    if changes_since is not None:
        query = query.where(updated_at >= changes_since)
    if changes_before is not None:
        query = query.where(updated_at <= changes_before)
    if marker is not None:
        row = (await conn.execute(select(acts.c.id, acts.c.created_at).where(
            acts.c.instance_uuid == instance_uuid, acts.c.request_id == marker)
            .order_by(acts.c.created_at.desc(), acts.c.id.desc()).limit(1))).first()
        if row is None:
            raise MarkerNotFound(marker)
        query = query.where(or_(acts.c.created_at < row.created_at,
                                and_(acts.c.created_at == row.created_at, acts.c.id < row.id)))
    query = query.order_by(acts.c.created_at.desc(), acts.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_action(conn: Connection, instance_uuid: str, request_id: str) -> dict[str, Any] | None:
    """The instance's action of that request (the newest, should a request id repeat), or None."""
    acts = instance_actions
    query, _ = _actions_query(instance_uuid)
    row = (await conn.execute(query.where(acts.c.request_id == request_id)
                              .order_by(acts.c.created_at.desc(), acts.c.id.desc()).limit(1))).mappings().first()
    return None if row is None else dict(row)


async def list_events(conn: Connection, action_id: int) -> list[dict[str, Any]]:
    """An action's events, newest first, as Nova lists them."""
    evs = instance_actions_events
    rows = await conn.execute(select(evs).where(evs.c.action_id == action_id).order_by(evs.c.id.desc()))
    return [dict(r) for r in rows.mappings()]
