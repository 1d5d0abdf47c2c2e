"""Instance actions (one per user request), their events (one per step per attempt), and faults."""

from __future__ import annotations

import traceback as tb
from typing import Any

from sqlalchemy import select, update

from stratus.db.engine import Connection
from stratus.db.models import instance_actions, instance_actions_events, instance_faults
from stratus.utils import utcnow


async def action_start(conn: Connection, context: dict[str, Any], instance_uuids: list[str], action: str
                       ) -> None:
    now = utcnow()
    await conn.execute(instance_actions.insert(), [
        {"action": action, "instance_uuid": u, "request_id": context["request_id"], "user_id": context["user_id"],
         "project_id": context["project_id"], "start_time": now, "created_at": now} for u in instance_uuids])


async def _action_id(conn: Connection, instance_uuid: str, request_id: str) -> int | None:
    row = (await conn.execute(select(instance_actions.c.id).where(
        instance_actions.c.instance_uuid == instance_uuid, instance_actions.c.request_id == request_id)
        .order_by(instance_actions.c.id.desc()).limit(1))).first()
    return None if row is None else int(row[0])


async def event_start(conn: Connection, context: dict[str, Any], instance_uuid: str, event: str,
                      host: str | None = None) -> None:
    action_id = await _action_id(conn, instance_uuid, context["request_id"])
    if action_id is not None:
        await conn.execute(instance_actions_events.insert().values(action_id=action_id, event=event, host=host,
                                                                   start_time=utcnow()))


async def event_finish(conn: Connection, context: dict[str, Any], instance_uuid: str, event: str,
                       error: BaseException | None = None) -> None:
    """Close the newest open event of that name; an error makes it 'Error' with the traceback, as in Nova."""
    action_id = await _action_id(conn, instance_uuid, context["request_id"])
    if action_id is None:
        return
    row = (await conn.execute(select(instance_actions_events.c.id).where(
        instance_actions_events.c.action_id == action_id, instance_actions_events.c.event == event,
        instance_actions_events.c.finish_time.is_(None)).order_by(instance_actions_events.c.id.desc()).limit(1))
           ).first()
    if row is None:
        return
    values: dict[str, Any] = {"finish_time": utcnow(), "result": "Success"}
    if error is not None:
        values["result"] = "Error"
        values["traceback"] = "".join(tb.format_exception(error))
        values["details"] = str(error)[:255]
    await conn.execute(update(instance_actions_events).where(instance_actions_events.c.id == row[0]).values(values))
    if error is not None:
        await conn.execute(update(instance_actions).where(instance_actions.c.id == action_id)
                           .values(message="Error", updated_at=utcnow()))


async def add_fault(conn: Connection, instance_uuid: str, error: BaseException, host: str | None = None,
                    code: int | None = None, details: str | None = None) -> None:
    """Record why an instance failed: message for its owner; details (the traceback, or the underlying
    error given) for admins."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    await conn.execute(instance_faults.insert().values(
        instance_uuid=instance_uuid, code=code or getattr(error, "code", 500) or 500, message=message[:255],
        details=details if details is not None else "".join(tb.format_exception(error)), host=host,
        created_at=utcnow()))


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
