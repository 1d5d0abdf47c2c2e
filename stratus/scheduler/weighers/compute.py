"""BuildFailureWeigher: hosts that failed builds lately go to the back of the queue.

The count is the host's consecutive failed builds (reset by a success), reported in its compute node stats.
The default multiplier is large so that a failing host is tried only when nothing else fits.
"""

from __future__ import annotations

import numpy as np
from oslo_config import cfg

from stratus.scheduler.host_manager import HostManager
from stratus.scheduler.host_state import HostState
from stratus.scheduler.request import SchedulingRequest
from stratus.scheduler.weighers.base import BaseHostWeigher


class BuildFailureWeigher(BaseHostWeigher):
    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    def weight_multiplier(self) -> float:
        return float(self.conf.filter_scheduler.build_failure_weight_multiplier)

    def host_weight(self, host_state: HostState, request: SchedulingRequest) -> float:
        return -float(host_state.failed_builds)

    def weights(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest) -> np.ndarray:
        return -hosts.failed_builds[candidates]
