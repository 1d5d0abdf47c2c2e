"""Services (one row per binary per host) and compute nodes: registration and heartbeats."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import select, update

from stratus.db.engine import Connection
from stratus.db.models import compute_nodes, services
from stratus.utils import new_uuid, utcnow


async def register(conn: Connection, host: str, binary: str, topic: str) -> dict[str, Any]:
    """The service row for (host, binary), created on first start; a restart keeps disabled state."""
    row = (await conn.execute(select(services).where(services.c.host == host, services.c.binary == binary))
           ).mappings().first()
    now = utcnow()
    if row is None:
        await conn.execute(services.insert().values(uuid=new_uuid(), host=host, binary=binary, topic=topic,
                                                    report_count=0, disabled=False, forced_down=False,
                                                    last_seen_up=now, version=1, created_at=now))
        row = (await conn.execute(select(services).where(services.c.host == host, services.c.binary == binary))
               ).mappings().one()
    else:
        await conn.execute(update(services).where(services.c.id == row["id"]).values(last_seen_up=now,
                                                                                    updated_at=now))
    return dict(row)


async def heartbeat(conn: Connection, service_ids: list[int]) -> None:
    """One statement for every service this process runs (a simulated fleet beats in one write)."""
    now = utcnow()
    await conn.execute(update(services).where(services.c.id.in_(service_ids))
                       .values(last_seen_up=now, updated_at=now, report_count=services.c.report_count + 1))


def is_up(row: dict[str, Any], service_down_time: int, now: datetime.datetime | None = None) -> bool:
    if row.get("forced_down"):
        return False
    last = row.get("last_seen_up") or row.get("updated_at") or row.get("created_at")
    if last is None:
        return False
    return ((now or utcnow()) - last).total_seconds() <= service_down_time


async def upsert_compute_node(conn: Connection, service_id: int, host: str, values: dict[str, Any]
                              ) -> dict[str, Any]:
    """The compute node row for a hypervisor node, created or refreshed from the driver's report."""
    name = values["hypervisor_hostname"]
    row = (await conn.execute(select(compute_nodes).where(compute_nodes.c.hypervisor_hostname == name))
           ).mappings().first()
    now = utcnow()
    if row is None:
        await conn.execute(compute_nodes.insert().values(uuid=new_uuid(), service_id=service_id, host=host,
                                                         created_at=now, **values))
    elif row["service_id"] != service_id or row["host"] != host or any(row[k] != v for k, v in values.items()):
        # only a real change is written: schedulers re-read nodes whose updated_at moved
        await conn.execute(update(compute_nodes).where(compute_nodes.c.id == row["id"])
                           .values(service_id=service_id, host=host, updated_at=now, **values))
    else:
        return dict(row)
    return dict((await conn.execute(select(compute_nodes).where(compute_nodes.c.hypervisor_hostname == name))
                 ).mappings().one())


async def list_compute_services(conn: Connection) -> list[dict[str, Any]]:
    rows = await conn.execute(select(services).where(services.c.binary == "nova-compute"))
    return [dict(r) for r in rows.mappings()]


async def auto_disable(conn: Connection, service_id: int, reason: str) -> bool:
    """Disable a service that is enabled (an operator's own disable, and its reason, are left alone)."""
    result = await conn.execute(update(services).where(services.c.id == service_id, services.c.disabled.is_(False))
                                .values(disabled=True, disabled_reason=reason, updated_at=utcnow()))
    return bool(result.rowcount)


async def auto_enable(conn: Connection, service_id: int, prefix: str) -> bool:
    """Enable a service that disabled itself (its reason starts with ``prefix``, as Nova's ``AUTO: ``); an
    operator's disable, and any other automatic one, stay."""
    result = await conn.execute(update(services).where(services.c.id == service_id, services.c.disabled.is_(True),
                                                       services.c.disabled_reason.startswith(prefix, autoescape=True))
                                .values(disabled=False, disabled_reason=None, updated_at=utcnow()))
    return bool(result.rowcount)
