"""RAMWeigher: spread by free RAM (or stack, with a negative multiplier)."""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from stratus.db.placement import MEMORY_MB
from stratus.scheduler.host_state import HostState
from stratus.scheduler.weighers.base import BaseHostWeigher


class RAMWeigher(BaseHostWeigher):
    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    def weight_multiplier(self) -> float:
        return float(self.conf.filter_scheduler.ram_weight_multiplier)

    def raw_weight(self, host_state: HostState, spec: dict[str, Any]) -> float:
        return float(host_state.free(MEMORY_MB))
