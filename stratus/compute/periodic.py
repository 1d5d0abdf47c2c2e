"""This host's periodic tasks, each on its own option's interval; the service runner calls ``run_due`` every
heartbeat and it costs nothing when nothing is due.

Each host's first runs are spread over the interval (by a hash of its name), so a fleet simulated in one process
does not query at once.
"""

from __future__ import annotations

import logging
import time
import zlib

from stratus.compute import build_timeout, hypervisor, power_sync, startup
from stratus.compute.host import ComputeHost
from stratus.context import RequestContext

LOG = logging.getLogger(__name__)

RESOURCES, SYNC, REAP, IMAGE_CACHE, BUILD_CHECK = "resources", "sync", "reap", "image_cache", "build_check"


def schedule_first(host: ComputeHost, now: float | None = None) -> None:
    """The first run of every task, after start-up."""
    now = time.monotonic() if now is None else now
    conf = host.conf
    spread = (zlib.crc32(host.host.encode()) % 1000) / 1000
    host.next_run.update({
        RESOURCES: now + conf.update_resources_interval,
        SYNC: now + spread * max(0, conf.sync_power_state_interval),
        REAP: now + spread * max(0, conf.running_deleted_instance_poll_interval),
        IMAGE_CACHE: now + spread * max(0, conf.image_cache.manager_interval),
        BUILD_CHECK: now + spread * build_timeout.spacing(conf.instance_build_timeout),
    })


def _due(host: ComputeHost, task: str, now: float, interval: float) -> bool:
    """True (and the next run set ``interval`` from now) when ``task`` is due."""
    if now < host.next_run.get(task, 0.0):
        return False
    host.next_run[task] = now + interval
    return True


async def run_due(host: ComputeHost, now: float | None = None) -> None:
    """Whatever is due of: the resource report (``update_resources_interval``; it also notices the
    hypervisor going and coming back), the power-state sync (``sync_power_state_interval``, negative:
    never), the check for guests of deleted instances (``running_deleted_instance_poll_interval``, 0:
    only at start-up) and the check for builds past ``instance_build_timeout`` (every minute, or as often as
    the timeout is long; one indexed query)."""
    now = time.monotonic() if now is None else now
    conf = host.conf
    if _due(host, RESOURCES, now, conf.update_resources_interval):
        await hypervisor.reach(host)
    build_timeout_s = conf.instance_build_timeout
    # a database check: due with the hypervisor down too
    if build_timeout_s and _due(host, BUILD_CHECK, now, build_timeout.spacing(build_timeout_s)):
        await build_timeout.check_instance_build_time(host)
    if host.hypervisor_down or not host.reconciled:
        return
    sync_interval = conf.sync_power_state_interval
    if sync_interval >= 0 and _due(host, SYNC, now, sync_interval):
        await hypervisor.guarded(host, power_sync.sync_host(host, RequestContext.admin().to_dict()))
    reap_interval = conf.running_deleted_instance_poll_interval
    if reap_interval > 0 and _due(host, REAP, now, reap_interval):
        await hypervisor.guarded(host, startup.running_deleted(host))
    cache_interval = conf.image_cache.manager_interval
    if cache_interval >= 0 and _due(host, IMAGE_CACHE, now, cache_interval or 60):  # 0: Nova's default spacing
        await hypervisor.guarded(host, manage_image_cache(host))


async def manage_image_cache(host: ComputeHost) -> None:
    """Nova's ``_run_image_cache_manager_pass``: the driver drops what none of the host's instances use."""
    async with host.db.read() as conn:
        rows = await power_sync.host_instances(conn, host.host, full=True)
    removed = await host.driver.manage_image_cache(rows)
    if removed:
        LOG.info("image cache of %s: %d unused base images %s", host.host, len(removed),
                 "removed" if host.conf.image_cache.remove_unused_base_images else "found")
