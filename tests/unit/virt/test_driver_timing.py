"""Driver call timings (stratus/virt/timing.py): what a benchmark reads to split a flow's time between the
hypervisor and the controller."""

from __future__ import annotations

import asyncio
from pathlib import Path

from stratus import conf as conf_mod
from stratus.virt import timing
from stratus.virt.fake import FakeDriver


def test_busy_seconds_counts_overlaps_once() -> None:
    calls = [{"instance": "a", "start": 10.0, "end": 14.0}, {"instance": "a", "start": 12.0, "end": 13.0},
             {"instance": "a", "start": 13.5, "end": 16.0}, {"instance": "b", "start": 0.0, "end": 100.0}]
    assert timing.busy_seconds(calls, 11.0, 15.0, "a") == 4.0  # [11, 16) cut to the window: nested once
    assert timing.busy_seconds(calls, 0.0, 100.0) == 100.0


def test_instrumented_driver_writes_its_calls(tmp_path: Path) -> None:
    path = tmp_path / "timings.jsonl"
    driver = FakeDriver(conf_mod.load(), "host-a")
    timing.instrument(driver, "host-a", str(path))

    async def run() -> None:
        await driver.init_host("host-a")
        await driver.list_instance_uuids()

    asyncio.run(run())
    calls = timing.load(str(path))
    assert [c["method"] for c in calls] == ["init_host", "list_instance_uuids"]
    assert all(c["host"] == "host-a" and c["end"] >= c["start"] for c in calls)


def test_not_instrumented_without_a_file() -> None:
    driver = FakeDriver(conf_mod.load(), "host-a")
    timing.instrument(driver, "host-a", "")
    assert "spawn" not in vars(driver)  # the class's own methods, untouched
