"""This host's periodic tasks, each on its own option's interval; the service runner calls ``run_due`` every
heartbeat and it costs nothing when nothing is due.

Each host's first runs are spread over the interval (by a hash of its name), so a fleet simulated in one process
does not query at once.
"""

from __future__ import annotations

import datetime
import logging
import time
import zlib

from stratus import exception
from stratus.compute import build_timeout, hypervisor, move_api, power_sync, shelve, soft_delete, startup
from stratus.compute.api import InstanceInvalidState
from stratus.compute.host import ComputeHost
from stratus.context import RequestContext
from stratus.db import migration_records
from stratus.utils import utcnow

LOG = logging.getLogger(__name__)

RESOURCES, SYNC, REAP, IMAGE_CACHE, BUILD_CHECK = "resources", "sync", "reap", "image_cache", "build_check"
UNCONFIRMED = "unconfirmed_resizes"
SHELVED = "shelved_offload"
RECLAIM = "reclaim_queued_deletes"
#: Nova's default spacing of periodic tasks
SPACING = 60.0


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
        UNCONFIRMED: now + spread * _unconfirmed_spacing(conf.resize_confirm_window),
        SHELVED: now + spread * max(0, conf.shelved_poll_interval),
        RECLAIM: now + spread * max(0, conf.reclaim_instance_interval),
    })


def _unconfirmed_spacing(window: int) -> float:
    """Nova's 60 s, or the window itself when it is shorter (a short window is kept to within itself)."""
    return float(min(SPACING, max(1, window)))


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
    the timeout is long; one indexed query), and the auto-confirm of resizes and migrations to this host
    waiting longer than ``resize_confirm_window`` (0: never), and the offload of servers shelved longer than
    ``shelved_offload_time`` (every ``shelved_poll_interval``), and the reclaim of servers soft-deleted longer
    than ``reclaim_instance_interval`` (as often)."""
    now = time.monotonic() if now is None else now
    conf = host.conf
    if _due(host, RESOURCES, now, conf.update_resources_interval):
        await hypervisor.reach(host)
    build_timeout_s = conf.instance_build_timeout
    # a database check: due with the hypervisor down too
    if build_timeout_s and _due(host, BUILD_CHECK, now, build_timeout.spacing(build_timeout_s)):
        await build_timeout.check_instance_build_time(host)
    window = conf.resize_confirm_window
    if window > 0 and _due(host, UNCONFIRMED, now, _unconfirmed_spacing(window)):  # database and casts only
        await confirm_unconfirmed_resizes(host)
    if host.hypervisor_down or not host.reconciled:
        return
    sync_interval = conf.sync_power_state_interval
    if sync_interval >= 0 and _due(host, SYNC, now, sync_interval):
        await hypervisor.guarded(host, power_sync.sync_host(host, RequestContext.admin().to_dict()))
    reap_interval = conf.running_deleted_instance_poll_interval
    if reap_interval > 0 and _due(host, REAP, now, reap_interval):
        await hypervisor.guarded(host, startup.running_deleted(host))
    shelved_interval = conf.shelved_poll_interval
    if (shelved_interval > 0 and conf.shelved_offload_time > 0
            and _due(host, SHELVED, now, shelved_interval)):
        await hypervisor.guarded(host, shelve.offload_due(host, RequestContext.admin().to_dict()))
    reclaim = conf.reclaim_instance_interval
    if reclaim > 0 and _due(host, RECLAIM, now, reclaim):
        await hypervisor.guarded(host, soft_delete.reclaim_queued_deletes(host, RequestContext.admin().to_dict()))
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


async def confirm_unconfirmed_resizes(host: ComputeHost) -> list[str]:
    """Nova's ``_poll_unconfirmed_resizes``: every resize or cold migration to this host that has waited in
    VERIFY_RESIZE for longer than ``[DEFAULT] resize_confirm_window`` is confirmed, as a user's confirm is (an
    admin context; one that a user confirmed, reverted or deleted meanwhile is skipped). Returns the instances."""
    before = utcnow() - datetime.timedelta(seconds=host.conf.resize_confirm_window)
    async with host.db.read() as conn:
        waiting = await migration_records.finished_before(conn, host.host, before)
    confirmed = []
    context = RequestContext.admin().to_dict()
    for migration in waiting:
        uuid = migration["instance_uuid"]
        try:
            await move_api.confirm(host.db, host.transport, context, uuid, is_admin=True)
        except (InstanceInvalidState, move_api.MigrationNotFoundByStatus, exception.InstanceNotFound) as exc:
            LOG.info("auto-confirm of the resize of %s skipped: %s", uuid, exc)
            continue
        except Exception:
            LOG.exception("auto-confirm of the resize of %s failed", uuid)
            continue
        LOG.info("resize of %s confirmed automatically after %d s", uuid, host.conf.resize_confirm_window)
        confirmed.append(uuid)
    return confirmed
