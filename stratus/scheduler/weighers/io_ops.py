"""IoOpsWeigher: prefer hosts with fewer builds, resizes and snapshots under way (multiplier -1 by default)."""

from __future__ import annotations

import numpy as np
from oslo_config import cfg

from stratus.scheduler.host_manager import HostManager
from stratus.scheduler.host_state import HostState
from stratus.scheduler.request import SchedulingRequest
from stratus.scheduler.weighers.base import BaseHostWeigher


class IoOpsWeigher(BaseHostWeigher):
    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    def weight_multiplier(self) -> float:
        return float(self.conf.filter_scheduler.io_ops_weight_multiplier)

    def host_weight(self, host_state: HostState, request: SchedulingRequest) -> float:
        return float(host_state.num_io_ops)

    def weights(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest) -> np.ndarray:
        return hosts.io_ops[candidates]
