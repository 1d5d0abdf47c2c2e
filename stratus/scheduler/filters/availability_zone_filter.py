"""AvailabilityZoneFilter: hosts in the zone the request asks for (a host's zone comes from the
``availability_zone`` metadata of its aggregates, or ``[DEFAULT] default_availability_zone``)."""

from __future__ import annotations

import numpy as np

from stratus.scheduler.filters.base import BaseHostFilter
from stratus.scheduler.host_manager import HostManager
from stratus.scheduler.host_state import HostState
from stratus.scheduler.request import SchedulingRequest


class AvailabilityZoneFilter(BaseHostFilter):
    def run_filter_for_request(self, request: SchedulingRequest) -> bool:
        return bool(request.availability_zone)

    def host_passes(self, host_state: HostState, request: SchedulingRequest) -> bool:
        return request.availability_zone in host_state.availability_zone.split(",")

    def filter_mask(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest
                    ) -> np.ndarray | None:
        if any("," in name for name in hosts.az_names):
            return None  # a host listed in two zones: judge it host by host
        return hosts.az_id[candidates] == hosts.zone_id(request.availability_zone or "")
