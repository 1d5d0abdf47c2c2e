"""The scheduler service: ``select_destinations`` = candidates, filters, weighers, then an atomic claim.

Candidates come from the host manager's in-memory picture (placement's model: inventories minus
allocations, unit limits, allocation ratios); filters and weighers run over it as vector operations; the
claim names the provider generation the picture holds, so a stale picture costs a retry, never an
over-commit. Claims are made here (as Nova's scheduler claims in placement): two schedulers, or two
requests, never over-commit a host.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import numpy as np
from oslo_config import cfg

from stratus import exception, failpoints
from stratus.db import placement
from stratus.db.engine import Database
from stratus.scheduler import filters as filters_mod
from stratus.scheduler import request as request_mod
from stratus.scheduler import weighers as weighers_mod
from stratus.scheduler.filters.base import filter_hosts
from stratus.scheduler.host_manager import HostManager
from stratus.scheduler.host_state import HostState
from stratus.scheduler.request import SchedulingRequest, resources_from_flavor
from stratus.scheduler.weighers.base import weigh_hosts

__all__ = ["SchedulerManager", "resources_from_flavor"]

LOG = logging.getLogger(__name__)
#: claims tried on one host when its generation keeps moving under us
CLAIM_RETRIES = 3
#: how many times the ranking is recomputed (after re-reading) before giving up on an instance
RANK_ROUNDS = 3
#: hosts ranked beyond the ones needed (subset and alternates), to try when claims are refused
RANK_SPARE = 8


class _Held(Exception):
    """An instance being scheduled already holds allocations: the request starts over with ``_earlier_claims``."""


class _HeldCheck:
    """Whether the instances of a request hold allocations is yet to be asked (in the first claim's unit)."""

    __slots__ = ("done", "uuids")

    def __init__(self, uuids: list[str]) -> None:
        self.uuids = uuids
        self.done = False


class SchedulerManager:
    def __init__(self, conf: cfg.ConfigOpts, db: Database) -> None:
        self.conf = conf
        self.db = db
        self.host_manager = HostManager(conf, db)
        self.filters = filters_mod.load(conf.filter_scheduler.enabled_filters)
        self.weighers = weighers_mod.load(conf, conf.filter_scheduler.weight_classes)

    # --- RPC endpoints -----------------------------------------------------------------------------------
    async def refresh_hosts(self, context: dict[str, Any]) -> None:
        """Services or aggregates changed: reload the picture before the next decision."""
        self.host_manager.refresh_all()

    async def update_host_stats(self, context: dict[str, Any], nodename: str, stats: dict[str, Any]) -> None:
        """A compute host's failed builds (and load) changed: weigh them from the next request on."""
        self.host_manager.apply_stats(nodename, stats)

    async def select_destinations(self, context: dict[str, Any], request_spec: dict[str, Any],
                                  instance_uuids: list[str], return_alternates: bool = True
                                  ) -> list[list[dict[str, Any]]]:
        """For each instance: the claimed host first, then unclaimed alternates. All or nothing."""
        hosts = self.host_manager
        await hosts.sync()
        request = await self._request(request_spec, instance_uuids)
        alternates_wanted = self.conf.scheduler.max_attempts - 1 if return_alternates else 0
        # what the instances already hold is asked in the first claim's unit of work (nearly always: nothing),
        # not in a read of its own; only when something is held, or no claim is even tried, does the request
        # start over with ``_earlier_claims`` first
        check = _HeldCheck(instance_uuids)
        try:
            return await self._choose(request, instance_uuids, alternates_wanted, {}, check)
        except _Held:
            pass
        except exception.NoValidHost:
            if check.done:  # asked, and nothing was held: the answer stands
                raise
        kept = await self._earlier_claims(request, instance_uuids)
        await hosts.sync()
        return await self._choose(request, instance_uuids, alternates_wanted, kept, None)

    async def _choose(self, request: SchedulingRequest, instance_uuids: list[str], alternates_wanted: int,
                      kept: dict[str, int], check: _HeldCheck | None) -> list[list[dict[str, Any]]]:
        """Claim for each instance (or keep what ``kept`` says it holds), all or nothing."""
        hosts = self.host_manager
        results: list[list[dict[str, Any]]] = []
        claimed: list[tuple[str, int]] = []
        try:
            for uuid in instance_uuids:
                if uuid in kept:
                    chosen, alternates = self._keep(request, kept[uuid], alternates_wanted)
                else:
                    chosen, alternates = await self._place(request, uuid, alternates_wanted, check)
                claimed.append((uuid, chosen.provider_id))
                request.chose(chosen.host)
                results.append([self._selection(chosen, request.resources, True),
                                *(self._selection(h, request.resources, False) for h in alternates)])
        except exception.NoValidHost:
            if claimed:
                async with self.db.write() as conn:
                    for uuid, _ in claimed:
                        await placement.remove_allocations(conn, uuid)
                hosts.mark_dirty(provider for _, provider in claimed)
            raise
        return results

    # --- internals ---------------------------------------------------------------------------------------
    async def _earlier_claims(self, request: SchedulingRequest, instance_uuids: list[str]) -> dict[str, int]:
        """What these instances already hold, as placement's ``PUT /allocations/{consumer}`` treats a consumer's
        allocations: nothing is legitimately held by an instance that is being scheduled (a host that fails a
        build, and a conductor that retries a call, give the claim back first). What is found is the claim of this
        very request handled before: a scheduler that died after it claimed and before it replied (the request
        is delivered again), or a copy of the request (a publish retried across a lost connection). A claim
        that this request could have made (one usable host, the request's resources) is this request's
        answer again, so every copy gets the same host and the instance never holds two claims nor loses the
        one its conductor records; any other is given back before claiming anew. Returns uuid → host index."""
        async with self.db.read() as conn:
            holding = await placement.consumers_holding(conn, instance_uuids)
            held = {uuid: await placement.allocations_for_consumer(conn, uuid) for uuid in holding}
        if not held:
            return {}
        hosts = self.host_manager
        wanted = {rc: amount for rc, amount in request.resources.items() if amount}
        kept: dict[str, int] = {}
        stale: list[str] = []
        for uuid, by_provider in held.items():
            index = hosts.by_provider.get(next(iter(by_provider))) if len(by_provider) == 1 else None
            used = {rc: amount for rc, amount in next(iter(by_provider.values())).items() if amount}
            if (index is not None and used == wanted and hosts.service_up[index] and not hosts.service_disabled[index]
                    and hosts.hosts[index].host not in (request.ignore_hosts or ())):
                LOG.info("instance %s already holds its claim on %s (this request, handled before): keeping it",
                         uuid, hosts.hosts[index].nodename)
                kept[uuid] = index
            else:
                stale.append(uuid)
        if stale:
            async with self.db.write() as conn:
                for uuid in stale:
                    LOG.warning("instance %s already holds allocations (a scheduler that died before it replied?): "
                                "giving them back before claiming", uuid)
                    hosts.mark_dirty(await placement.remove_allocations(conn, uuid))
        return kept

    def _keep(self, request: SchedulingRequest, index: int, alternates_wanted: int
              ) -> tuple[HostState, list[HostState]]:
        """The host of a claim kept (see ``_earlier_claims``), with fresh unclaimed alternates."""
        hosts = self.host_manager
        wanted = self.conf.filter_scheduler.host_subset_size + alternates_wanted + RANK_SPARE
        others = [i for i in self._ranked(request, wanted).tolist() if i != index]
        return hosts.hosts[index], self._alternates(others, request, alternates_wanted)

    def _alternates(self, ranked: list[int], request: SchedulingRequest, wanted: int) -> list[HostState]:
        """The first ``wanted`` of the hosts ``ranked`` (best first) where the request still fits."""
        hosts = self.host_manager
        found: list[HostState] = []
        for index in ranked:
            if len(found) >= wanted:
                break
            if hosts.fits_one(index, request.resources):
                found.append(hosts.hosts[index])
        return found

    async def _request(self, spec: dict[str, Any], instance_uuids: list[str]) -> SchedulingRequest:
        hints = spec.get("scheduler_hints") or {}
        if spec.get("instance_group") or any(hints.get(k) for k in ("group", "same_host", "different_host")):
            async with self.db.read() as conn:
                return await request_mod.build(conn, spec, instance_uuids)
        return await request_mod.build(None, spec, instance_uuids)

    def _ranked(self, request: SchedulingRequest, wanted: int) -> np.ndarray:
        """Host indices, best first: at least ``wanted`` of them when that many pass."""
        hosts = self.host_manager
        candidates = np.flatnonzero(hosts.fit_mask(request.resources))
        if request.ignore_hosts:
            candidates = candidates[hosts.per_host(dict.fromkeys(request.ignore_hosts, 1.0))[candidates] == 0]
        if request.force_hosts or request.force_nodes:
            # Nova skips the filters for a forced host: the operator asked for it by name
            forced = [i for i in candidates
                      if (not request.force_hosts or hosts.hosts[i].host in request.force_hosts)
                      and (not request.force_nodes or hosts.hosts[i].nodename in request.force_nodes)]
            candidates = np.array(forced, dtype=np.int64)
        else:
            if request.requested_host or request.requested_node:
                candidates = np.array([i for i in candidates
                                       if request.requested_host in (None, hosts.hosts[i].host)
                                       and request.requested_node in (None, hosts.hosts[i].nodename)],
                                      dtype=np.int64)
            candidates = filter_hosts(self.filters, hosts, candidates, request)
        if not candidates.size:
            return candidates
        total = weigh_hosts(self.weighers, hosts, candidates, request)
        if candidates.size > wanted:
            top = np.argpartition(-total, wanted - 1)[:wanted]
            order = top[np.lexsort((candidates[top], -total[top]))]
        else:
            order = np.lexsort((candidates, -total))
        ranked = candidates[order]
        subset = min(self.conf.filter_scheduler.host_subset_size, ranked.size)
        if subset > 1:
            pick = random.randrange(subset)
            ranked = np.concatenate([ranked[pick:pick + 1], np.delete(ranked, pick)])
        return ranked

    async def _place(self, request: SchedulingRequest, uuid: str, alternates_wanted: int,
                     check: _HeldCheck | None = None) -> tuple[HostState, list[HostState]]:
        hosts = self.host_manager
        wanted = self.conf.filter_scheduler.host_subset_size + alternates_wanted + RANK_SPARE
        resynced = False
        for _ in range(RANK_ROUNDS):
            ranked = self._ranked(request, wanted)
            if not ranked.size:
                if resynced:
                    break
                # before saying no, make sure the picture is current (a host may have just started)
                await hosts.sync(force=True)
                resynced = True
                continue
            order = ranked.tolist()
            for position, index in enumerate(order):
                if await self._claim(index, uuid, request, check):
                    return hosts.hosts[index], self._alternates(order[position + 1:], request, alternates_wanted)
                LOG.debug("claim on %s lost for %s; trying the next host", hosts.hosts[index].nodename, uuid)
            await hosts.sync(force=True)
            resynced = True
        raise exception.NoValidHost(reason="There are not enough hosts available.")

    async def _claim(self, index: int, uuid: str, request: SchedulingRequest, check: _HeldCheck | None = None
                     ) -> bool:
        """Claim on one host at the generation the picture holds; a lost compare-and-swap re-reads the provider in
        the same unit of work (``CLAIM_RETRIES`` tries in all), where the claims that went first in this process
        are seen even before their group commits, so the retry is made against what the claim must beat.
        ``check`` not done yet: first ask whether the request's instances hold anything (``_Held`` if they do,
        with nothing written)."""
        hosts = self.host_manager
        state = hosts.hosts[index]
        ok = False
        async with self.db.write() as conn:
            if check is not None and not check.done:
                check.done = True
                if await placement.consumers_holding(conn, check.uuids):
                    raise _Held()
            for attempt in range(CLAIM_RETRIES):
                if attempt:
                    await hosts.refresh_provider(state.provider_id, conn)
                # the picture read once the write lock is held: a claim that waited for the lock sees the claims
                # of this process that went first, instead of losing its compare-and-swap to them
                if not hosts.fits_one(index, request.resources):
                    return False
                generation = int(hosts.generation[index])
                # fits_one read the picture's usage, which is that of ``generation`` (generations are read first
                # and every usage change bumps them): placement need not check the fit again
                ok = await placement.claim_at_generation(conn, state.provider_id, generation, uuid,
                                                         request.spec["project_id"], request.spec["user_id"],
                                                         request.resources, fit_checked_at_generation=True)
                if ok:
                    hosts.consumed(index, generation, request.resources)
                    break
        if ok:
            failpoints.hit("scheduler.claimed")
        return ok

    @staticmethod
    def _selection(host: HostState, resources: dict[str, int], claimed: bool) -> dict[str, Any]:
        return {"host": host.host, "nodename": host.nodename, "provider_id": host.provider_id,
                "provider_uuid": host.provider_uuid, "resources": resources, "claimed": claimed,
                "availability_zone": host.availability_zone}

    # --- background --------------------------------------------------------------------------------------
    async def run_periodic(self) -> None:
        """Keep the picture fresh between requests, so a request rarely pays for a re-read itself."""
        interval = self.conf.scheduler.host_state_sync_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.host_manager.sync()
            except Exception:
                LOG.exception("host state sync failed")
