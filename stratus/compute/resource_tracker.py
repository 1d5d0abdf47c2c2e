"""The resource tracker: reports what the hypervisor has to placement (inventory), level-triggered.

Usage is not counted here: allocations in placement are the truth, written by the scheduler's claims.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from stratus.db import placement
from stratus.db import services as services_db
from stratus.db.engine import Connection
from stratus.virt.driver import ComputeDriver


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


async def update_available_resource(conn: Connection, conf: cfg.ConfigOpts, driver: ComputeDriver,
                                    service_id: int, host: str) -> dict[str, Any]:
    """Refresh the compute node row and its provider's inventory from the driver; returns the node."""
    res = driver.get_available_resources()
    node = await services_db.upsert_compute_node(conn, service_id, host, {
        "hypervisor_hostname": res.hypervisor_hostname, "hypervisor_type": res.hypervisor_type,
        "hypervisor_version": res.hypervisor_version, "host_ip": res.host_ip, "vcpus": res.vcpus,
        "memory_mb": res.memory_mb, "local_gb": res.local_gb, "cpu_info": res.cpu_info,
        "cpu_allocation_ratio": conf.cpu_allocation_ratio, "ram_allocation_ratio": conf.ram_allocation_ratio,
        "disk_allocation_ratio": conf.disk_allocation_ratio})
    node["provider_id"] = await placement.ensure_provider(conn, node["uuid"], node["hypervisor_hostname"],
                                                          inventory(conf, node))
    return node
