"""The compute's collectors of external events: early events are kept, failures and timeouts reported."""

from __future__ import annotations

import asyncio

import pytest

from stratus.compute.instance_events import InstanceEvents, VirtualInterfaceCreateException


async def test_an_event_before_the_wait_is_not_lost() -> None:
    events = InstanceEvents()
    collector = events.collect("i1")
    assert events.deliver({"server_uuid": "i1", "name": "network-vif-plugged", "tag": "p1"})
    await asyncio.wait_for(collector.wait([("network-vif-plugged", "p1")], 5), 1)


async def test_the_wait_ends_when_the_last_event_comes() -> None:
    events = InstanceEvents()
    collector = events.collect("i1")
    waiter = asyncio.create_task(collector.wait([("network-vif-plugged", "p1"), ("network-vif-plugged", "p2")], 5))
    events.deliver({"server_uuid": "i1", "name": "network-vif-plugged", "tag": "p1"})
    await asyncio.sleep(0.01)
    assert not waiter.done()
    events.deliver({"server_uuid": "i1", "name": "network-vif-plugged", "tag": "p2"})
    await asyncio.wait_for(waiter, 1)


async def test_failed_event_and_timeout() -> None:
    events = InstanceEvents()
    collector = events.collect("i1")
    events.deliver({"server_uuid": "i1", "name": "network-vif-plugged", "tag": "p1", "status": "failed"})
    with pytest.raises(VirtualInterfaceCreateException):
        await collector.wait([("network-vif-plugged", "p1")], 5)
    with pytest.raises(TimeoutError):
        await collector.wait([("network-vif-plugged", "p2")], 0.05)


async def test_events_of_instances_nobody_waits_for_are_dropped() -> None:
    events = InstanceEvents()
    assert not events.deliver({"server_uuid": "i2", "name": "network-vif-plugged", "tag": "p1"})
    events.collect("i2")
    events.stop("i2")
    assert not events.deliver({"server_uuid": "i2", "name": "network-vif-plugged", "tag": "p1"})
