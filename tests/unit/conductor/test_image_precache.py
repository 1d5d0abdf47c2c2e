"""The image pre-cache of ``POST /os-aggregates/{id}/images`` from the conductor down: real compute managers on
the fake driver answer over the in-process transport, one host's hypervisor is unreachable and one host has no
compute service at all."""

from __future__ import annotations

from stratus.compute.manager import ComputeManager
from stratus.context import RequestContext
from stratus.virt.fake import FakeDriver

from .conftest import Cell

IMAGES = ["6c2bd38c-93d8-4a0b-9a6e-000000000001", "6c2bd38c-93d8-4a0b-9a6e-000000000002"]


async def _host(cell: Cell, name: str) -> FakeDriver:
    driver = FakeDriver(cell.conf, name)
    manager = ComputeManager(cell.conf, cell.db, cell.transport, host=name, driver=driver, images=None)
    await cell.transport.listen("compute", manager, server=name)
    return driver


async def test_each_up_host_caches_each_image_once(cell: Cell) -> None:
    h1, h2 = await _host(cell, "h1"), await _host(cell, "h2")
    h2.hypervisor_down = True
    context = RequestContext.admin().to_dict()
    results = await cell.conductor().cache_images(context, ["h1", "h2", "h9"], IMAGES)
    assert results == {"h1": dict.fromkeys(IMAGES, "cached"), "h2": dict.fromkeys(IMAGES, "error"),
                       "h9": dict.fromkeys(IMAGES, "skipped")}  # h9: no compute service (down)
    assert h1.cached_images == IMAGES and h2.cached_images == []
    h2.hypervisor_down = False
    again = await cell.conductor().cache_images(context, ["h1", "h2"], IMAGES)
    assert again == {"h1": dict.fromkeys(IMAGES, "existing"), "h2": dict.fromkeys(IMAGES, "cached")}
    assert h1.cached_images == IMAGES == h2.cached_images


async def test_a_host_that_does_not_answer_leaves_the_others_alone(cell: Cell) -> None:
    """h2's compute service is registered and up, but no agent listens: its call fails, h1 still caches."""
    h1 = await _host(cell, "h1")
    await cell.transport.listen("compute", object(), server="h2")  # an endpoint with no cache_images
    results = await cell.conductor().cache_images(RequestContext.admin().to_dict(), ["h1", "h2"], IMAGES[:1])
    assert results == {"h1": {IMAGES[0]: "cached"}, "h2": {IMAGES[0]: "error"}}
    assert h1.cached_images == IMAGES[:1]
