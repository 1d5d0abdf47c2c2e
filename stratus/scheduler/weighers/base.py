"""Weighers give raw values; here they are scaled to 0..1, multiplied and summed, best host first."""

from __future__ import annotations

import abc
from typing import Any

from stratus.scheduler.host_state import HostState


class BaseHostWeigher(abc.ABC):
    @abc.abstractmethod
    def weight_multiplier(self) -> float:
        """How much this weigher counts (negative inverts it)."""

    @abc.abstractmethod
    def raw_weight(self, host_state: HostState, spec: dict[str, Any]) -> float:
        """Higher is better before the multiplier."""


def weigh_hosts(weighers: list[BaseHostWeigher], hosts: list[HostState], spec: dict[str, Any]
                ) -> list[tuple[float, HostState]]:
    totals = [0.0] * len(hosts)
    for w in weighers:
        raw = [w.raw_weight(h, spec) for h in hosts]
        lo, hi = (min(raw), max(raw)) if raw else (0.0, 0.0)
        span = hi - lo
        mult = w.weight_multiplier()
        for i, value in enumerate(raw):
            totals[i] += mult * ((value - lo) / span if span else 0.0)
    return sorted(zip(totals, hosts, strict=True), key=lambda pair: pair[0], reverse=True)
