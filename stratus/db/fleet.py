"""Simulated fleets written in bulk: compute services, nodes, providers, inventories, usage and zones.

Starting ten thousand fake compute agents one by one takes minutes of per-host statements; a scheduler
benchmark or a scale test needs only the rows those agents would have written. ``seed`` writes them with a
handful of multi-row statements, through the same tables and the same inventory rules as the resource
tracker, so the scheduler cannot tell the difference.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from sqlalchemy import select, update

from stratus.db import placement
from stratus.db.engine import Connection
from stratus.db.models import (
    aggregate_hosts,
    aggregate_metadata,
    aggregates,
    allocations,
    compute_nodes,
    consumers,
    inventories,
    resource_providers,
    services,
)
from stratus.utils import new_uuid, utcnow


@dataclasses.dataclass
class SimHost:
    host: str
    vcpus: int = 64
    memory_mb: int = 262144
    local_gb: int = 2048
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0
    used_vcpus: int = 0
    used_memory_mb: int = 0
    used_disk_gb: int = 0
    disabled: bool = False
    #: seconds since the last heartbeat (beyond ``service_down_time`` the host is down)
    silent_for: float = 0.0
    availability_zone: str | None = None
    aggregate_metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    hypervisor_type: str = "fake"
    supported_instances: list[list[str]] = dataclasses.field(
        default_factory=lambda: [["x86_64", "fake", "hvm"]])
    num_instances: int = 0
    io_workload: int = 0
    failed_builds: int = 0


def _chunks(rows: list[dict[str, Any]], size: int = 2000) -> list[list[dict[str, Any]]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


async def seed(conn: Connection, hosts: list[SimHost]) -> dict[str, int]:
    """Write the fleet; returns {host: provider id}. Hosts sharing an availability zone or aggregate
    metadata share one aggregate, as an operator would set them up."""
    now = utcnow()
    service_rows = [{
        "uuid": new_uuid(), "host": h.host, "binary": "nova-compute", "topic": "compute", "report_count": 0,
        "disabled": h.disabled, "disabled_reason": "simulated" if h.disabled else None, "forced_down": False,
        "last_seen_up": now - datetime.timedelta(seconds=h.silent_for), "version": 1, "created_at": now,
    } for h in hosts]
    for chunk in _chunks(service_rows):
        await conn.execute(services.insert(), chunk)
    names = [h.host for h in hosts]
    service_ids: dict[str, int] = {}
    for i in range(0, len(names), 2000):
        for row in await conn.execute(select(services.c.id, services.c.host).where(
                services.c.binary == "nova-compute", services.c.host.in_(names[i:i + 2000]))):
            service_ids[row.host] = row.id
    node_uuids = {h.host: new_uuid() for h in hosts}
    node_rows = [{
        "uuid": node_uuids[h.host], "service_id": service_ids[h.host], "host": h.host,
        "hypervisor_hostname": h.host, "hypervisor_type": h.hypervisor_type, "hypervisor_version": 1000,
        "host_ip": "127.0.0.1", "vcpus": h.vcpus, "memory_mb": h.memory_mb, "local_gb": h.local_gb,
        "cpu_info": '{"arch": "x86_64"}', "cpu_allocation_ratio": h.cpu_allocation_ratio,
        "ram_allocation_ratio": h.ram_allocation_ratio, "disk_allocation_ratio": h.disk_allocation_ratio,
        "running_vms": h.num_instances, "current_workload": h.io_workload,
        "stats": {"num_instances": h.num_instances, "io_workload": h.io_workload,
                  "failed_builds": h.failed_builds},
        "supported_instances": h.supported_instances, "created_at": now,
    } for h in hosts]
    for chunk in _chunks(node_rows):
        await conn.execute(compute_nodes.insert(), chunk)
    for chunk in _chunks([{"uuid": node_uuids[h.host], "name": h.host, "generation": 1, "created_at": now}
                          for h in hosts]):
        await conn.execute(resource_providers.insert(), chunk)
    provider_ids: dict[str, int] = {}
    for i in range(0, len(names), 2000):
        for row in await conn.execute(select(resource_providers.c.id, resource_providers.c.name)
                                      .where(resource_providers.c.name.in_(names[i:i + 2000]))):
            provider_ids[row.name] = row.id
    await conn.execute(update(resource_providers).where(resource_providers.c.root_provider_id.is_(None))
                       .values(root_provider_id=resource_providers.c.id))
    inventory_rows, consumer_rows, allocation_rows = [], [], []
    for h in hosts:
        rp = provider_ids[h.host]
        for rc, total, ratio in ((placement.VCPU, h.vcpus, h.cpu_allocation_ratio),
                                 (placement.MEMORY_MB, h.memory_mb, h.ram_allocation_ratio),
                                 (placement.DISK_GB, h.local_gb, h.disk_allocation_ratio)):
            inventory_rows.append({"resource_provider_id": rp, "resource_class": rc, "total": total, "reserved": 0,
                                   "min_unit": 1, "max_unit": total, "step_size": 1, "allocation_ratio": ratio,
                                   "created_at": now})
        used = {placement.VCPU: h.used_vcpus, placement.MEMORY_MB: h.used_memory_mb,
                placement.DISK_GB: h.used_disk_gb}
        if any(used.values()):
            consumer = new_uuid()
            consumer_rows.append({"uuid": consumer, "project_id": "simulated", "user_id": "simulated",
                                  "consumer_type": "INSTANCE", "generation": 0, "created_at": now})
            allocation_rows.extend({"resource_provider_id": rp, "consumer_id": consumer, "resource_class": rc,
                                    "used": amount, "created_at": now} for rc, amount in used.items() if amount)
    for table, rows in ((inventories, inventory_rows), (consumers, consumer_rows), (allocations, allocation_rows)):
        for chunk in _chunks(rows):
            await conn.execute(table.insert(), chunk)
    await _seed_aggregates(conn, hosts, now)
    return provider_ids


async def _seed_aggregates(conn: Connection, hosts: list[SimHost], now: datetime.datetime) -> None:
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for h in hosts:
        metadata = dict(h.aggregate_metadata)
        if h.availability_zone:
            metadata["availability_zone"] = h.availability_zone
        if metadata:
            groups.setdefault(tuple(sorted(metadata.items())), []).append(h.host)
    for n, (metadata_items, members) in enumerate(groups.items()):
        result = await conn.execute(aggregates.insert().values(uuid=new_uuid(), name=f"sim-aggregate-{n}",
                                                               created_at=now))
        agg_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        await conn.execute(aggregate_metadata.insert(), [{"aggregate_id": agg_id, "key": k, "value": v}
                                                         for k, v in metadata_items])
        for chunk in _chunks([{"aggregate_id": agg_id, "host": host} for host in members]):
            await conn.execute(aggregate_hosts.insert(), chunk)
