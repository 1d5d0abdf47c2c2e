"""The resource tracker: reports what the hypervisor has to placement (inventory), level-triggered.

Usage is not counted here: allocations in placement are the truth, written by the scheduler's claims.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg
from sqlalchemy import bindparam, func, select, update

from stratus.db import placement
from stratus.db import services as services_db
from stratus.db.engine import Connection
from stratus.db.models import compute_nodes, instances
from stratus.db.prepared import prepared
from stratus.utils import utcnow
from stratus.virt.driver import HostResources


def inventory(conf: cfg.ConfigOpts, node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Inventory of one node with the configured allocation ratios and reservations."""
    return {
        placement.VCPU: {"total": node["vcpus"], "reserved": conf.reserved_host_cpus,
                         "max_unit": node["vcpus"], "allocation_ratio": conf.cpu_allocation_ratio},
        placement.MEMORY_MB: {"total": node["memory_mb"], "reserved": conf.reserved_host_memory_mb,
                              "max_unit": node["memory_mb"], "allocation_ratio": conf.ram_allocation_ratio},
        placement.DISK_GB: {"total": node["local_gb"], "reserved": -(-conf.reserved_host_disk_mb // 1024),
                            "max_unit": node["local_gb"], "allocation_ratio": conf.disk_allocation_ratio},
    }


IO_TASK_STATES = ("resize_migrating", "rebuilding", "resize_prep", "image_snapshot", "image_backup", "rescuing",
                  "unshelving")


#: built once: every build and delete writes its host's stats (on the fast path: stratus/db/prepared.py; the
#: count labelled, as an anonymous label falls back)
_HOST_STATES = prepared(select(instances.c.vm_state, instances.c.task_state, func.count().label("count"))
                        .where(instances.c.host == bindparam("b_host"), instances.c.deleted == 0)
                        .group_by(instances.c.vm_state, instances.c.task_state))


async def host_stats(conn: Connection, host: str, failed_builds: int) -> dict[str, Any]:
    """The statistics the scheduler's weighers read (Nova's compute stats): instances on the host, the I/O-heavy
    work under way on it (builds, resizes, snapshots…), and consecutive failed builds."""
    rows = await conn.execute(_HOST_STATES, {"b_host": host})
    num_instances = io_workload = 0
    for vm_state, task_state, count in rows:
        num_instances += count
        if vm_state == "building" or task_state in IO_TASK_STATES:
            io_workload += count
    return {"num_instances": num_instances, "io_workload": io_workload, "failed_builds": failed_builds}


async def report_stats(conn: Connection, node: dict[str, Any], failed_builds: int) -> dict[str, Any]:
    """Write the host's stats when they changed (a build started, finished or failed; an instance went away),
    as Nova's resource tracker does on every claim, so schedulers weigh current I/O load and failures."""
    stats = await host_stats(conn, node["host"], failed_builds)
    if stats != node.get("stats"):
        await conn.execute(_STATS, {"b_id": node["id"], "b_stats": stats, "b_running": stats["num_instances"],
                                    "b_workload": stats["io_workload"], "b_now": utcnow()})
        node = {**node, "stats": stats}
    return node


#: built once (every build that starts or ends writes it)
_STATS = prepared(update(compute_nodes).where(compute_nodes.c.id == bindparam("b_id"))
                  .values(stats=bindparam("b_stats", type_=compute_nodes.c.stats.type),
                          running_vms=bindparam("b_running"), current_workload=bindparam("b_workload"),
                          updated_at=bindparam("b_now")))


async def update_available_resource(conn: Connection, conf: cfg.ConfigOpts, res: HostResources,
                                    service_id: int, host: str, failed_builds: int = 0) -> dict[str, Any]:
    """Refresh the compute node row and its provider's inventory from what the driver reported (read before
    the transaction: a hypervisor call must not hold the database's write lock); returns the node."""
    stats = await host_stats(conn, host, failed_builds)
    node = await services_db.upsert_compute_node(conn, service_id, host, {
        "hypervisor_hostname": res.hypervisor_hostname, "hypervisor_type": res.hypervisor_type,
        "hypervisor_version": res.hypervisor_version, "host_ip": res.host_ip, "vcpus": res.vcpus,
        "memory_mb": res.memory_mb, "local_gb": res.local_gb, "cpu_info": res.cpu_info,
        "cpu_allocation_ratio": conf.cpu_allocation_ratio, "ram_allocation_ratio": conf.ram_allocation_ratio,
        "disk_allocation_ratio": conf.disk_allocation_ratio, "stats": stats,
        "running_vms": stats["num_instances"], "current_workload": stats["io_workload"],
        "supported_instances": [list(t) for t in res.supported_instances]})
    node["provider_id"] = await placement.ensure_provider(conn, node["uuid"], node["hypervisor_hostname"],
                                                          inventory(conf, node))
    return node
