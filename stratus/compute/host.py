"""The state one compute host's flows share: its configuration, database, driver, clients, locks and node.

Every flow module (build, delete, power, snapshot, console, the periodic tasks, the start-up reconciliation, the
power-state sync) takes a ``ComputeHost`` and nothing else, so none of them imports the manager and the manager,
which only dispatches RPC messages to them, imports them all: there is no import circle.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from oslo_config import cfg

from stratus.background import BackgroundTasks
from stratus.compute import resource_tracker
from stratus.compute.instance_events import InstanceEvents
from stratus.compute.locks import InstanceLocks
from stratus.conductor.rpcapi import ConductorAPI
from stratus.db.engine import Database
from stratus.image.client import ImageClient
from stratus.network.neutron import API as NetworkAPI
from stratus.priority import background_turn
from stratus.rpc.transport import Transport
from stratus.scheduler.rpcapi import SchedulerAPI
from stratus.virt.driver import ComputeDriver, LiveMigrationControl

LOG = logging.getLogger(__name__)
#: seconds between the first change of a host's stats (a build that ended, an instance gone) and their write,
#: which every change up to then shares (``ComputeHost.stats_changed``); well within a scheduler's re-read interval
STATS_WRITE_DELAY = 0.25


class ComputeHost(BackgroundTasks):
    """Its background tasks (:meth:`dispatch`): the sync's stops, start-up retries, a failed build's ports."""

    def __init__(self, conf: cfg.ConfigOpts, db: Database, transport: Transport, *, host: str,
                 driver: ComputeDriver, images: ImageClient | None, network: NetworkAPI | None = None) -> None:
        super().__init__()
        self.background_name = f"compute host {host}"
        self.conf = conf
        #: Nova's network API on the Networking service (stratus/network/neutron.py); None: servers get no ports
        self.network = network
        #: the external events (network-vif-plugged) the host's builds and attaches wait for
        self.instance_events = InstanceEvents()
        self.db = db
        self.host = host
        self.driver = driver
        self.images = images
        self.transport = transport
        self.conductor = ConductorAPI(transport)
        self.scheduler = SchedulerAPI(transport)
        self.service_id = 0
        self.node: dict[str, Any] = {}
        self.locks = InstanceLocks()
        #: ``[DEFAULT] max_concurrent_builds`` (0: none): the builds of this host past it wait for a turn
        limit = conf.max_concurrent_builds
        self.build_semaphore: asyncio.Semaphore | None = asyncio.Semaphore(limit) if limit else None
        #: consecutive failed builds, reported in the node's stats for the BuildFailureWeigher; a success resets it
        self.failed_builds = 0
        #: the hypervisor stopped answering (the service disabled itself); cleared by the first pass that reaches it
        self.hypervisor_down = False
        self.driver_ready = False  # driver.init_host succeeded
        self.reconciled = False  # the start-up reconciliation ran (it waits for a reachable hypervisor)
        self.pending_syncs: set[str] = set()  # instances with a lifecycle-event sync queued
        #: the live migrations this host (their source) runs now, by migration id: what abort and force-complete set
        self.live_migrations: dict[int, LiveMigrationControl] = {}
        #: the periodic tasks' next run, in time.monotonic() (compute/periodic.py)
        self.next_run: dict[str, float] = {}
        #: a write of the node's stats asked for and not yet under way (``stats_changed``)
        self._stats_due = False

    def driver_instance(self, row: dict[str, Any]) -> dict[str, Any]:
        """An instance row as the driver sees it: with its hypervisor name."""
        return {**row, "name": self.conf.instance_name_template % row["id"]}

    async def report_stats(self, conn: Any) -> None:
        """The node's stats after a change (none to write while the hypervisor has never answered)."""
        if self.node:
            self.node = await resource_tracker.report_stats(conn, self.node, self.failed_builds)

    def stats_changed(self) -> None:
        """A build ended or an instance went away: write the node's stats ``STATS_WRITE_DELAY`` later, in a unit of
        work of its own that every change made before it starts shares. The builds and deletes that end on a busy
        host meanwhile are one count of its instances and one write, not one each; the stats are for the
        schedulers' weighers, which count their own claims meanwhile and re-read the node at their next sync
        (``[scheduler] host_state_sync_interval``; claims themselves are atomic in placement, so a late count never
        over-commits a host). A failed build still writes its stats in its own unit and sends them at once (the
        BuildFailureWeigher's count)."""
        if self.node and not self._stats_due:
            self._stats_due = True
            self.dispatch(self._write_stats())

    async def _write_stats(self) -> None:
        try:
            await asyncio.sleep(STATS_WRITE_DELAY)
            await background_turn()  # after the API's requests, as the builds' own steps (stratus/priority.py)
        finally:
            self._stats_due = False  # cancelled (service stop): the next change asks again
        async with self.db.write() as conn:
            # the changes of the units before this one are in what this one reads; any later one asks anew
            await self.report_stats(conn)

    async def send_stats(self, context: dict[str, Any]) -> None:
        """Tell the schedulers the node's stats now (they weigh a build failure from their next request)."""
        if self.node:
            await self.scheduler.update_host_stats(context, self.node["hypervisor_hostname"], self.node["stats"])
