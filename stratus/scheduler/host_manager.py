"""The scheduler's picture of every host, kept in memory and reconciled with the database.

Nova's scheduler re-reads every compute node (and asks placement for candidates) on every request, which is
what makes it cost seconds at ten thousand hosts. Here the picture is loaded once and then reconciled:

* every ``[scheduler] host_state_sync_interval`` (and before a request once that long has passed) the manager
  re-reads only what moved: providers whose ``updated_at`` is recent and whose generation differs from ours,
  compute nodes whose row changed, and the few services that are disabled, forced down or silent;
* a slower full scan of provider generations catches what timestamps could miss (deleted providers, skewed
  clocks), and aggregates are re-read on the same slow beat;
* liveness is judged at each request, not at the sync: the services read are those silent for longer than
  ``service_down_time`` *less the sync interval and a margin*, with their last heartbeat, so a host that falls
  silent between two syncs is down for the first request after ``service_down_time`` (Nova's servicegroup check
  on every request), not up to one interval later;
* a ``refresh_hosts`` fanout (sent by the API when services or aggregates change) makes the next request
  reload everything first.

Staleness never over-commits a host: a claim names the generation this picture holds, and placement refuses
it if the provider moved (the manager then re-reads that one provider and the scheduler tries again).

Read order matters on PostgreSQL, where each statement sees its own snapshot: generations are read *before*
inventories and usages, so a change that slips between the statements leaves us with an old generation (a
refused claim) and never a new generation over old usage (an over-commit).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from oslo_config import cfg
from sqlalchemy import func, or_, select

from stratus.db import placement
from stratus.db.engine import Connection, Database
from stratus.db.models import (
    aggregate_hosts,
    aggregate_metadata,
    aggregates,
    allocations,
    compute_nodes,
    inventories,
    resource_providers,
    services,
)
from stratus.scheduler.host_state import HostState
from stratus.utils import utcnow

LOG = logging.getLogger(__name__)

#: how far back the incremental re-read looks past the previous sync (clock skew between writers, and
#: transactions that committed after they stamped ``updated_at``)
SYNC_SLACK = timedelta(seconds=5)
#: full generation scan and aggregate re-read, in multiples of the sync interval (at least every 30 s)
SLOW_SYNC_EVERY = 15.0
#: services silent for this long before they are down are read with their heartbeat, on top of the sync interval
#: (a sync that takes a while, a request that waits for the lock)
LIVENESS_MARGIN = timedelta(seconds=1)
_NODE_COLUMNS = (compute_nodes.c.uuid, compute_nodes.c.host, compute_nodes.c.hypervisor_hostname,
                 compute_nodes.c.hypervisor_type, compute_nodes.c.hypervisor_version, compute_nodes.c.host_ip,
                 compute_nodes.c.cpu_info, compute_nodes.c.supported_instances, compute_nodes.c.stats,
                 compute_nodes.c.service_id)


def _epoch(value: datetime) -> float:
    """Seconds since the epoch of a naive UTC timestamp (as the database stores them)."""
    return value.replace(tzinfo=UTC).timestamp()


def _json(value: Any, default: Any) -> Any:
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return default
    return default if value is None else value


class HostManager:
    """Hosts as rows of numpy arrays (capacity, usage, unit limits per resource class; service health;
    instance counters), plus one ``HostState`` per host for per-host filters."""

    def __init__(self, conf: cfg.ConfigOpts, db: Database) -> None:
        self.conf = conf
        self.db = db
        self.hosts: list[HostState] = []
        self.by_provider: dict[int, int] = {}
        self.by_host: dict[str, list[int]] = {}
        self.by_node: dict[str, int] = {}
        self.rc_index: dict[str, int] = {placement.VCPU: 0, placement.MEMORY_MB: 1, placement.DISK_GB: 2}
        self._allocate(0)
        self.az_names: list[str] = []
        self.aggregate_sets: list[list[dict[str, str]]] = [[]]
        self.kinds: list[tuple[tuple[tuple[str, str, str], ...], int]] = []
        self._kind_ids: dict[tuple[tuple[tuple[str, str, str], ...], int], int] = {}
        self._lock = asyncio.Lock()
        self._loaded = False
        self._full_needed = True
        self._dirty: set[int] = set()
        self._since = utcnow()
        # never synced: -inf, not 0.0, since time.monotonic() is only seconds on a freshly booted host
        self._synced_at = float("-inf")
        self._slow_synced_at = float("-inf")
        #: until when (monotonic) the services left unread by the last ``_load_services`` are sure to be up
        self._services_sure_until = float("-inf")
        #: (from, until, service_down_time) of the last ``judge_liveness``: epoch seconds it holds for
        self._liveness: tuple[float, float, float] = (float("inf"), float("-inf"), 0.0)

    # --- arrays ------------------------------------------------------------------------------------------
    def _allocate(self, n: int) -> None:
        r = len(self.rc_index)
        self.generation = np.zeros(n, dtype=np.int64)
        # one contiguous row per resource class: a request's fit test reads whole rows
        self.capacity = np.zeros((r, n), dtype=np.int64)
        self.used = np.zeros((r, n), dtype=np.int64)
        self.min_unit = np.ones((r, n), dtype=np.int64)
        self.max_unit = np.zeros((r, n), dtype=np.int64)
        self.step_size = np.ones((r, n), dtype=np.int64)
        #: some inventory has a step size above 1 (``fit_mask`` checks steps only then)
        self.stepped = False
        self.service_up = np.ones(n, dtype=bool)
        self.service_disabled = np.zeros(n, dtype=bool)
        self.forced_down = np.zeros(n, dtype=bool)
        #: the last heartbeat (seconds since the epoch) of hosts close to or past ``service_down_time``; +inf for
        #: the plainly healthy ones, -inf for a service that never beat
        self.last_seen = np.full(n, np.inf, dtype=np.float64)
        self._liveness = (float("inf"), float("-inf"), 0.0)
        self.num_instances = np.zeros(n, dtype=np.int64)
        self.io_ops = np.zeros(n, dtype=np.int64)
        self.failed_builds = np.zeros(n, dtype=np.int64)
        self.az_id = np.zeros(n, dtype=np.int32)
        #: hosts in the same aggregates share an index into ``aggregate_sets`` (filters judge each set once)
        self.aggregate_set_id = np.zeros(n, dtype=np.int32)
        #: hosts reporting the same (supported_instances, hypervisor_version) share an index into ``kinds``
        self.kind_id = np.zeros(n, dtype=np.int32)

    def _column(self, rc: str) -> int:
        """The column of a resource class, widening the arrays the first time a class is seen."""
        col = self.rc_index.get(rc)
        if col is None:
            col = self.rc_index[rc] = len(self.rc_index)
            n = self.generation.size
            self.capacity = np.vstack([self.capacity, np.zeros((1, n), dtype=np.int64)])
            self.used = np.vstack([self.used, np.zeros((1, n), dtype=np.int64)])
            self.min_unit = np.vstack([self.min_unit, np.ones((1, n), dtype=np.int64)])
            self.max_unit = np.vstack([self.max_unit, np.zeros((1, n), dtype=np.int64)])
            self.step_size = np.vstack([self.step_size, np.ones((1, n), dtype=np.int64)])
        return col

    def __len__(self) -> int:
        return len(self.hosts)

    def nbytes(self) -> int:
        """Bytes held by the arrays (the per-host Python objects come on top)."""
        return sum(a.nbytes for a in (self.generation, self.capacity, self.used, self.min_unit, self.max_unit,
                                      self.step_size, self.service_up, self.service_disabled,
                                      self.forced_down, self.last_seen,
                                      self.num_instances, self.io_ops, self.failed_builds, self.az_id,
                                      self.aggregate_set_id, self.kind_id))

    # --- what requests ask of it -------------------------------------------------------------------------
    def fit_mask(self, resources: dict[str, int]) -> np.ndarray:
        """Hosts where ``resources`` fit free capacity and unit limits (placement's allocation candidates): the
        rows of the classes asked for, compared at once."""
        n = len(self.hosts)
        cols: list[int] = []
        amounts: list[int] = []
        for rc, amount in resources.items():
            if not amount:
                continue
            col = self.rc_index.get(rc)
            if col is None:
                return np.zeros(n, dtype=bool)
            cols.append(col)
            amounts.append(amount)
        if not n or not cols:
            return np.ones(n, dtype=bool)
        wanted = np.array(amounts, dtype=np.int64)[:, None]
        fits = ((self.capacity[cols] - self.used[cols] >= wanted) & (self.min_unit[cols] <= wanted)
                & (self.max_unit[cols] >= wanted))
        if self.stepped:
            fits &= wanted % self.step_size[cols] == 0
        return fits.all(axis=0)

    def fits_one(self, index: int, resources: dict[str, int]) -> bool:
        for rc, amount in resources.items():
            if not amount:
                continue
            col = self.rc_index.get(rc)
            if col is None:
                return False
            if (self.used[col, index] + amount > self.capacity[col, index] or amount < self.min_unit[col, index]
                    or amount > self.max_unit[col, index] or amount % self.step_size[col, index]):
                return False
        return True

    def free(self, rc: str) -> np.ndarray:
        col = self.rc_index.get(rc)
        if col is None:
            return np.zeros(len(self.hosts), dtype=np.int64)
        return self.capacity[col] - self.used[col]

    def per_host(self, values: Mapping[str, float]) -> np.ndarray:
        """A value for each host from {compute host: value} (0 for hosts not named); a host's nodes share it."""
        out = np.zeros(len(self.hosts), dtype=np.float64)
        for host, value in values.items():
            for index in self.by_host.get(host, ()):
                out[index] = value
        return out

    def zone_id(self, zone: str) -> int:
        try:
            return self.az_names.index(zone)
        except ValueError:
            return -1

    def consumed(self, index: int, generation: int, resources: dict[str, int]) -> None:
        """Our claim at ``generation`` succeeded: the provider is now at ``generation + 1`` with this usage.

        If the picture moved meanwhile (a re-read already saw the claim), it is re-read rather than guessed.
        """
        if self.generation[index] != generation:
            self._dirty.add(self.hosts[index].provider_id)
            return
        for rc, amount in resources.items():
            if amount:
                self.used[self._column(rc), index] += amount
        self.generation[index] = generation + 1
        self.num_instances[index] += 1
        self.io_ops[index] += 1

    def apply_stats(self, nodename: str, stats: dict[str, Any]) -> None:
        """Stats a compute host sent (failed builds, I/O work, instances), applied before the next re-read."""
        index = self.by_node.get(nodename)
        if index is None:
            return
        state = self.hosts[index]
        state.stats = {**state.stats, **stats}
        self.num_instances[index] = int(state.stats.get("num_instances", 0))
        self.io_ops[index] = int(state.stats.get("io_workload", 0))
        self.failed_builds[index] = int(state.stats.get("failed_builds", 0))

    def mark_dirty(self, provider_ids: Iterable[int]) -> None:
        self._dirty.update(provider_ids)

    def refresh_all(self) -> None:
        self._full_needed = True

    # --- reconciliation ----------------------------------------------------------------------------------
    async def sync(self, force: bool = False) -> None:
        """Bring the picture up to date if it is older than the sync interval (or dirty, or ``force``)."""
        now = time.monotonic()
        interval = self.conf.scheduler.host_state_sync_interval
        if not (force or self._full_needed or self._dirty or now - self._synced_at >= interval):
            if now >= self._services_sure_until:
                await self._resync_services()
            self.judge_liveness()
            return
        async with self._lock:
            now = time.monotonic()
            if not (force or self._full_needed or self._dirty or now - self._synced_at >= interval):
                if now >= self._services_sure_until:
                    async with self.db.read() as conn:
                        await self._load_services(conn)
                self.judge_liveness()
                return
            wall = utcnow()
            async with self.db.read() as conn:
                if self._full_needed or not self._loaded:
                    await self._load_all(conn)
                    self._slow_synced_at = now
                else:
                    slow = now - self._slow_synced_at >= max(30.0, SLOW_SYNC_EVERY * interval)
                    await self._load_changes(conn, wall, slow)
                    if slow:
                        self._slow_synced_at = now
                    if self._full_needed:  # a new or vanished provider: rebuild
                        await self._load_all(conn)
            self._since = wall
            self._synced_at = now
            self.judge_liveness()

    async def _resync_services(self) -> None:
        """Re-read the services alone: the hosts the last read left out (heartbeats recent enough then) may
        have fallen silent past ``service_down_time`` since, when the sync interval is long next to it."""
        async with self._lock:
            if time.monotonic() >= self._services_sure_until:
                async with self.db.read() as conn:
                    await self._load_services(conn)

    def judge_liveness(self, now: datetime | None = None) -> None:
        """``service_up`` as of ``now`` (the request's time): not forced down and a heartbeat within
        ``service_down_time``, from the heartbeats the last sync read.

        A judgement holds from its time until the oldest heartbeat it still counts is ``service_down_time`` old
        (the plainly healthy hosts, read with no heartbeat, never expire), so the requests in between reuse it
        instead of judging every host again; a read of the services starts over."""
        down_time = self.conf.service_down_time
        at = _epoch(now or utcnow())
        valid_from, valid_until, judged_down_time = self._liveness
        if valid_from <= at <= valid_until and judged_down_time == down_time:
            return
        threshold = at - down_time
        counted = self.last_seen >= threshold
        self.service_up[:] = ~self.forced_down & counted
        # the heartbeats that count now and will not for ever: the first of them to expire ends the judgement
        expiring = self.last_seen[counted & np.isfinite(self.last_seen)]
        until = float(expiring.min()) + down_time if expiring.size else float("inf")
        self._liveness = (at, until, down_time)

    async def refresh_provider(self, provider_id: int, conn: Connection | None = None) -> None:
        """Re-read one provider now (after a refused claim), on ``conn`` if given: the claim's own unit of work,
        which sees what the claims before it wrote, committed or not."""
        async with self._lock:
            if conn is not None:
                await self._load_providers(conn, [provider_id])
                return
            async with self.db.read() as read:
                await self._load_providers(read, [provider_id])

    async def _load_all(self, conn: Connection) -> None:
        started = time.perf_counter()
        # generations first (see the module docstring)
        rows = (await conn.execute(
            select(resource_providers.c.id, resource_providers.c.uuid, resource_providers.c.generation,
                   *_NODE_COLUMNS)
            .join(compute_nodes, compute_nodes.c.uuid == resource_providers.c.uuid)
            .order_by(resource_providers.c.id))).all()
        self.hosts = []
        self.by_provider = {}
        self.by_host = defaultdict(list)
        self.by_node = {}
        self.kinds = []
        self._kind_ids = {}
        self._allocate(len(rows))
        for i, row in enumerate(rows):
            state = HostState(self, i, host=row.host, nodename=row.hypervisor_hostname, provider_id=row.id,
                              provider_uuid=row.uuid, service_id=row.service_id or 0)
            self._apply_node(state, row)
            self.hosts.append(state)
            self.by_provider[row.id] = i
            self.by_host[row.host].append(i)
            self.by_node[row.hypervisor_hostname] = i
            self.generation[i] = row.generation
        await self._load_inventories(conn, None)
        await self._load_usages(conn, None)
        await self._load_services(conn)
        await self._load_aggregates(conn)
        self._loaded = True
        self._full_needed = False
        self._dirty.clear()
        LOG.info("host state: loaded %d hosts in %.1f ms", len(self.hosts), (time.perf_counter() - started) * 1e3)

    async def _load_changes(self, conn: Connection, wall: Any, slow: bool) -> None:
        since = self._since - SYNC_SLACK
        if slow:
            seen = {r.id: r.generation for r in await conn.execute(
                select(resource_providers.c.id, resource_providers.c.generation))}
            if seen.keys() != self.by_provider.keys():
                self._full_needed = True
                return
        else:
            # new providers have ids above every one we know (the slow scan catches any other arrival)
            newest = max(self.by_provider, default=0)
            seen = {r.id: r.generation for r in await conn.execute(
                select(resource_providers.c.id, resource_providers.c.generation)
                .where(or_(resource_providers.c.updated_at >= since, resource_providers.c.id > newest)))}
        changed = set(self._dirty)
        for rp_id, gen in seen.items():
            index = self.by_provider.get(rp_id)
            if index is None:
                self._full_needed = True
                return
            if self.generation[index] != gen:
                changed.add(rp_id)
        if changed:
            await self._load_providers(conn, list(changed))
        nodes = (await conn.execute(
            select(*_NODE_COLUMNS)
            .where(compute_nodes.c.updated_at >= since))).all()
        for row in nodes:
            index = self.by_node.get(row.hypervisor_hostname)
            if index is None or self.hosts[index].host != row.host:
                self._full_needed = True
                return
            self._apply_node(self.hosts[index], row)
        await self._load_services(conn)
        if slow:
            await self._load_aggregates(conn)

    async def _load_providers(self, conn: Connection, provider_ids: list[int]) -> None:
        for chunk_start in range(0, len(provider_ids), 500):
            chunk = provider_ids[chunk_start:chunk_start + 500]
            for row in await conn.execute(select(resource_providers.c.id, resource_providers.c.generation)
                                          .where(resource_providers.c.id.in_(chunk))):
                index = self.by_provider.get(row.id)
                if index is not None:
                    self.generation[index] = row.generation
            await self._load_inventories(conn, chunk)
            await self._load_usages(conn, chunk)
        self._dirty.difference_update(provider_ids)

    async def _load_inventories(self, conn: Connection, provider_ids: list[int] | None) -> None:
        query = select(inventories.c.resource_provider_id, inventories.c.resource_class, inventories.c.total,
                       inventories.c.reserved, inventories.c.min_unit, inventories.c.max_unit,
                       inventories.c.step_size, inventories.c.allocation_ratio)
        if provider_ids is not None:
            query = query.where(inventories.c.resource_provider_id.in_(provider_ids))
            rows = [self.by_provider[p] for p in provider_ids if p in self.by_provider]
            self.capacity[:, rows] = 0
            self.max_unit[:, rows] = 0
            self.min_unit[:, rows] = 1
            self.step_size[:, rows] = 1
        for rp_id, rc, total, reserved, min_unit, max_unit, step, ratio in await conn.execute(query):
            index = self.by_provider.get(rp_id)
            if index is None:
                continue
            col = self._column(rc)
            self.capacity[col, index] = int((total - reserved) * ratio)
            self.min_unit[col, index] = min_unit
            self.max_unit[col, index] = max_unit
            self.step_size[col, index] = step or 1
        self.stepped = bool((self.step_size > 1).any())

    async def _load_usages(self, conn: Connection, provider_ids: list[int] | None) -> None:
        query = (select(allocations.c.resource_provider_id, allocations.c.resource_class,
                        func.sum(allocations.c.used))
                 .group_by(allocations.c.resource_provider_id, allocations.c.resource_class))
        if provider_ids is not None:
            query = query.where(allocations.c.resource_provider_id.in_(provider_ids))
            self.used[:, [self.by_provider[p] for p in provider_ids if p in self.by_provider]] = 0
        for rp_id, rc, used in await conn.execute(query):
            index = self.by_provider.get(rp_id)
            if index is not None:
                self.used[self._column(rc), index] = int(used or 0)

    def _apply_node(self, state: HostState, row: Any) -> None:
        state.hypervisor_type = row.hypervisor_type
        state.hypervisor_version = row.hypervisor_version
        state.host_ip = row.host_ip
        state.cpu_info = _json(row.cpu_info, {})
        state.supported_instances = [tuple(t) for t in _json(row.supported_instances, [])]
        state.stats = _json(row.stats, {})
        i = state.index
        kind = (tuple(state.supported_instances), int(state.hypervisor_version or 0))
        kind_id = self._kind_ids.get(kind)
        if kind_id is None:
            kind_id = self._kind_ids[kind] = len(self.kinds)
            self.kinds.append(kind)
        self.kind_id[i] = kind_id
        self.num_instances[i] = int(state.stats.get("num_instances", 0))
        self.io_ops[i] = int(state.stats.get("io_workload", 0))
        self.failed_builds[i] = int(state.stats.get("failed_builds", 0))

    async def _load_services(self, conn: Connection) -> None:
        """Only the services that are not plainly healthy are read: disabled, forced down, or silent for longer
        than ``service_down_time`` less the sync interval and ``LIVENESS_MARGIN`` (those may be down before the
        next sync: ``judge_liveness`` decides at each request from their heartbeat). Every other compute host is
        up and enabled."""
        early = timedelta(seconds=self.conf.scheduler.host_state_sync_interval) + LIVENESS_MARGIN
        down_time = timedelta(seconds=self.conf.service_down_time)
        # never read the healthy ones on every sync: at most half of service_down_time early; when that cap
        # bites (an interval long next to service_down_time), ``sync`` re-reads the services alone once the
        # unread ones could have gone down
        window = min(early, down_time / 2)
        read_at = time.monotonic()
        threshold = utcnow() - down_time + window
        last = func.coalesce(services.c.last_seen_up, services.c.updated_at, services.c.created_at)
        rows = await conn.execute(
            select(services.c.host, services.c.disabled, services.c.forced_down, last)
            .where(services.c.binary == "nova-compute",
                   or_(services.c.disabled.is_(True), services.c.forced_down.is_(True), last < threshold)))
        self.service_disabled[:] = False
        self.forced_down[:] = False
        self.last_seen[:] = np.inf
        self._liveness = (float("inf"), float("-inf"), 0.0)
        for host, disabled, forced_down, seen in rows:
            for index in self.by_host.get(host, ()):
                self.service_disabled[index] = bool(disabled)
                self.forced_down[index] = bool(forced_down)
                self.last_seen[index] = -np.inf if seen is None else _epoch(seen)
        self._services_sure_until = read_at + window.total_seconds()

    async def _load_aggregates(self, conn: Connection) -> None:
        metadata: dict[int, dict[str, str]] = defaultdict(dict)
        for agg_id, key, value in await conn.execute(
                select(aggregate_metadata.c.aggregate_id, aggregate_metadata.c.key, aggregate_metadata.c.value)):
            metadata[agg_id][key] = value
        per_host: dict[str, list[int]] = defaultdict(list)
        for agg_id, host in await conn.execute(
                select(aggregate_hosts.c.aggregate_id, aggregate_hosts.c.host)
                .join(aggregates, aggregates.c.id == aggregate_hosts.c.aggregate_id)):
            per_host[host].append(agg_id)
        default_zone = self.conf.default_availability_zone
        self.az_names = [default_zone]
        zone_ids = {default_zone: 0}
        self.aggregate_sets = [[]]
        set_ids: dict[tuple[int, ...], int] = {(): 0}
        for state in self.hosts:
            memberships = tuple(sorted(per_host.get(state.host, ())))
            state.aggregates = [metadata[a] for a in memberships]
            set_id = set_ids.get(memberships)
            if set_id is None:
                set_id = set_ids[memberships] = len(self.aggregate_sets)
                self.aggregate_sets.append(state.aggregates)
            self.aggregate_set_id[state.index] = set_id
            zones = sorted({m["availability_zone"] for m in state.aggregates if m.get("availability_zone")})
            zone = ",".join(zones) if zones else default_zone
            state.availability_zone = zone
            if zone not in zone_ids:
                zone_ids[zone] = len(self.az_names)
                self.az_names.append(zone)
            self.az_id[state.index] = zone_ids[zone]
