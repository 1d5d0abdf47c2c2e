"""The admin host queries against a real SQLite database: usage, zones, a fixed number of statements."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from stratus.db import hosts, placement
from stratus.db import services as services_db
from stratus.db.engine import Database
from stratus.db.models import aggregate_hosts, aggregate_metadata, aggregates, instances
from stratus.utils import new_uuid, utcnow

FLEET = 200


async def _fleet(db: Database, count: int) -> None:
    """``count`` hosts host-0001..; host i runs i % 3 instances of 1 vcpu, 1024 MB, 10 GB each."""
    now = utcnow()
    async with db.write() as conn:
        await services_db.register(conn, "control", "nova-scheduler", "scheduler")
        for i in range(1, count + 1):
            host = f"host-{i:04d}"
            service = await services_db.register(conn, host, "nova-compute", "compute")
            node = await services_db.upsert_compute_node(conn, service["id"], host, {
                "hypervisor_hostname": host, "hypervisor_type": "fake", "hypervisor_version": 1, "vcpus": 16,
                "memory_mb": 65536, "local_gb": 500, "cpu_allocation_ratio": 4.0, "ram_allocation_ratio": 1.0,
                "disk_allocation_ratio": 1.0})
            rp = await placement.ensure_provider(conn, node["uuid"], host, {
                "VCPU": {"total": 16, "allocation_ratio": 4.0}, "MEMORY_MB": {"total": 65536, "reserved": 512},
                "DISK_GB": {"total": 500}})
            for _ in range(i % 3):
                uuid = new_uuid()
                assert await placement.claim(conn, rp, uuid, "p", "u", {"VCPU": 1, "MEMORY_MB": 1024, "DISK_GB": 10})
                await conn.execute(instances.insert().values(
                    uuid=uuid, project_id="p", user_id="u", flavor={}, vcpus=1, memory_mb=1024, root_gb=10,
                    vm_state="active", host=host, node=host, reservation_id="r-1", created_at=now, updated_at=now))


class _Statements:
    def __init__(self, db: Database) -> None:
        self.count = 0
        assert db.sync_engine is not None
        event.listen(db.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


async def test_usage_for_a_fleet_in_a_fixed_number_of_statements(db: Database) -> None:
    await _fleet(db, FLEET)
    statements = _Statements(db)
    async with db.read() as conn:
        nodes = await hosts.compute_nodes_with_usage(conn, with_servers=True)
    assert statements.count == 5  # nodes, allocations, inventories, instances, servers (BEGIN: to the driver)
    assert [n["hypervisor_hostname"] for n in nodes] == [f"host-{i:04d}" for i in range(1, FLEET + 1)]
    for i, node in enumerate(nodes, start=1):
        running = i % 3
        assert node["running_vms"] == running and len(node["servers"]) == running
        assert node["vcpus_used"] == running
        assert node["memory_mb_used"] == 512 + 1024 * running
        assert node["local_gb_used"] == 10 * running
        assert node["free_ram_mb"] == 65536 - node["memory_mb_used"]
        assert node["free_disk_gb"] == 500 - 10 * running

    statements.count = 0
    async with db.read() as conn:
        page = await hosts.compute_nodes_with_usage(conn, after_id=nodes[9]["id"], limit=5)
        one = await hosts.compute_nodes_with_usage(conn, uuid=nodes[1]["uuid"])
        matching = await hosts.compute_nodes_with_usage(conn, pattern="host-01")
    assert statements.count == 3 * 4  # four statements per call (BEGIN goes to the driver itself)
    assert [n["hypervisor_hostname"] for n in page] == [f"host-{i:04d}" for i in range(11, 16)]
    assert page[1]["running_vms"] == 12 % 3 and "servers" not in page[1]
    assert one == [{k: v for k, v in nodes[1].items() if k != "servers"}]
    assert len(matching) == 100 and all(n["hypervisor_hostname"].startswith("host-01") for n in matching)


async def test_enabled_only_and_deleting_a_compute_service(db: Database) -> None:
    await _fleet(db, 3)
    async with db.write() as conn:
        first = await hosts.get_service(conn, host="host-0001", binary="nova-compute")
        assert first is not None
        await hosts.update_service(conn, first["id"], {"disabled": True, "disabled_reason": "r"})
        enabled = await hosts.compute_nodes_with_usage(conn, enabled_only=True)
        assert [n["hypervisor_hostname"] for n in enabled] == ["host-0002", "host-0003"]
        busy = await hosts.get_service(conn, host="host-0002", binary="nova-compute")
        assert busy is not None and await hosts.count_instances_on_host(conn, "host-0002") == 2
        assert not await hosts.has_migrations_in_progress(conn, "host-0001")
        await hosts.delete_service(conn, first)
        assert await hosts.get_service(conn, service_id=first["id"]) is None
        left = await hosts.compute_nodes_with_usage(conn)
        assert [n["hypervisor_hostname"] for n in left] == ["host-0002", "host-0003"]
        providers = await placement.providers_with_inventory(conn)
        assert sorted(p["name"] for p in providers) == ["host-0002", "host-0003"]


async def test_host_zones(db: Database) -> None:
    await _fleet(db, 4)
    now = utcnow()
    async with db.write() as conn:
        for agg_id, zone, members in ((1, "az1", ["host-0001"]), (2, "az2", ["host-0001", "host-0002"]),
                                      (3, None, ["host-0003"]), (4, "az3", ["not-a-compute"])):
            await conn.execute(aggregates.insert().values(id=agg_id, uuid=new_uuid(), name=f"agg{agg_id}",
                                                          created_at=now))
            if zone:
                await conn.execute(aggregate_metadata.insert().values(aggregate_id=agg_id, key="availability_zone",
                                                                      value=zone))
            else:
                await conn.execute(aggregate_metadata.insert().values(aggregate_id=agg_id, key="ssd", value="1"))
            for host in members:
                await conn.execute(aggregate_hosts.insert().values(aggregate_id=agg_id, host=host))
    async with db.read() as conn:
        zones = await hosts.host_zones(conn, "nova")
        some = await hosts.host_zones(conn, "nova", hosts=["host-0002", "host-0004"])
        services = await hosts.list_services(conn)
    assert zones == {"host-0001": "az1,az2", "host-0002": "az2", "host-0003": "nova", "host-0004": "nova",
                     "not-a-compute": "az3"}
    assert some == {"host-0002": "az2", "host-0004": "nova"}
    placed = {s["binary"] + "@" + s["host"]: hosts.service_zone(s, zones, "nova", "internal") for s in services}
    assert placed["nova-scheduler@control"] == "internal"
    assert placed["nova-compute@host-0001"] == "az1,az2"
