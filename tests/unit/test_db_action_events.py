"""Instance action events as written to a real SQLite database: each start and finish is one statement that finds
its action itself, so these pin what the statements must find (the newest action of the request, the newest open
event of the name) and what they must leave alone."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from stratus.db import actions
from stratus.db.engine import Database
from stratus.db.models import instance_actions, instance_actions_events

UUID = "11111111-2222-3333-4444-555555555555"
CTX = {"request_id": "req-1", "user_id": "u", "project_id": "p"}


async def _events(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = await conn.execute(select(instance_actions_events).order_by(instance_actions_events.c.id))
        return [dict(r) for r in rows.mappings()]


async def test_start_and_finish_on_the_newest_action_of_the_request(db: Database) -> None:
    async with db.write() as conn:
        await actions.action_start(conn, CTX, [UUID], "create")
        await actions.action_start(conn, {**CTX, "request_id": "req-2"}, [UUID], "reboot")
        await actions.action_start(conn, CTX, [UUID], "create")  # the newest of req-1
        await actions.event_start(conn, CTX, UUID, "build", host="h1")
    async with db.read() as conn:
        ids = [r.id for r in await conn.execute(select(instance_actions.c.id).order_by(instance_actions.c.id))]
    (event,) = await _events(db)
    assert (event["action_id"], event["event"], event["host"], event["finish_time"]) == (ids[2], "build", "h1",
                                                                                          None)
    async with db.write() as conn:
        await actions.event_finish(conn, CTX, UUID, "build")
    (event,) = await _events(db)
    assert event["result"] == "Success" and event["finish_time"] is not None and event["traceback"] is None


async def test_finish_closes_only_the_newest_open_event_of_that_name(db: Database) -> None:
    async with db.write() as conn:
        await actions.action_start(conn, CTX, [UUID], "create")
        await actions.event_start(conn, CTX, UUID, "build", host="h1")
        await actions.event_finish(conn, CTX, UUID, "build", error=RuntimeError("host h1 broke"))
        await actions.event_start(conn, CTX, UUID, "build", host="h2")
        await actions.event_start(conn, CTX, UUID, "schedule")
        await actions.event_finish(conn, CTX, UUID, "build")
    first, second, other = await _events(db)
    assert (first["host"], first["result"], first["details"]) == ("h1", "Error", "host h1 broke")
    assert "RuntimeError: host h1 broke" in first["traceback"]
    assert (second["host"], second["result"]) == ("h2", "Success")
    assert other["finish_time"] is None and other["result"] is None
    async with db.read() as conn:
        (message,) = (await conn.execute(select(instance_actions.c.message))).one()
    assert message == "Error"


async def test_no_action_of_the_request_writes_nothing(db: Database) -> None:
    async with db.write() as conn:
        await actions.action_start(conn, CTX, [UUID], "create")
        await actions.event_start(conn, {**CTX, "request_id": "req-other"}, UUID, "build")
        await actions.event_start(conn, CTX, "another-instance", "build")
        await actions.event_finish(conn, CTX, UUID, "build", error=RuntimeError("nothing open"))
    assert await _events(db) == []
    async with db.read() as conn:
        (message,) = (await conn.execute(select(instance_actions.c.message))).one()
    assert message is None
