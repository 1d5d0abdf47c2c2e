"""ComputeFilter: only hosts whose compute service is up and enabled."""

from __future__ import annotations

import numpy as np

from stratus.scheduler.filters.base import BaseHostFilter
from stratus.scheduler.host_manager import HostManager
from stratus.scheduler.host_state import HostState
from stratus.scheduler.request import SchedulingRequest


class ComputeFilter(BaseHostFilter):
    def host_passes(self, host_state: HostState, request: SchedulingRequest) -> bool:
        return host_state.service_up and not host_state.service_disabled

    def filter_mask(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest) -> np.ndarray:
        return hosts.service_up[candidates] & ~hosts.service_disabled[candidates]
