"""Hosts as the admin APIs show them: services and their zones, compute nodes with their usage, zones.

Every read is a fixed number of statements whatever the number of hosts: a fleet of 10,000 hosts lists in
a handful of queries, never one per row. Usage is placement's (allocations plus the reserved inventory)
and the instances table's, as Nova's resource tracker would report it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, case, delete, func, select, update

from stratus.db import placement
from stratus.db.engine import Connection
from stratus.db.models import (
    aggregate_hosts,
    aggregate_metadata,
    allocations,
    compute_nodes,
    instances,
    inventories,
    migrations,
    resource_provider_traits,
    resource_providers,
    services,
)
from stratus.utils import utcnow

COMPUTE = "nova-compute"
AZ_KEY = "availability_zone"
# Migrations that are over, as Nova counts them when it refuses to delete a busy compute service.
_MIGRATION_DONE = ("confirmed", "reverted", "error", "failed", "completed", "cancelled", "done")
# What a hypervisor shows of its compute node, and of its service under these names.
_NODE_COLUMNS = [compute_nodes.c[name] for name in (
    "id", "uuid", "service_id", "host", "hypervisor_hostname", "hypervisor_type", "hypervisor_version", "host_ip",
    "vcpus", "memory_mb", "local_gb", "cpu_info", "current_workload")]
_SERVICE_COLUMNS = [services.c.uuid.label("service_uuid"), services.c.disabled, services.c.disabled_reason,
                    services.c.forced_down, services.c.last_seen_up,
                    services.c.updated_at.label("service_updated_at"),
                    services.c.created_at.label("service_created_at")]
_USAGE = {placement.VCPU: "vcpus_used", placement.MEMORY_MB: "memory_mb_used", placement.DISK_GB: "local_gb_used"}


# --- zones -------------------------------------------------------------------------------------------------
async def host_zones(conn: Connection, default_zone: str, hosts: list[str] | None = None) -> dict[str, str]:
    """{host: availability zone} for every compute host and every host of a zone aggregate (or only ``hosts``).

    A host's zone is the ``availability_zone`` metadata of the aggregates it belongs to (several zones are
    joined with commas, as Nova shows them); a compute host in none is in ``default_zone``. Callers use
    ``.get(host, default_zone)`` for a host this does not know. Two statements whatever the number of hosts.
    """
    in_zone = (select(aggregate_hosts.c.host, aggregate_metadata.c.value)
               .join(aggregate_metadata, aggregate_metadata.c.aggregate_id == aggregate_hosts.c.aggregate_id)
               .where(aggregate_metadata.c.key == AZ_KEY))
    computes = select(services.c.host).where(services.c.binary == COMPUTE).distinct()
    if hosts is not None:
        in_zone = in_zone.where(aggregate_hosts.c.host.in_(hosts))
        computes = computes.where(services.c.host.in_(hosts))
    zones: dict[str, set[str]] = defaultdict(set)
    for host, zone in await conn.execute(in_zone):
        zones[host].add(zone)
    out = {host: ",".join(sorted(names)) for host, names in zones.items()}
    for (host,) in await conn.execute(computes):
        out.setdefault(host, default_zone)
    return out


def service_zone(service: dict[str, Any], zones: dict[str, str], default_zone: str, internal_zone: str) -> str:
    """Nova's rule: compute services are in their host's zone, every other service in the internal zone."""
    if service["topic"] == "compute":
        return zones.get(service["host"], default_zone)
    return internal_zone


# --- services ----------------------------------------------------------------------------------------------
async def list_services(conn: Connection, host: str | None = None, binary: str | None = None
                        ) -> list[dict[str, Any]]:
    query = select(services).order_by(services.c.id)
    if host:
        query = query.where(services.c.host == host)
    if binary:
        query = query.where(services.c.binary == binary)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def get_service(conn: Connection, *, service_id: int | None = None, uuid: str | None = None,
                      host: str | None = None, binary: str | None = None) -> dict[str, Any] | None:
    """One service by id, by uuid, or by (host, binary); None if there is none."""
    query = select(services)
    if service_id is not None:
        query = query.where(services.c.id == service_id)
    if uuid is not None:
        query = query.where(services.c.uuid == uuid)
    if host is not None:
        query = query.where(services.c.host == host)
    if binary is not None:
        query = query.where(services.c.binary == binary)
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def update_service(conn: Connection, service_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """Write ``values`` (disabled, disabled_reason, forced_down) and return the updated row."""
    await conn.execute(update(services).where(services.c.id == service_id).values(updated_at=utcnow(), **values))
    service = await get_service(conn, service_id=service_id)
    assert service is not None
    return service


async def count_instances_on_host(conn: Connection, host: str) -> int:
    return int((await conn.execute(select(func.count()).select_from(instances)
                                   .where(instances.c.host == host, instances.c.deleted == 0))).scalar_one())


async def has_migrations_in_progress(conn: Connection, host: str) -> bool:
    """Whether a migration not yet over has this host's nodes as its source or destination."""
    nodes = select(compute_nodes.c.hypervisor_hostname).where(compute_nodes.c.host == host)
    query = (select(migrations.c.id).where(~migrations.c.status.in_(_MIGRATION_DONE))
             .where(((migrations.c.source_compute == host) & migrations.c.source_node.in_(nodes))
                    | ((migrations.c.dest_compute == host) & migrations.c.dest_node.in_(nodes))).limit(1))
    return (await conn.execute(query)).first() is not None


