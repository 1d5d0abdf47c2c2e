"""A compute host that falls silent between two syncs of the scheduler's picture is down for the first request
after ``service_down_time`` (Nova judges liveness on every request), not one sync interval later."""

from __future__ import annotations

import datetime

from stratus.db.fleet import SimHost
from stratus.db.models import services
from stratus.utils import new_uuid, utcnow
from tests.unit.scheduler.conftest import Seed, spec


async def test_a_host_silent_since_the_last_sync_is_down_at_the_next_request(scheduler: Seed) -> None:
    # "goes" beat 2.5 s ago: up at the sync, down 1.6 s later (service_down_time 4), before the next sync (60 s)
    sched = await scheduler([SimHost("stays", memory_mb=4096), SimHost("goes", memory_mb=8192, silent_for=2.5)],
                            DEFAULT={"service_down_time": 4}, scheduler={"host_state_sync_interval": 60})
    hosts = sched.host_manager
    await hosts.sync()
    assert hosts.service_up.tolist() == [True, True]
    later = utcnow() + datetime.timedelta(seconds=1.6)
    hosts.judge_liveness(later)
    assert dict(zip([h.host for h in hosts.hosts], hosts.service_up.tolist(), strict=True)) == \
        {"stays": True, "goes": False}
    # and a request, which syncs no more than once a minute here, goes by the request's time
    hosts.judge_liveness(utcnow())
    assert hosts.service_up.tolist() == [True, True]


async def test_requests_do_not_go_to_a_host_that_went_silent_between_syncs(scheduler: Seed, monkeypatch) -> None:
    sched = await scheduler([SimHost("stays", memory_mb=4096), SimHost("goes", memory_mb=8192, silent_for=2.5)],
                            DEFAULT={"service_down_time": 4}, scheduler={"host_state_sync_interval": 60})
    await sched.host_manager.sync()
    from stratus.scheduler import host_manager

    moved = utcnow() + datetime.timedelta(seconds=1.6)
    monkeypatch.setattr(host_manager, "utcnow", lambda: moved)
    result = await sched.select_destinations({}, spec(), [new_uuid() for _ in range(4)])
    assert [hosts[0]["host"] for hosts in result] == ["stays"] * 4


async def test_a_host_left_unread_by_the_last_sync_is_read_again_before_it_could_be_down(
        scheduler: Seed, monkeypatch) -> None:
    """With a sync interval long next to ``service_down_time`` the sync reads only hosts silent for more than
    half of it; a host that beat 1 s before the sync is left out, and must still be down 3.5 s later (before
    the next sync), as os-services already shows it."""
    sched = await scheduler([SimHost("stays", memory_mb=4096), SimHost("goes", memory_mb=8192, silent_for=1.0)],
                            DEFAULT={"service_down_time": 4}, scheduler={"host_state_sync_interval": 60})
    hosts = sched.host_manager
    await hosts.sync()
    assert hosts.service_up.tolist() == [True, True]
    from stratus.scheduler import host_manager

    wall, clock = utcnow() + datetime.timedelta(seconds=3.5), host_manager.time.monotonic() + 3.5
    monkeypatch.setattr(host_manager, "utcnow", lambda: wall)
    monkeypatch.setattr(host_manager.time, "monotonic", lambda: clock)
    await hosts.sync()
    assert dict(zip([h.host for h in hosts.hosts], hosts.service_up.tolist(), strict=True)) == \
        {"stays": True, "goes": False}  # 3.5 s and 4.5 s silent


async def test_a_judgement_holds_until_the_first_heartbeat_it_counts_expires(scheduler: Seed) -> None:
    """Requests reuse the last judgement while no heartbeat it counts has expired; the first one that has makes
    the next request judge again, and a re-read of the services (a beat seen since) starts over."""
    sched = await scheduler([SimHost("stays", memory_mb=4096), SimHost("goes", memory_mb=8192, silent_for=2.5)],
                            DEFAULT={"service_down_time": 4}, scheduler={"host_state_sync_interval": 60})
    hosts = sched.host_manager
    await hosts.sync()
    now = utcnow()
    for seconds, up in ((0.0, [True, True]), (1.3, [True, True]), (1.7, [True, False]), (2.5, [True, False]),
                        (1.0, [True, True])):
        hosts.judge_liveness(now + datetime.timedelta(seconds=seconds))
        assert hosts.service_up.tolist() == up, seconds
    hosts.judge_liveness(now + datetime.timedelta(seconds=1.7))
    async with hosts.db.write() as conn:  # "goes" beats again
        await conn.execute(services.update().where(services.c.host == "goes").values(last_seen_up=utcnow()))
    async with hosts.db.read() as conn:
        await hosts._load_services(conn)
    hosts.judge_liveness(now + datetime.timedelta(seconds=1.7))
    assert hosts.service_up.tolist() == [True, True]
