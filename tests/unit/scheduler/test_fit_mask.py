"""``HostManager.fit_mask`` and ``fits_one``: placement's allocation candidates, free capacity and every unit
limit (min_unit, max_unit, step_size) of each class asked for; a class no host has fits nowhere."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from stratus import conf as conf_mod
from stratus.db.fleet import SimHost
from stratus.db.models import inventories, resource_providers
from stratus.scheduler.host_manager import HostManager
from tests.unit.scheduler.conftest import Seed

RESOURCES = {"VCPU": 2, "MEMORY_MB": 1024, "DISK_GB": 0}


def _hosts(step: bool) -> HostManager:
    hm = HostManager(conf_mod.load(overrides={}), db=None)  # type: ignore[arg-type]
    hm.hosts = [None] * 5  # type: ignore[list-item]
    hm._allocate(5)
    vcpu, ram = hm.rc_index["VCPU"], hm.rc_index["MEMORY_MB"]
    hm.capacity[vcpu] = [8, 8, 8, 8, 1]
    hm.used[vcpu] = [0, 7, 0, 0, 0]  # host 1: one VCPU free
    hm.capacity[ram] = [4096] * 5
    hm.max_unit[:] = [[8, 8, 8, 1, 8], [4096] * 5, [0] * 5]  # host 3: one VCPU at most per instance
    hm.min_unit[ram] = [1, 1, 1, 1, 1]
    hm.min_unit[ram, 2] = 2048  # host 2: at least 2 GiB per instance
    if step:
        hm.step_size[ram, 0] = 3  # host 0: memory in steps of 3 MB (1024 is not one)
        hm.stepped = True
    return hm


def test_every_limit_of_every_class_asked_for() -> None:
    hm = _hosts(step=False)
    assert hm.fit_mask(RESOURCES).tolist() == [True, False, False, False, False]
    assert [hm.fits_one(i, RESOURCES) for i in range(5)] == hm.fit_mask(RESOURCES).tolist()
    stepped = _hosts(step=True)
    assert stepped.fit_mask(RESOURCES).tolist() == [False] * 5
    assert not stepped.fits_one(0, RESOURCES)
    assert stepped.fit_mask({"VCPU": 1, "MEMORY_MB": 1023}).tolist() == [True, True, False, True, True]


def test_nothing_asked_fits_everywhere_and_an_unknown_class_nowhere() -> None:
    hm = _hosts(step=False)
    assert hm.fit_mask({"VCPU": 0}).tolist() == [True] * 5
    assert hm.fit_mask({"VCPU": 1, "CUSTOM_GPU": 1}).tolist() == [False] * 5
    assert np.array_equal(hm.fit_mask({"VCPU": 1}), np.array([True, True, True, True, True]))


async def test_a_step_size_read_from_placement_is_checked(scheduler: Seed) -> None:
    sched = await scheduler([SimHost("steps", memory_mb=8192), SimHost("any", memory_mb=8192)])
    async with sched.db.write() as conn:
        rp = (await conn.execute(select(resource_providers.c.id)
                                 .where(resource_providers.c.name == "steps"))).scalar_one()
        await conn.execute(inventories.update().where(inventories.c.resource_provider_id == rp,
                                                      inventories.c.resource_class == "MEMORY_MB")
                           .values(step_size=256))
    hm = sched.host_manager
    await hm.sync()
    names = [h.host for h in hm.hosts]
    assert hm.stepped
    assert dict(zip(names, hm.fit_mask({"MEMORY_MB": 300}).tolist(), strict=True)) == {"steps": False, "any": True}
    assert dict(zip(names, hm.fit_mask({"MEMORY_MB": 512}).tolist(), strict=True)) == {"steps": True, "any": True}
