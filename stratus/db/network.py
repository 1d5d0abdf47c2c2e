"""Queries of the embedded Networking API: plain async functions over one connection.

Rows come back as dicts with their ``attributes`` JSON merged in, so the resource modules see one flat record.
IP addresses are allocated by inserting ``ip_allocations`` rows, whose primary key (network, address) makes a
concurrent duplicate fail in the database (IntegrityError), whatever the engine's isolation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, delete, func, insert, or_, select, update

from stratus.db.engine import Connection
from stratus.db.models import (
    auto_allocated_topologies,
    default_security_groups,
    floatingips,
    ip_allocations,
    network_agents,
    network_quotas,
    networks,
    port_security_groups,
    ports,
    routers,
    security_group_rules,
    security_groups,
    subnets,
)

TABLES: dict[str, Table] = {"network": networks, "subnet": subnets, "port": ports,
                            "security_group": security_groups, "security_group_rule": security_group_rules,
                            "router": routers, "floatingip": floatingips}


def _record(table: Table, row: Any) -> dict[str, Any]:
    record = dict(row._mapping)
    record.update(record.pop("attributes", None) or {})
    return record


def split(table: Table, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as column values: what is not a column of ``table`` goes to its ``attributes``."""
    columns = {k: v for k, v in record.items() if k in table.c}
    columns["attributes"] = {k: v for k, v in record.items() if k not in table.c}
    return columns


async def get(conn: Connection, kind: str, id_: str, for_update: bool = False) -> dict[str, Any] | None:
    table = TABLES[kind]
    query = select(table).where(table.c.id == id_)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else _record(table, row)


async def find(conn: Connection, kind: str, **equals: Any) -> list[dict[str, Any]]:
    """Rows of ``kind`` whose columns equal ``equals`` (a list or tuple value: any of them)."""
    table = TABLES[kind]
    query = select(table)
    for column, value in equals.items():
        query = query.where(table.c[column].in_(value) if isinstance(value, (list, tuple, set))
                            else table.c[column] == value)
    return [_record(table, row) for row in await conn.execute(query.order_by(table.c.created_at, table.c.id))]


async def visible_networks(conn: Connection, project_id: str | None) -> list[dict[str, Any]]:
    """Networks a project may see (its own, shared and external ones); every network for ``None`` (an admin)."""
    query = select(networks)
    if project_id is not None:
        query = query.where(or_(networks.c.project_id == project_id, networks.c.shared.is_(True),
                                networks.c.external.is_(True)))
    return [_record(networks, row) for row in await conn.execute(query.order_by(networks.c.created_at))]


async def insert_record(conn: Connection, kind: str, record: dict[str, Any]) -> None:
    table = TABLES[kind]
    await conn.execute(insert(table).values(**split(table, record)))


async def update_record(conn: Connection, kind: str, record: dict[str, Any]) -> None:
    table = TABLES[kind]
    values = split(table, record)
    await conn.execute(update(table).where(table.c.id == record["id"]).values(**values))


async def delete_record(conn: Connection, kind: str, id_: str) -> None:
    table = TABLES[kind]
    await conn.execute(delete(table).where(table.c.id == id_))


async def segmentation_ids(conn: Connection, network_type: str, physical_network: str = "") -> set[int]:
    rows = await conn.execute(select(networks.c.segmentation_id).where(
        networks.c.network_type == network_type, networks.c.physical_network == physical_network,
        networks.c.segmentation_id.is_not(None)))
    return {int(r[0]) for r in rows}


