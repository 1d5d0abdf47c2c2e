"""The health of this host's hypervisor: reached (driver initialised, resources reported, the start-up
reconciliation run once), lost (the service disables itself with Nova's ``AUTO: `` reason) and back (only such
a disable is undone), and the lifecycle events it sends (a guest that changed state on its own is synced at once).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from stratus.compute import power_sync, resource_tracker, startup
from stratus.compute.host import ComputeHost
from stratus.context import RequestContext
from stratus.db import services as services_db
from stratus.virt.driver import HypervisorUnavailable, LifecycleEvent

LOG = logging.getLogger(__name__)
#: Nova's prefix for a reason the service wrote itself; only such a disable is undone by the service
DISABLE_PREFIX = "AUTO: "


async def reach(host: ComputeHost, at_start: bool = False) -> None:
    """Initialise the driver if that has not worked yet, report resources, run the start-up reconciliation
    if it has not run; a HypervisorUnavailable on the way disables the service, success enables it again
    (``at_start``: it may be disabled by a previous run)."""
    try:
        if not host.driver_ready:
            await host.driver.init_host(host.host)
            host.driver_ready = True
        resources = await host.driver.read_available_resources()
        async with host.db.write() as conn:
            host.node = await resource_tracker.update_available_resource(conn, host.conf, resources,
                                                                         host.service_id, host.host,
                                                                         host.failed_builds)
        if not host.reconciled:
            done = await startup.reconcile(host)
            host.reconciled = True
            if done:
                LOG.info("start-up of %s: %s", host.host, ", ".join(f"{u} {w}" for u, w in done))
    except HypervisorUnavailable as exc:
        await lost(host, exc)
        return
    if host.hypervisor_down or at_start:
        await back(host)


async def guarded(host: ComputeHost, task: Awaitable[Any]) -> None:
    """Run a task that talks to the hypervisor; its HypervisorUnavailable disables the service."""
    try:
        await task
    except HypervisorUnavailable as exc:
        await lost(host, exc)


async def lost(host: ComputeHost, error: HypervisorUnavailable) -> None:
    """Disable the service with the driver's reason (an operator's disable is kept) and tell schedulers."""
    first = not host.hypervisor_down
    host.hypervisor_down = True
    async with host.db.write() as conn:
        disabled = await services_db.auto_disable(conn, host.service_id, DISABLE_PREFIX + error.message)
    if first:
        LOG.error("hypervisor of %s unavailable: %s; the service is %s", host.host, error.message,
                  "disabled until it answers again" if disabled else "left as it is")
    if disabled:
        await host.scheduler.refresh_hosts(RequestContext.admin().to_dict())


async def back(host: ComputeHost) -> None:
    """Enable the service again if it disabled itself (Nova's ``AUTO: `` reason), and tell schedulers."""
    host.hypervisor_down = False
    async with host.db.write() as conn:
        enabled = await services_db.auto_enable(conn, host.service_id, DISABLE_PREFIX)
    if enabled:
        LOG.info("hypervisor of %s answers again: the service is enabled", host.host)
        await host.scheduler.refresh_hosts(RequestContext.admin().to_dict())


def lifecycle_event(host: ComputeHost, event: LifecycleEvent) -> None:
    """A guest changed state on its own: sync that instance at once (one queued sync per instance; none while
    an action of ours holds it: its own result is the truth)."""
    uuid = event.instance_uuid
    LOG.info("lifecycle event on %s: instance %s %s", host.host, uuid, event.transition)
    if uuid in host.pending_syncs or host.locks.held(uuid):
        return
    host.pending_syncs.add(uuid)

    async def sync() -> None:
        try:
            await power_sync.sync_instance(host, RequestContext.admin().to_dict(), uuid)
        except HypervisorUnavailable as exc:
            await lost(host, exc)
        finally:
            host.pending_syncs.discard(uuid)

    host.dispatch(sync())