async def has_done_evacuations(conn: Connection, host: str) -> bool:
    """Whether evacuations from this host are still ``done`` (the host has not restarted to clean them up)."""
    query = select(migrations.c.id).where(migrations.c.source_compute == host, migrations.c.status == "done",
                                          migrations.c.migration_type == "evacuation").limit(1)
    return (await conn.execute(query)).first() is not None


async def delete_service(conn: Connection, service: dict[str, Any]) -> None:
    """Delete a service row; for a compute service also its compute nodes, their resource providers (with
    inventories, allocations and traits) and the host's aggregate memberships."""
    if service["binary"] == COMPUTE:
        node_uuids = select(compute_nodes.c.uuid).where(compute_nodes.c.service_id == service["id"])
        provider_ids = [r[0] for r in await conn.execute(
            select(resource_providers.c.id).where(resource_providers.c.uuid.in_(node_uuids)))]
        if provider_ids:
            for table in (allocations, inventories, resource_provider_traits):
                await conn.execute(delete(table).where(table.c.resource_provider_id.in_(provider_ids)))
            await conn.execute(delete(resource_providers).where(resource_providers.c.id.in_(provider_ids)))
        await conn.execute(delete(compute_nodes).where(compute_nodes.c.service_id == service["id"]))
        await conn.execute(delete(aggregate_hosts).where(aggregate_hosts.c.host == service["host"]))
    await conn.execute(delete(services).where(services.c.id == service["id"]))


# --- compute nodes ---------------------------------------------------------------------------------------
def _nodes_query(*, node_id: int | None = None, uuid: str | None = None, pattern: str | None = None,
                 after_id: int | None = None, limit: int | None = None, enabled_only: bool = False,
                 host: str | None = None) -> Select[Any]:
    query = (select(*_NODE_COLUMNS, *_SERVICE_COLUMNS)
             .join(services, services.c.id == compute_nodes.c.service_id)
             .where(services.c.binary == COMPUTE).order_by(compute_nodes.c.id))
    if node_id is not None:
        query = query.where(compute_nodes.c.id == node_id)
    if uuid is not None:
        query = query.where(compute_nodes.c.uuid == uuid)
    if pattern is not None:
        query = query.where(compute_nodes.c.hypervisor_hostname.like(f"%{pattern}%"))
    if host is not None:
        query = query.where(compute_nodes.c.host == host)
    if after_id is not None:
        query = query.where(compute_nodes.c.id > after_id)
    if enabled_only:
        query = query.where(services.c.disabled.is_(False))
    if limit is not None:
        query = query.limit(limit)
    return query


