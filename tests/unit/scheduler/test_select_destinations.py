"""select_destinations over a real database: candidates, each filter and weigher, claims, alternates."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, func, select

from stratus import exception
from stratus.db import placement
from stratus.db.engine import Database
from stratus.db.fleet import SimHost
from stratus.db.models import (
    allocations,
    instance_group_members,
    instance_groups,
    instances,
    resource_providers,
    services,
)
from stratus.scheduler.manager import SchedulerManager
from stratus.utils import new_uuid, utcnow
from tests.unit.scheduler.conftest import Seed, spec

ALL_FILTERS = ["ComputeFilter", "AvailabilityZoneFilter", "ComputeCapabilitiesFilter", "ImagePropertiesFilter",
               "AggregateInstanceExtraSpecsFilter", "ServerGroupAffinityFilter", "ServerGroupAntiAffinityFilter",
               "SameHostFilter", "DifferentHostFilter"]


async def pick(sched: Any, request: dict[str, Any], count: int = 1) -> list[str]:
    result = await sched.select_destinations({}, request, [new_uuid() for _ in range(count)])
    return [hosts[0]["host"] for hosts in result]


async def used(db: Database, rc: str = placement.MEMORY_MB) -> dict[int, int]:
    async with db.read() as conn:
        rows = await conn.execute(select(allocations.c.resource_provider_id, func.sum(allocations.c.used))
                                  .where(allocations.c.resource_class == rc)
                                  .group_by(allocations.c.resource_provider_id))
        return {r[0]: int(r[1]) for r in rows}


async def add_instance(db: Database, host: str, group_uuid: str | None = None) -> str:
    uuid = new_uuid()
    now = utcnow()
    async with db.write() as conn:
        await conn.execute(instances.insert().values(
            uuid=uuid, project_id="p", user_id="u", flavor={}, vcpus=1, memory_mb=512, root_gb=1, ephemeral_gb=0,
            vm_state="active", power_state=1, config_drive="", reservation_id="r-1", host=host, node=host,
            system_metadata={}, security_groups=[], created_at=now, updated_at=now))
        if group_uuid:
            gid = (await conn.execute(select(instance_groups.c.id).where(instance_groups.c.uuid == group_uuid))
                   ).scalar_one()
            await conn.execute(instance_group_members.insert().values(group_id=gid, instance_uuid=uuid))
    return uuid


async def add_group(db: Database, policy: str, rules: dict[str, Any] | None = None) -> dict[str, Any]:
    uuid = new_uuid()
    async with db.write() as conn:
        await conn.execute(instance_groups.insert().values(uuid=uuid, name="g", project_id="p", user_id="u",
                                                           policy=policy, rules=rules or {}, created_at=utcnow()))
    return {"uuid": uuid, "policy": policy, "rules": rules or {}}


async def test_spreads_by_free_ram_and_stacks_with_negative_multiplier(scheduler: Seed) -> None:
    hosts = [SimHost("a", used_memory_mb=300000), SimHost("b", used_memory_mb=100000), SimHost("c")]
    sched = await scheduler(hosts)
    assert await pick(sched, spec()) == ["c"]
    sched.conf.set_override("ram_weight_multiplier", -1.0, group="filter_scheduler")
    sched.conf.set_override("cpu_weight_multiplier", 0.0, group="filter_scheduler")
    sched.conf.set_override("disk_weight_multiplier", 0.0, group="filter_scheduler")
    sched.conf.set_override("io_ops_weight_multiplier", 0.0, group="filter_scheduler")
    assert await pick(sched, spec()) == ["a"]


async def test_claims_respect_allocation_ratio_and_unit_limits(scheduler: Seed) -> None:
    sched = await scheduler([SimHost("a", vcpus=2, cpu_allocation_ratio=2.0, memory_mb=4096,
                                     ram_allocation_ratio=1.0)])
    assert await pick(sched, spec(vcpus=2, ram=1024), count=2) == ["a", "a"]
    with pytest.raises(exception.NoValidHost):
        await pick(sched, spec(vcpus=1, ram=1024))  # 4 VCPU of capacity used
    with pytest.raises(exception.NoValidHost):  # above max_unit even on an empty host
        await pick(sched, spec(vcpus=3, ram=1))


async def test_disabled_and_down_hosts_are_not_chosen(scheduler: Seed) -> None:
    sched = await scheduler([SimHost("off", disabled=True), SimHost("silent", silent_for=3600),
                             SimHost("ok", used_memory_mb=200000)])
    assert await pick(sched, spec(), count=3) == ["ok", "ok", "ok"]


async def test_service_disabled_after_load_is_seen_on_refresh(scheduler: Seed, database: Any) -> None:
    _, db = database
    sched = await scheduler([SimHost("a"), SimHost("b", used_memory_mb=1000)])
    assert await pick(sched, spec()) == ["a"]
    async with db.write() as conn:
        await conn.execute(services.update().where(services.c.host == "a").values(disabled=True))
    await sched.refresh_hosts({})
    assert await pick(sched, spec()) == ["b"]


async def test_new_host_is_found_before_saying_no_valid_host(scheduler: Seed, database: Any) -> None:
    from stratus.db import fleet

    _, db = database
    sched = await scheduler([SimHost("full", vcpus=1, cpu_allocation_ratio=1.0, used_vcpus=1)])
    await sched.host_manager.sync()
    async with db.write() as conn:
        await fleet.seed(conn, [SimHost("fresh")])
    assert await pick(sched, spec()) == ["fresh"]


async def test_availability_zone_routing(scheduler: Seed) -> None:
    sched = await scheduler([SimHost("a1", availability_zone="az1"), SimHost("a2", availability_zone="az2"),
                             SimHost("n")])
    assert await pick(sched, spec(availability_zone="az2"), count=2) == ["a2", "a2"]
    assert await pick(sched, spec(availability_zone="nova")) == ["n"]
    with pytest.raises(exception.NoValidHost):
        await pick(sched, spec(availability_zone="nowhere"))
    result = await sched.select_destinations({}, spec(availability_zone="az1"), [new_uuid()])
    assert result[0][0]["availability_zone"] == "az1"


async def test_compute_capabilities_filter(scheduler: Seed) -> None:
    sched = await scheduler([SimHost("fake1"), SimHost("qemu1", hypervisor_type="QEMU")])
    assert await pick(sched, spec(extra_specs={"capabilities:hypervisor_type": "s== QEMU"})) == ["qemu1"]
    assert await pick(sched, spec(extra_specs={"capabilities:cpu_info:arch": "x86_64"})) in (["fake1"], ["qemu1"])
    with pytest.raises(exception.NoValidHost):
        await pick(sched, spec(extra_specs={"capabilities:hypervisor_type": "<or> xen <or> vmware"}))
    # keys of other scopes and unscoped keys no host attribute has are another filter's business
    assert await pick(sched, spec(extra_specs={"hw:cpu_policy": "dedicated", "unknown_key": "1"}))


async def test_image_properties_filter(scheduler: Seed) -> None:
    sched = await scheduler([SimHost("x86"), SimHost("arm", supported_instances=[["aarch64", "qemu", "hvm"]])])
    assert await pick(sched, spec(image={"hw_architecture": "aarch64"})) == ["arm"]
    assert await pick(sched, spec(image={"architecture": "amd64", "hypervisor_type": "fake"})) == ["x86"]
    with pytest.raises(exception.NoValidHost):
        await pick(sched, spec(image={"img_hv_type": "xen"}))


async def test_aggregate_instance_extra_specs_filter(scheduler: Seed) -> None:
    sched = await scheduler([SimHost("ssd", aggregate_metadata={"disk": "ssd,nvme"}), SimHost("hdd")],
                            filter_scheduler={"enabled_filters": ALL_FILTERS})
    assert await pick(sched, spec(extra_specs={"aggregate_instance_extra_specs:disk": "nvme"})) == ["ssd"]
    assert await pick(sched, spec(extra_specs={"disk": "<in> ss"})) == ["ssd"]
    with pytest.raises(exception.NoValidHost):
        await pick(sched, spec(extra_specs={"aggregate_instance_extra_specs:disk": "spinning"}))


async def test_anti_affinity_more_servers_than_hosts_fails_and_leaves_nothing(scheduler: Seed, database: Any
                                                                                ) -> None:
    _, db = database
    sched = await scheduler([SimHost("a"), SimHost("b"), SimHost("c")])
    group = await add_group(db, "anti-affinity")
    assert sorted(await pick(sched, spec(instance_group=group), count=3)) == ["a", "b", "c"]
    before = await used(db)
    with pytest.raises(exception.NoValidHost):
        await pick(sched, spec(instance_group=await add_group(db, "anti-affinity")), count=4)
    assert await used(db) == before


async def test_anti_affinity_counts_existing_members_and_max_server_per_host(scheduler: Seed, database: Any
                                                                               ) -> None:
    _, db = database
    sched = await scheduler([SimHost("a"), SimHost("b", used_memory_mb=100000)])
    group = await add_group(db, "anti-affinity")
    await add_instance(db, "a", group["uuid"])
    assert await pick(sched, spec(instance_group=group)) == ["b"]
    two = await add_group(db, "anti-affinity", {"max_server_per_host": 2})
    await add_instance(db, "a", two["uuid"])
    assert sorted(await pick(sched, spec(instance_group=two), count=3)) == ["a", "b", "b"]


async def test_affinity_follows_the_group(scheduler: Seed, database: Any) -> None:
    _, db = database
    sched = await scheduler([SimHost("a"), SimHost("b", used_memory_mb=100000)])
    group = await add_group(db, "affinity")
    assert await pick(sched, spec(instance_group=group), count=3) == ["a", "a", "a"]
    member_on_b = await add_group(db, "affinity")
    await add_instance(db, "b", member_on_b["uuid"])
    assert await pick(sched, spec(instance_group=member_on_b), count=2) == ["b", "b"]


async def test_soft_policies_weigh_but_never_refuse(scheduler: Seed, database: Any) -> None:
    _, db = database
    sched = await scheduler([SimHost("a"), SimHost("b")])
    soft_anti = await add_group(db, "soft-anti-affinity")
    assert sorted(await pick(sched, spec(instance_group=soft_anti), count=4)) == ["a", "a", "b", "b"]
    soft = await add_group(db, "soft-affinity")
    sched.conf.set_override("soft_affinity_weight_multiplier", 100.0, group="filter_scheduler")
    placed = await pick(sched, spec(instance_group=soft), count=3)
    assert len(set(placed)) == 1


async def test_same_host_and_different_host_hints(scheduler: Seed, database: Any) -> None:
    _, db = database
    sched = await scheduler([SimHost("a"), SimHost("b"), SimHost("c")],
                            filter_scheduler={"enabled_filters": ALL_FILTERS})
    on_b = await add_instance(db, "b")
    on_c = await add_instance(db, "c")
    assert await pick(sched, spec(scheduler_hints={"same_host": [on_b]})) == ["b"]
    assert await pick(sched, spec(scheduler_hints={"different_host": [on_b, on_c]}), count=2) == ["a", "a"]
    with pytest.raises(exception.NoValidHost):
        await pick(sched, spec(scheduler_hints={"same_host": new_uuid()}))


async def test_io_ops_and_build_failures_push_hosts_back(scheduler: Seed) -> None:
    sched = await scheduler([SimHost("failing", failed_builds=3), SimHost("busy", io_workload=5,
                                                                           used_memory_mb=1),
                             SimHost("idle", used_memory_mb=2)])
    result = await sched.select_destinations({}, spec(), [new_uuid()])
    assert [h["host"] for h in result[0]] == ["idle", "busy", "failing"]
    assert [h["claimed"] for h in result[0]] == [True, False, False]


async def test_alternates_are_distinct_and_limited_by_max_attempts(scheduler: Seed) -> None:
    sched = await scheduler([SimHost(f"h{i}") for i in range(6)], scheduler={"max_attempts": 4})
    result = await sched.select_destinations({}, spec(), [new_uuid(), new_uuid()])
    for hosts in result:
        names = [h["host"] for h in hosts]
        assert len(names) == 4 and len(set(names)) == 4
    no_alternates = await sched.select_destinations({}, spec(), [new_uuid()], return_alternates=False)
    assert len(no_alternates[0]) == 1


async def test_multi_create_is_all_or_nothing(scheduler: Seed, database: Any) -> None:
    _, db = database
    sched = await scheduler([SimHost(f"h{i}", vcpus=1, cpu_allocation_ratio=1.0) for i in range(3)])
    with pytest.raises(exception.NoValidHost):
        await pick(sched, spec(vcpus=1), count=4)
    assert await used(db) == {}
    assert sorted(await pick(sched, spec(vcpus=1), count=3)) == ["h0", "h1", "h2"]


async def test_forced_host_skips_filters_but_not_capacity(scheduler: Seed) -> None:
    sched = await scheduler([SimHost("a"), SimHost("off", disabled=True), SimHost("tiny", vcpus=1,
                                                                                  cpu_allocation_ratio=1.0)])
    assert await pick(sched, spec(force_hosts=["off"])) == ["off"]
    with pytest.raises(exception.NoValidHost):
        await pick(sched, spec(vcpus=2, force_hosts=["tiny"]))


async def test_requested_destination_keeps_the_filters(scheduler: Seed) -> None:
    """2.74's host / hypervisor_hostname: only that host or node, and unlike a forced host the filters still
    apply (a disabled host is no valid host)."""
    sched = await scheduler([SimHost("a"), SimHost("b"), SimHost("off", disabled=True)])
    for _ in range(3):
        assert await pick(sched, spec(requested_destination={"host": "b"})) == ["b"]
    assert await pick(sched, spec(requested_destination={"host": "a", "node": "a"})) == ["a"]
    with pytest.raises(exception.NoValidHost):
        await pick(sched, spec(requested_destination={"host": "off"}))
    with pytest.raises(exception.NoValidHost):
        await pick(sched, spec(requested_destination={"host": "a", "node": "b"}))


async def test_stale_picture_never_over_commits(scheduler: Seed, database: Any) -> None:
    """Another scheduler fills the host behind this one's back: the claim at the old generation is refused,
    the host is re-read, and the request goes elsewhere."""
    conf, db = database
    sched = await scheduler([SimHost("a", vcpus=4, cpu_allocation_ratio=1.0),
                             SimHost("b", vcpus=4, cpu_allocation_ratio=1.0, used_memory_mb=1000)])
    await sched.host_manager.sync()
    from stratus.scheduler.manager import SchedulerManager

    other = SchedulerManager(conf, db)
    assert await pick(other, spec(vcpus=4)) == ["a"]
    assert await pick(sched, spec(vcpus=4)) == ["b"]  # its picture still had "a" empty
    with pytest.raises(exception.NoValidHost):
        await pick(sched, spec(vcpus=1))
    assert max((await used(db, placement.VCPU)).values()) == 4


class _CountedWrites:
    """A database whose units of work are counted."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.writes = 0
        self.reads = 0

    def write(self) -> Any:
        self.writes += 1
        return self.db.write()

    def read(self) -> Any:
        self.reads += 1
        return self.db.read()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


