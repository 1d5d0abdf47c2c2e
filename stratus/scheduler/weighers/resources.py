"""RAMWeigher, CPUWeigher, DiskWeigher: spread by free capacity (a negative multiplier stacks instead)."""

from __future__ import annotations

import numpy as np
from oslo_config import cfg

from stratus.db.placement import DISK_GB, MEMORY_MB, VCPU
from stratus.scheduler.host_manager import HostManager
from stratus.scheduler.host_state import HostState
from stratus.scheduler.request import SchedulingRequest
from stratus.scheduler.weighers.base import BaseHostWeigher


class _FreeResourceWeigher(BaseHostWeigher):
    resource_class = ""
    option = ""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    def weight_multiplier(self) -> float:
        return float(getattr(self.conf.filter_scheduler, self.option))

    def host_weight(self, host_state: HostState, request: SchedulingRequest) -> float:
        return float(host_state.free(self.resource_class))

    def weights(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest) -> np.ndarray:
        return hosts.free(self.resource_class)[candidates]


class RAMWeigher(_FreeResourceWeigher):
    resource_class = MEMORY_MB
    option = "ram_weight_multiplier"


class CPUWeigher(_FreeResourceWeigher):
    resource_class = VCPU
    option = "cpu_weight_multiplier"


class DiskWeigher(_FreeResourceWeigher):
    resource_class = DISK_GB
    option = "disk_weight_multiplier"
