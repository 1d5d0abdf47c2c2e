"""ServerGroupSoftAffinityWeigher and ServerGroupSoftAntiAffinityWeigher: for soft-affinity groups prefer
hosts with more of the group's members, for soft-anti-affinity hosts with fewer; nothing is ever refused."""

from __future__ import annotations

import numpy as np
from oslo_config import cfg

from stratus.scheduler.host_manager import HostManager
from stratus.scheduler.host_state import HostState
from stratus.scheduler.request import SOFT_AFFINITY, SOFT_ANTI_AFFINITY, SchedulingRequest
from stratus.scheduler.weighers.base import BaseHostWeigher


class _SoftAffinityWeigherBase(BaseHostWeigher):
    policy = ""
    option = ""
    sign = 1.0

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    def weight_multiplier(self) -> float:
        return float(getattr(self.conf.filter_scheduler, self.option))

    def run_for_request(self, request: SchedulingRequest) -> bool:
        return request.group_policy == self.policy and bool(request.group_hosts)

    def host_weight(self, host_state: HostState, request: SchedulingRequest) -> float:
        return self.sign * request.group_hosts.get(host_state.host, 0)

    def weights(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest) -> np.ndarray:
        return self.sign * hosts.per_host(request.group_hosts)[candidates]


class ServerGroupSoftAffinityWeigher(_SoftAffinityWeigherBase):
    policy = SOFT_AFFINITY
    option = "soft_affinity_weight_multiplier"


class ServerGroupSoftAntiAffinityWeigher(_SoftAffinityWeigherBase):
    policy = SOFT_ANTI_AFFINITY
    option = "soft_anti_affinity_weight_multiplier"
    sign = -1.0