async def test_a_claim_lost_to_a_claim_behind_its_back_is_retried_in_the_same_unit(scheduler: Seed,
                                                                                     database: Any) -> None:
    """The host still has room once re-read: the retry, in the claim's own unit of work, gets it."""
    conf, db = database
    sched = await scheduler([SimHost("a", vcpus=4, cpu_allocation_ratio=1.0),
                             SimHost("b", vcpus=4, cpu_allocation_ratio=1.0, used_memory_mb=4000)])
    await sched.host_manager.sync()
    assert await pick(SchedulerManager(conf, db), spec(vcpus=1)) == ["a"]  # another scheduler moves "a" on
    counted = _CountedWrites(db)
    sched.db = counted  # type: ignore[assignment]
    assert await pick(sched, spec(vcpus=1)) == ["a"]
    assert counted.writes == 1
    hm = sched.host_manager
    index = hm.by_node["a"]
    async with db.read() as conn:
        generation = (await conn.execute(select(resource_providers.c.generation)
                                         .where(resource_providers.c.id == hm.hosts[index].provider_id))).scalar()
    assert int(hm.generation[index]) == generation and hm.hosts[index].used(placement.VCPU) == 2


async def test_a_claim_trusts_the_fit_its_picture_checked(scheduler: Seed, database: Any) -> None:
    """The picture's usage is that of the generation it claims at, so the claim does not read the provider's
    room again (one statement less per boot); a picture behind the database is still refused by the
    compare-and-swap (test_stale_picture_never_over_commits)."""
    _conf, db = database
    sched = await scheduler([SimHost("a"), SimHost("b")])
    await sched.host_manager.sync()
    seen: list[str] = []
    event.listen(db.sync_engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    await sched.select_destinations({}, spec(), [new_uuid()])
    statements = [s for s in seen if not s.startswith(("SAVEPOINT", "RELEASE"))]
    assert any(s.startswith("UPDATE resource_providers") for s in statements)
    assert not any("FROM inventories" in s for s in statements)


async def test_concurrent_requests_never_exceed_capacity(scheduler: Seed, database: Any) -> None:
    conf, db = database
    hosts = [SimHost(f"h{i}", vcpus=8, cpu_allocation_ratio=1.0, memory_mb=8192, ram_allocation_ratio=1.0)
             for i in range(5)]
    first = await scheduler(hosts)
    from stratus.scheduler.manager import SchedulerManager

    second = SchedulerManager(conf, db)  # two schedulers, one database
    outcomes = await asyncio.gather(*(pick(s, spec(vcpus=1, ram=1024))
                                      for s in [first, second] * 30), return_exceptions=True)
    placed = [o for o in outcomes if isinstance(o, list)]
    refused = [o for o in outcomes if isinstance(o, exception.NoValidHost)]
    assert len(placed) == 40 and len(refused) == 20, outcomes
    assert all(v <= 8 for v in (await used(db, placement.VCPU)).values())
    assert sum((await used(db, placement.VCPU)).values()) == 40


async def test_no_hosts_at_all_is_no_valid_host(scheduler: Seed) -> None:
    sched = await scheduler([])
    with pytest.raises(exception.NoValidHost):
        await pick(sched, spec())


async def test_failed_build_reported_by_compute_is_weighed_at_once(scheduler: Seed) -> None:
    sched = await scheduler([SimHost("a"), SimHost("b", used_memory_mb=1000)])
    assert await pick(sched, spec()) == ["a"]
    await sched.update_host_stats({}, "a", {"failed_builds": 1})
    assert await pick(sched, spec()) == ["b"]
    await sched.update_host_stats({}, "a", {"failed_builds": 0})
    assert await pick(sched, spec()) == ["a"]


async def test_a_claim_an_instance_already_holds_is_replaced_not_doubled(scheduler: Seed) -> None:
    """A scheduler that died after its claim and before its reply left the instance an allocation; the request,
    delivered again (or asked again by the conductor), must not claim a second one beside it."""
    sched = await scheduler([SimHost("a"), SimHost("b")], scheduler={"max_attempts": 1})
    uuid = new_uuid()
    first = await sched.select_destinations({}, spec(), [uuid])
    again = await SchedulerManager(sched.conf, sched.db).select_destinations({}, spec(), [uuid])
    async with sched.db.read() as conn:
        held = await placement.allocations_for_consumer(conn, uuid)
    assert list(held) == [again[0][0]["provider_id"]], (first, again, held)
    assert held[again[0][0]["provider_id"]][placement.MEMORY_MB] == 512


async def test_a_request_handled_twice_answers_the_same_host_both_times(scheduler: Seed) -> None:
    """Two copies of one request (a publish retried across a lost connection, or a redelivery): the second must
    answer the host of the claim the first made and leave that one claim alone. Were it to give the claim back
    and claim anew elsewhere, the conductor, which placed the instance by the first answer, would record a host
    the instance holds nothing on."""
    sched = await scheduler([SimHost("a"), SimHost("b"), SimHost("c")], scheduler={"max_attempts": 2})
    uuid = new_uuid()
    first = await sched.select_destinations({}, spec(), [uuid])
    async with sched.db.read() as conn:
        before = await placement.allocations_for_consumer(conn, uuid)
    for other in (sched, SchedulerManager(sched.conf, sched.db)):  # the same scheduler, and a second one
        again = await other.select_destinations({}, spec(), [uuid])
        assert again[0][0]["host"] == first[0][0]["host"], (first, again)
        assert again[0][0]["host"] not in [alt["host"] for alt in again[0][1:]]
        async with sched.db.read() as conn:
            assert await placement.allocations_for_consumer(conn, uuid) == before


async def test_a_held_claim_on_an_ignored_host_is_given_back(scheduler: Seed) -> None:
    """A reschedule ignores the host that failed: a claim left there is not this request's answer."""
    sched = await scheduler([SimHost("a"), SimHost("b")], scheduler={"max_attempts": 1})
    uuid = new_uuid()
    first = (await sched.select_destinations({}, spec(), [uuid]))[0][0]["host"]
    again = await sched.select_destinations({}, {**spec(), "ignore_hosts": [first]}, [uuid])
    assert again[0][0]["host"] != first
    async with sched.db.read() as conn:
        assert list(await placement.allocations_for_consumer(conn, uuid)) == [again[0][0]["provider_id"]]


async def test_a_request_is_one_unit_of_work_what_it_holds_asked_in_its_claim(scheduler: Seed) -> None:
    """Whether the instances already hold a claim is asked in the first claim's transaction, not in a read of its
    own: a plain request (the picture current) is one unit of work."""
    sched = await scheduler([SimHost("a"), SimHost("b")])
    await sched.host_manager.sync()
    counted = _CountedWrites(sched.db)
    sched.db = counted  # type: ignore[assignment]
    await sched.select_destinations({}, spec(), [new_uuid()])
    assert (counted.reads, counted.writes) == (0, 1)


async def test_a_request_handled_twice_keeps_a_claim_that_filled_its_host(scheduler: Seed) -> None:
    """The claim of the first copy took the last room anywhere: the second copy finds no host with room, and must
    still answer the host its instance holds the claim on (not NoValidHost, not a second claim)."""
    sched = await scheduler([SimHost("only", vcpus=1, cpu_allocation_ratio=1.0)], scheduler={"max_attempts": 1})
    uuid = new_uuid()
    first = await sched.select_destinations({}, spec(vcpus=1), [uuid])
    assert first[0][0]["host"] == "only"
    again = await sched.select_destinations({}, spec(vcpus=1), [uuid])
    assert again[0][0]["host"] == "only"
    assert (await used(sched.db, placement.VCPU)) == {first[0][0]["provider_id"]: 1}
    with pytest.raises(exception.NoValidHost):  # and a new instance still finds none
        await sched.select_destinations({}, spec(vcpus=1), [new_uuid()])
