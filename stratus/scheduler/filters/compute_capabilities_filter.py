"""ComputeCapabilitiesFilter: flavor extra specs ``capabilities:<attr>[:<key>…]`` (or an unscoped key naming a
host attribute or stat) must match what the host reports (hypervisor_type, cpu_info:arch, stats…)."""

from __future__ import annotations

from typing import Any

import orjson

from stratus.scheduler.filters import extra_specs_ops
from stratus.scheduler.filters.base import BaseHostFilter
from stratus.scheduler.host_state import HostState
from stratus.scheduler.request import SchedulingRequest

SCOPE = "capabilities"


def _lookup(host_state: HostState, path: list[str]) -> Any:
    cap: Any = host_state
    for name in path:
        if isinstance(cap, str):
            try:
                cap = orjson.loads(cap)
            except orjson.JSONDecodeError:
                return None
        if isinstance(cap, dict):
            cap = cap.get(name)
        else:
            found = getattr(cap, name, None)
            cap = found if found is not None else getattr(cap, "stats", {}).get(name)
        if cap is None:
            return None
    return cap


class ComputeCapabilitiesFilter(BaseHostFilter):
    def _checks(self, request: SchedulingRequest) -> list[tuple[list[str], str]]:
        checks = []
        for key, requirement in request.extra_specs.items():
            scope = key.split(":")
            if len(scope) > 1:
                if scope[0] != SCOPE:
                    continue
                scope = scope[1:]
            checks.append((scope, requirement))
        return checks

    def run_filter_for_request(self, request: SchedulingRequest) -> bool:
        return bool(self._checks(request))

    def host_passes(self, host_state: HostState, request: SchedulingRequest) -> bool:
        for path, requirement in self._checks(request):
            if len(path) == 1 and not hasattr(host_state, path[0]) and path[0] not in host_state.stats:
                continue  # an unscoped key the host knows nothing of belongs to another filter
            cap = _lookup(host_state, path)
            if cap is None or not extra_specs_ops.match(str(cap), requirement):
                return False
        return True