async def find_node_id(conn: Connection, *, node_id: int | None = None, uuid: str | None = None) -> int | None:
    """The id of a compute node named by id or uuid (a paging marker), or None."""
    query = select(compute_nodes.c.id)
    query = query.where(compute_nodes.c.id == node_id) if uuid is None else query.where(compute_nodes.c.uuid == uuid)
    row = (await conn.execute(query)).first()
    return None if row is None else int(row[0])


async def compute_nodes_with_usage(conn: Connection, *, node_id: int | None = None, uuid: str | None = None,
                                   pattern: str | None = None, after_id: int | None = None,
                                   limit: int | None = None, enabled_only: bool = False,
                                   with_servers: bool = False, host: str | None = None) -> list[dict[str, Any]]:
    """Compute nodes of existing compute services, in id order, each with its service's state and its usage.

    Filters: one node by ``node_id`` or ``uuid``; the nodes of one ``host``; ``pattern`` matches part of the
    hypervisor hostname (SQL LIKE, as Nova); ``after_id``/``limit`` page; ``enabled_only`` keeps nodes of enabled
    services. Four statements for any number of nodes (five ``with_servers``): the nodes, then allocations,
    reserved inventory and instances of the same nodes, the node query reused as a subquery so no list of names is
    ever sent.

    Each node gains ``vcpus_used``, ``memory_mb_used``, ``local_gb_used`` (placement allocations plus the
    reserved amounts: Nova's resource tracker counts the host's own share as used), ``free_ram_mb``,
    ``free_disk_gb``, ``disk_available_least``, ``running_vms`` (non-deleted instances on the node) and, if
    asked, ``servers``: ``[{id, uuid}]`` of the non-deleted instances on the node's host.
    """
    page = _nodes_query(node_id=node_id, uuid=uuid, pattern=pattern, after_id=after_id, limit=limit,
                        enabled_only=enabled_only, host=host)
    result = await conn.execute(page)
    keys = list(result.keys())
    nodes = [dict(zip(keys, row, strict=True)) for row in result]
    if not nodes:
        return []
    selected = page.subquery()
    names = select(selected.c.hypervisor_hostname)

    used: dict[str, list[int]] = defaultdict(lambda: [0] * len(_USAGE))
    for table, amount in ((allocations, allocations.c.used), (inventories, inventories.c.reserved)):
        for name, *amounts in await conn.execute(_per_class(table, amount, names)):
            totals = used[name]
            for i, value in enumerate(amounts):
                totals[i] += int(value or 0)
    running: dict[str, int] = {node: int(count) for node, count in await conn.execute(
        select(instances.c.node, func.count()).where(instances.c.deleted == 0, instances.c.node.in_(names))
        .group_by(instances.c.node))}
    servers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if with_servers:
        for host, instance_id, instance_uuid in await conn.execute(
                select(instances.c.host, instances.c.id, instances.c.uuid)
                .where(instances.c.deleted == 0, instances.c.host.in_(select(selected.c.host)))
                .order_by(instances.c.id)):
            servers[host].append({"id": instance_id, "uuid": instance_uuid})

    none = [0] * len(_USAGE)
    for node in nodes:
        node.update(zip(_USAGE.values(), used.get(node["hypervisor_hostname"], none), strict=True))
        node["free_ram_mb"] = node["memory_mb"] - node["memory_mb_used"]
        node["free_disk_gb"] = node["local_gb"] - node["local_gb_used"]
        node["disk_available_least"] = node["free_disk_gb"]  # no sparse images to over-commit on
        node["running_vms"] = running.get(node["hypervisor_hostname"], 0)
        if with_servers:
            node["servers"] = servers.get(node["host"], [])
    return nodes


def _per_class(table: Table, amount: ColumnElement[Any], names: Select[Any]) -> Select[Any]:
    """One row per provider named in ``names``: its name, then the sums of ``amount`` for VCPU, MEMORY_MB and
    DISK_GB (allocations' ``used`` or inventories' ``reserved``)."""
    rc = table.c.resource_class
    return (select(resource_providers.c.name, *(func.sum(case((rc == name, amount), else_=0)) for name in _USAGE))
            .join(resource_providers, resource_providers.c.id == table.c.resource_provider_id)
            .where(resource_providers.c.name.in_(names)).group_by(resource_providers.c.name))
