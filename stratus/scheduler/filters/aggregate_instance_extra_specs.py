"""AggregateInstanceExtraSpecsFilter: flavor extra specs ``aggregate_instance_extra_specs:<key>`` (or unscoped)
must match the metadata of an aggregate the host is in (``ssd=true`` flavors land on ``ssd=true`` hosts)."""

from __future__ import annotations

import numpy as np

from stratus.scheduler.filters import extra_specs_ops
from stratus.scheduler.filters.base import BaseHostFilter
from stratus.scheduler.host_manager import HostManager
from stratus.scheduler.host_state import HostState
from stratus.scheduler.request import SchedulingRequest

SCOPE = "aggregate_instance_extra_specs"


def aggregate_values(aggregates: list[dict[str, str]]) -> dict[str, set[str]]:
    """key → every value the aggregates give (comma-separated values count one by one)."""
    out: dict[str, set[str]] = {}
    for metadata in aggregates:
        for key, value in metadata.items():
            out.setdefault(key, set()).update(v.strip() for v in value.split(","))
    return out


class AggregateInstanceExtraSpecsFilter(BaseHostFilter):
    def _checks(self, request: SchedulingRequest) -> list[tuple[str, str]]:
        checks = []
        for key, requirement in request.extra_specs.items():
            scope = key.split(":", 1)
            if len(scope) > 1:
                if scope[0] != SCOPE:
                    continue
                checks.append((scope[1], requirement))
            else:
                checks.append((key, requirement))
        return checks

    def run_filter_for_request(self, request: SchedulingRequest) -> bool:
        return bool(self._checks(request))

    def _passes(self, aggregates: list[dict[str, str]], checks: list[tuple[str, str]]) -> bool:
        metadata = aggregate_values(aggregates)
        for key, requirement in checks:
            values = metadata.get(key)
            if not values or not any(extra_specs_ops.match(v, requirement) for v in values):
                return False
        return True

    def host_passes(self, host_state: HostState, request: SchedulingRequest) -> bool:
        return self._passes(list(host_state.aggregates), self._checks(request))

    def filter_mask(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest) -> np.ndarray:
        """Hosts in the same aggregates get the same answer: judge each distinct set of aggregates once."""
        checks = self._checks(request)
        verdicts = np.fromiter((self._passes(s, checks) for s in hosts.aggregate_sets), dtype=bool,
                               count=len(hosts.aggregate_sets))
        return verdicts[hosts.aggregate_set_id[candidates]]
