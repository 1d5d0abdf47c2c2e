"""The conductor's image pre-cache task (Nova's ``cache_images``): the compute hosts of an aggregate fetch the
images asked for into their image caches, ``[image_cache] precache_concurrency`` hosts at a time.

A host whose compute service is down is skipped (its images counted ``skipped``), one that fails answers
``error`` for its images, and neither stops the others. The API has already answered 202; what happened is
logged, in Nova's words, with the counts of each result.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from stratus.conductor.state import ConductorState
from stratus.db import services as services_db
from stratus.db.hosts import list_services

LOG = logging.getLogger(__name__)

SKIPPED = "skipped"
_KINDS = ("cached", "existing", "error", "unsupported")


async def cache_images(conductor: ConductorState, context: dict[str, Any], hosts: list[str],
                       image_ids: list[str]) -> dict[str, dict[str, str]]:
    """Ask each of ``hosts`` to cache ``image_ids``; returns each host's results (image id → result)."""
    started = time.monotonic()
    LOG.info("request pre-caching of image(s) %s on %d hosts", ",".join(image_ids), len(hosts))
    async with conductor.db.read() as conn:
        services = {s["host"]: s for s in await list_services(conn, binary="nova-compute")}
    limit = asyncio.Semaphore(conductor.conf.image_cache.precache_concurrency)
    timeout = conductor.conf.long_rpc_timeout

    async def one(host: str) -> dict[str, str]:
        service = services.get(host)
        if service is None or not services_db.is_up(service, conductor.conf.service_down_time):
            LOG.info("skipping image pre-cache request to compute %r because it is not up", host)
            return dict.fromkeys(image_ids, SKIPPED)
        async with limit:
            try:
                return await conductor.compute.cache_images(context, host, image_ids, timeout)
            except Exception as exc:
                LOG.warning("image pre-cache request to compute %r failed: %s", host, exc)
                return dict.fromkeys(image_ids, "error")

    results = dict(zip(hosts, await asyncio.gather(*(one(h) for h in hosts)), strict=True))
    totals: collections.Counter[str] = collections.Counter(r for by_image in results.values()
                                                          for r in by_image.values())
    LOG.info("image pre-cache operation for image(s) %s completed in %.2f seconds; %s, %d skipped (down) hosts",
             ",".join(image_ids), time.monotonic() - started,
             ", ".join(f"{totals[k]} {k if k != 'error' else 'errors'}" for k in _KINDS),
             sum(1 for by_image in results.values() if SKIPPED in by_image.values()))
    for image_id in image_ids:
        fails = sum(1 for by_image in results.values() if by_image.get(image_id) == "error")
        if fails:
            LOG.warning("image pre-cache operation for image %s failed %d times", image_id, fails)
    return results
