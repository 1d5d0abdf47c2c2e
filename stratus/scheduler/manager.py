"""The scheduler service: ``select_destinations`` = candidates, filters, weighers, then an atomic claim.

Claims are made here (as Nova's scheduler claims in placement) so two schedulers, or two requests, never
over-commit a host: a lost compare-and-swap re-reads the host and tries again or moves to the next host.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any

from oslo_config import cfg
from sqlalchemy import select

from stratus import exception
from stratus.db import placement
from stratus.db import services as services_db
from stratus.db.engine import Database
from stratus.db.models import compute_nodes, services
from stratus.scheduler.filters.base import BaseHostFilter, filter_hosts
from stratus.scheduler.filters.compute_filter import ComputeFilter
from stratus.scheduler.host_state import HostState
from stratus.scheduler.weighers.base import BaseHostWeigher, weigh_hosts
from stratus.scheduler.weighers.ram import RAMWeigher
from stratus.utils import utcnow

LOG = logging.getLogger(__name__)
CLAIM_RETRIES = 5


def resources_from_flavor(flavor: dict[str, Any]) -> dict[str, int]:
    """The resource classes a flavor asks for, as Nova's scheduler utils compute them."""
    disk = int(flavor.get("root_gb", 0)) + int(flavor.get("ephemeral_gb", 0))
    disk += math.ceil(int(flavor.get("swap", 0) or 0) / 1024)
    return {placement.VCPU: int(flavor["vcpus"]), placement.MEMORY_MB: int(flavor["memory_mb"]),
            placement.DISK_GB: disk}


class SchedulerManager:
    def __init__(self, conf: cfg.ConfigOpts, db: Database) -> None:
        self.conf = conf
        self.db = db
        self.filters: list[BaseHostFilter] = [ComputeFilter()]
        self.weighers: list[BaseHostWeigher] = [RAMWeigher(conf)]

    async def _host_states(self) -> list[HostState]:
        async with self.db.read() as conn:
            providers = await placement.providers_with_inventory(conn)
            rows = (await conn.execute(
                select(compute_nodes.c.hypervisor_hostname, compute_nodes.c.host, services.c.disabled,
                       services.c.forced_down, services.c.last_seen_up, services.c.updated_at,
                       services.c.created_at)
                .join(services, services.c.id == compute_nodes.c.service_id))).mappings().all()
        now = utcnow()
        nodes = {r["hypervisor_hostname"]: r for r in rows}
        states = []
        for p in providers:
            node = nodes.get(p["name"])
            if node is None:
                continue
            states.append(HostState(
                host=node["host"], nodename=p["name"], provider_id=p["id"], provider_uuid=p["uuid"],
                inventories=p["inventories"], usages=dict(p["usages"]),
                service_up=services_db.is_up(dict(node), self.conf.service_down_time, now),
                service_disabled=bool(node["disabled"])))
        return states

    def _ranked(self, hosts: list[HostState], spec: dict[str, Any], resources: dict[str, int]) -> list[HostState]:
        hosts = [h for h in hosts if h.fits(resources)]
        hosts = filter_hosts(self.filters, hosts, spec)
        weighed = [h for _, h in weigh_hosts(self.weighers, hosts, spec)]
        subset = min(self.conf.filter_scheduler.host_subset_size, len(weighed))
        if subset > 1:
            chosen = random.choice(weighed[:subset])
            weighed.remove(chosen)
            weighed.insert(0, chosen)
        return weighed

    async def _claim_on(self, host: HostState, consumer: str, spec: dict[str, Any], resources: dict[str, int]
                        ) -> bool:
        for _ in range(CLAIM_RETRIES):
            try:
                async with self.db.write() as conn:
                    return await placement.claim(conn, host.provider_id, consumer, spec["project_id"],
                                                 spec["user_id"], resources)
            except exception.ConcurrentUpdateDetected:
                continue
        return False

    async def select_destinations(self, context: dict[str, Any], request_spec: dict[str, Any],
                                  instance_uuids: list[str], return_alternates: bool = True
                                  ) -> list[list[dict[str, Any]]]:
        """For each instance: the claimed host first, then unclaimed alternates. All or nothing."""
        resources = request_spec.get("resources") or resources_from_flavor(request_spec["flavor"])
        hosts = await self._host_states()
        alternates_wanted = self.conf.scheduler.max_attempts - 1 if return_alternates else 0
        results: list[list[dict[str, Any]]] = []
        claimed: list[str] = []
        try:
            for uuid in instance_uuids:
                ranked = self._ranked(hosts, request_spec, resources)
                chosen: HostState | None = None
                for host in ranked:
                    if await self._claim_on(host, uuid, request_spec, resources):
                        chosen = host
                        break
                    LOG.debug("claim on %s lost for %s; trying the next host", host.nodename, uuid)
                if chosen is None:
                    raise exception.NoValidHost(reason="There are not enough hosts available.")
                claimed.append(uuid)
                chosen.consume(resources)
                alternates = [h for h in ranked if h is not chosen][:alternates_wanted]
                results.append([self._selection(h, resources, h is chosen) for h in [chosen, *alternates]])
        except exception.NoValidHost:
            if claimed:
                async with self.db.write() as conn:
                    for uuid in claimed:
                        await placement.remove_allocations(conn, uuid)
            raise
        return results

    @staticmethod
    def _selection(host: HostState, resources: dict[str, int], claimed: bool) -> dict[str, Any]:
        return {"host": host.host, "nodename": host.nodename, "provider_id": host.provider_id,
                "provider_uuid": host.provider_uuid, "resources": resources, "claimed": claimed}
