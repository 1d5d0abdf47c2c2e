"""Weighers score hosts; each score is scaled to 0..1 over the candidates, multiplied and summed.

As in Nova, a weigher gives a raw value per host (``host_weight``) and a multiplier; the scaling makes
weighers with different units comparable. A weigher that can score every candidate at once from the host
manager's arrays offers ``weights``; the sum is then a handful of vector operations for any number of hosts.
"""

from __future__ import annotations

import abc

import numpy as np

from stratus.scheduler.host_manager import HostManager
from stratus.scheduler.host_state import HostState
from stratus.scheduler.request import SchedulingRequest


class BaseHostWeigher(abc.ABC):
    #: fixed bounds for the scaling, when the weigher knows them (None: the candidates' min and max)
    minval: float | None = None
    maxval: float | None = None

    @abc.abstractmethod
    def weight_multiplier(self) -> float:
        """How much this weigher counts (negative inverts it)."""

    def run_for_request(self, request: SchedulingRequest) -> bool:
        """False when every host would score the same for this request (the weigher adds nothing)."""
        return True

    @abc.abstractmethod
    def host_weight(self, host_state: HostState, request: SchedulingRequest) -> float:
        """The raw value for one host; higher is better before the multiplier."""

    def weights(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest
                ) -> np.ndarray | None:
        """Raw values for all candidates at once, or None to be asked host by host."""
        return None


def normalize(raw: np.ndarray, minval: float | None = None, maxval: float | None = None) -> np.ndarray:
    """Scale to 0..1 as Nova does; all-equal values scale to 0."""
    lo = float(raw.min()) if minval is None else minval
    hi = float(raw.max()) if maxval is None else maxval
    if hi == lo:
        return np.zeros(raw.size, dtype=np.float64)
    return (raw - lo) / (hi - lo)


def weigh_hosts(weighers: list[BaseHostWeigher], hosts: HostManager, candidates: np.ndarray,
                request: SchedulingRequest) -> np.ndarray:
    """The total weight of each candidate (same order as ``candidates``): each weigher's values scaled as
    ``normalize`` does, times its multiplier, summed in the weighers' order. The weighers' values are scaled
    together, as the rows of one array (a few vector operations per request, not a few per weigher)."""
    if not candidates.size:
        return np.zeros(candidates.size, dtype=np.float64)
    rows: list[np.ndarray] = []
    used: list[BaseHostWeigher] = []
    multipliers: list[float] = []
    for w in weighers:
        if not w.run_for_request(request):
            continue
        multiplier = w.weight_multiplier()
        if not multiplier:
            continue
        raw = w.weights(hosts, candidates, request)
        if raw is None:
            states = hosts.hosts
            raw = np.fromiter((w.host_weight(states[i], request) for i in candidates), dtype=np.float64,
                              count=candidates.size)
        rows.append(raw)
        used.append(w)
        multipliers.append(multiplier)
    if not rows:
        return np.zeros(candidates.size, dtype=np.float64)
    raw = np.array(rows, dtype=np.float64)
    lo = raw.min(axis=1)
    hi = raw.max(axis=1)
    for row, w in enumerate(used):
        if w.minval is not None:
            lo[row] = w.minval
        if w.maxval is not None:
            hi[row] = w.maxval
    span = hi - lo
    flat = span == 0
    if flat.any():  # all-equal values scale to 0
        span[flat] = 1.0
    scaled = (raw - lo[:, None]) / span[:, None]
    if flat.any():
        scaled[flat] = 0.0
    return (np.array(multipliers, dtype=np.float64)[:, None] * scaled).sum(axis=0)