# --- addresses ---------------------------------------------------------------------------------------------------
async def allocations(conn: Connection, *, network_id: str | None = None, subnet_ids: Sequence[str] = (),
                      port_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
    query = select(ip_allocations)
    if network_id is not None:
        query = query.where(ip_allocations.c.network_id == network_id)
    if subnet_ids:
        query = query.where(ip_allocations.c.subnet_id.in_(subnet_ids))
    if port_ids:
        query = query.where(ip_allocations.c.port_id.in_(port_ids))
    return [dict(r._mapping) for r in await conn.execute(query)]


async def allocated_in(conn: Connection, subnet_id: str) -> set[str]:
    rows = await conn.execute(select(ip_allocations.c.ip_address).where(ip_allocations.c.subnet_id == subnet_id))
    return {r[0] for r in rows}


async def count_allocated(conn: Connection, subnet_ids: Iterable[str]) -> dict[str, int]:
    rows = await conn.execute(select(ip_allocations.c.subnet_id, func.count()).where(
        ip_allocations.c.subnet_id.in_(list(subnet_ids))).group_by(ip_allocations.c.subnet_id))
    return {r[0]: int(r[1]) for r in rows}


async def allocate(conn: Connection, network_id: str, port_id: str, subnet_id: str, ip_address: str) -> None:
    """One address for a port; an IntegrityError if it is taken (by a concurrent transaction too)."""
    await conn.execute(insert(ip_allocations).values(network_id=network_id, ip_address=ip_address,
                                                     subnet_id=subnet_id, port_id=port_id))


async def release(conn: Connection, port_id: str, pairs: Iterable[tuple[str, str]] | None = None) -> None:
    """The port's addresses (only those of ``pairs`` (subnet_id, ip_address) when given)."""
    if pairs is None:
        await conn.execute(delete(ip_allocations).where(ip_allocations.c.port_id == port_id))
        return
    for subnet_id, ip_address in pairs:
        await conn.execute(delete(ip_allocations).where(
            ip_allocations.c.port_id == port_id, ip_allocations.c.subnet_id == subnet_id,
            ip_allocations.c.ip_address == ip_address))


# --- agents ------------------------------------------------------------------------------------------------------
async def agents(conn: Connection, **equals: Any) -> list[dict[str, Any]]:
    query = select(network_agents)
    for column, value in equals.items():
        query = query.where(network_agents.c[column] == value)
    rows = await conn.execute(query.order_by(network_agents.c.host, network_agents.c.agent_type))
    return [dict(r._mapping) for r in rows]


async def report_state(conn: Connection, values: dict[str, Any]) -> bool:
    """Insert the agent or beat its heartbeat; True when it was new (or restarted: ``start_flag``)."""
    now = values["heartbeat_timestamp"]
    found = (await conn.execute(select(network_agents.c.id).where(
        network_agents.c.agent_type == values["agent_type"], network_agents.c.host == values["host"]))).first()
    if found is None:
        await conn.execute(insert(network_agents).values(**{"started_at": now, **values, "created_at": now}))
        return True
    changes = {k: values[k] for k in ("binary", "topic", "configurations", "availability_zone",
                                      "heartbeat_timestamp")}
    if values.get("started_at"):
        changes["started_at"] = values["started_at"]
    await conn.execute(update(network_agents).where(network_agents.c.id == found[0]).values(**changes))
    return False


async def update_agent(conn: Connection, agent_id: str, values: dict[str, Any]) -> None:
    await conn.execute(update(network_agents).where(network_agents.c.id == agent_id).values(**values))


async def delete_agent(conn: Connection, agent_id: str) -> None:
    await conn.execute(delete(network_agents).where(network_agents.c.id == agent_id))


# --- security groups ---------------------------------------------------------------------------------------------
async def default_group_of(conn: Connection, project_id: str) -> str | None:
    row = (await conn.execute(select(default_security_groups.c.security_group_id).where(
        default_security_groups.c.project_id == project_id))).first()
    return None if row is None else str(row[0])


async def set_default_group(conn: Connection, project_id: str, group_id: str) -> None:
    """An IntegrityError when the project has one already (made by a concurrent first use)."""
    await conn.execute(insert(default_security_groups).values(project_id=project_id, security_group_id=group_id))


async def default_group_ids(conn: Connection) -> set[str]:
    return {r[0] for r in await conn.execute(select(default_security_groups.c.security_group_id))}


# --- floating IPs --------------------------------------------------------------------------------------------------
async def disassociate_floating_ips(conn: Connection, port_id: str) -> list[str]:
    """Floating IPs of a port that goes away are kept, unassociated (Neutron's disassociate on port delete);
    the routers that held them."""
    held = await find(conn, "floatingip", fixed_port_id=port_id)
    router_ids = sorted({f["router_id"] for f in held if f["router_id"]})
    for fip in held:
        fip.update(fixed_port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")
        await update_record(conn, "floatingip", fip)
    return router_ids


# --- quotas ------------------------------------------------------------------------------------------------------
async def count(conn: Connection, kind: str, project_id: str) -> int:
    table = TABLES[kind]
    return int((await conn.execute(select(func.count()).select_from(table).where(
        table.c.project_id == project_id))).scalar_one())


async def quotas_of(conn: Connection, project_id: str | None = None) -> dict[str, dict[str, int]]:
    """{project_id: {resource: limit}} of the limits set (one project's, or every project's)."""
    query = select(network_quotas)
    if project_id is not None:
        query = query.where(network_quotas.c.project_id == project_id)
    found: dict[str, dict[str, int]] = {}
    for row in await conn.execute(query):
        found.setdefault(row.project_id, {})[row.resource] = int(row.limit)
    return found


async def set_quota(conn: Connection, project_id: str, resource: str, limit: int) -> None:
    await conn.execute(delete(network_quotas).where(network_quotas.c.project_id == project_id,
                                                    network_quotas.c.resource == resource))
    await conn.execute(insert(network_quotas).values(project_id=project_id, resource=resource, limit=limit))


async def delete_quotas(conn: Connection, project_id: str) -> None:
    await conn.execute(delete(network_quotas).where(network_quotas.c.project_id == project_id))


# --- auto-allocated topologies -----------------------------------------------------------------------------------
async def topology_of(conn: Connection, project_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(auto_allocated_topologies).where(
        auto_allocated_topologies.c.project_id == project_id))).first()
    return None if row is None else dict(row._mapping)


async def save_topology(conn: Connection, project_id: str, network_id: str, router_id: str) -> None:
    """An IntegrityError when a concurrent request saved the project's first."""
    await conn.execute(insert(auto_allocated_topologies).values(project_id=project_id, network_id=network_id,
                                                                router_id=router_id))


async def delete_topology(conn: Connection, project_id: str) -> None:
    await conn.execute(delete(auto_allocated_topologies).where(auto_allocated_topologies.c.project_id == project_id))


# --- ports' security groups --------------------------------------------------------------------------------------
async def set_port_groups(conn: Connection, port_id: str, group_ids: Sequence[str]) -> None:
    await conn.execute(delete(port_security_groups).where(port_security_groups.c.port_id == port_id))
    for group_id in dict.fromkeys(group_ids):
        await conn.execute(insert(port_security_groups).values(port_id=port_id, security_group_id=group_id))


async def ports_in_groups(conn: Connection, group_ids: Sequence[str]) -> dict[str, set[str]]:
    """{port_id: the groups of ``group_ids`` it is in}."""
    if not group_ids:
        return {}
    rows = await conn.execute(select(port_security_groups).where(
        port_security_groups.c.security_group_id.in_(list(group_ids))))
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row.port_id, set()).add(row.security_group_id)
    return found
