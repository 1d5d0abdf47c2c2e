"""The state the conductor's tasks share: configuration, database, the scheduler's and computes' clients, this
conductor's services row and the builds it is scheduling right now.

Every task module (build.py, recovery.py, and the moves to come) takes a ``ConductorState``; the manager, which
only dispatches RPC messages to them, is one, so no task module imports it.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from oslo_config import cfg

from stratus.background import BackgroundTasks
from stratus.compute.rpcapi import ComputeAPI
from stratus.db.engine import Database
from stratus.rpc.transport import Transport
from stratus.scheduler.rpcapi import SchedulerAPI
from stratus.utils import utcnow


class InFlight:
    """The builds this process is scheduling right now (counted: a boot request and a recovery pass may both
    hold one for a moment). A lease of this conductor on a build not in here is a leftover of its previous run."""

    def __init__(self) -> None:
        self._count: collections.Counter[str] = collections.Counter()

    @contextlib.contextmanager
    def hold(self, uuids: Iterable[str]) -> Iterator[None]:
        held = list(uuids)
        self._count.update(held)
        try:
            yield
        finally:
            self._count.subtract(held)
            for uuid in held:
                if self._count[uuid] <= 0:
                    del self._count[uuid]

    def __contains__(self, uuid: object) -> bool:
        return uuid in self._count


class ConductorState(BackgroundTasks):
    """Its background tasks (:meth:`dispatch`): what a recovery pass starts and must not wait for (a timed-out
    build's ports, tried again while the Networking service does not answer)."""

    background_name = "conductor"

    def __init__(self, conf: cfg.ConfigOpts, db: Database, transport: Transport, service_id: int = 0,
                 network: Any = None) -> None:
        super().__init__()
        self.conf = conf
        #: Nova's network API (stratus/network/neutron.py), or None without a Networking service
        self.network = network
        self.db = db
        self.transport = transport
        self.scheduler = SchedulerAPI(transport)
        self.compute = ComputeAPI(transport)
        #: this conductor's services row: the holder its leases name
        self.service_id = service_id
        self.in_flight = InFlight()
        #: when this process started: with the in-process transport no cast made before can still arrive
        self.started_at = utcnow()
        self.in_process = conf.transport_url.startswith(("local:", "fake:"))
