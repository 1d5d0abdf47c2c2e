"""Server group and instance-placement filters: ServerGroupAffinityFilter, ServerGroupAntiAffinityFilter
(with the ``max_server_per_host`` rule of microversion 2.64), SameHostFilter and DifferentHostFilter.

The hosts of a group's members and of the hinted instances are read once per request (see
``scheduler.request``), so every one of these is a lookup per host, done on the arrays.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from stratus.scheduler.filters.base import BaseHostFilter
from stratus.scheduler.host_manager import HostManager
from stratus.scheduler.host_state import HostState
from stratus.scheduler.request import AFFINITY, ANTI_AFFINITY, SchedulingRequest


def _host_mask(hosts: HostManager, names: Iterable[str]) -> np.ndarray:
    return hosts.per_host(dict.fromkeys(names, 1.0)) > 0


class ServerGroupAffinityFilter(BaseHostFilter):
    """Members of an affinity group go where the group already is (anywhere, for the first member)."""

    def run_filter_for_request(self, request: SchedulingRequest) -> bool:
        return request.group_policy == AFFINITY and bool(request.group_hosts)

    def host_passes(self, host_state: HostState, request: SchedulingRequest) -> bool:
        return host_state.host in request.group_hosts

    def filter_mask(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest) -> np.ndarray:
        return _host_mask(hosts, request.group_hosts)[candidates]


class ServerGroupAntiAffinityFilter(BaseHostFilter):
    """Members of an anti-affinity group never share a host, or at most ``max_server_per_host`` do."""

    def run_filter_for_request(self, request: SchedulingRequest) -> bool:
        return request.group_policy == ANTI_AFFINITY and bool(request.group_hosts)

    def host_passes(self, host_state: HostState, request: SchedulingRequest) -> bool:
        return request.group_hosts.get(host_state.host, 0) < request.max_server_per_host

    def filter_mask(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest) -> np.ndarray:
        limit = request.max_server_per_host
        full = [host for host, count in request.group_hosts.items() if count >= limit]
        return ~_host_mask(hosts, full)[candidates]


class SameHostFilter(BaseHostFilter):
    """Scheduler hint ``same_host``: only hosts running one of the named instances."""

    def run_filter_for_request(self, request: SchedulingRequest) -> bool:
        return request.same_host is not None

    def host_passes(self, host_state: HostState, request: SchedulingRequest) -> bool:
        return host_state.host in (request.same_host or ())

    def filter_mask(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest) -> np.ndarray:
        return _host_mask(hosts, request.same_host or ())[candidates]


class DifferentHostFilter(BaseHostFilter):
    """Scheduler hint ``different_host``: only hosts running none of the named instances."""

    def run_filter_for_request(self, request: SchedulingRequest) -> bool:
        return request.different_host is not None

    def host_passes(self, host_state: HostState, request: SchedulingRequest) -> bool:
        return host_state.host not in (request.different_host or ())

    def filter_mask(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest) -> np.ndarray:
        return ~_host_mask(hosts, request.different_host or ())[candidates]
