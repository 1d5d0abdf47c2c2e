"""ComputeFilter: only hosts whose compute service is up and enabled."""

from __future__ import annotations

import logging
from typing import Any

from stratus.scheduler.filters.base import BaseHostFilter
from stratus.scheduler.host_state import HostState

LOG = logging.getLogger(__name__)


class ComputeFilter(BaseHostFilter):
    def host_passes(self, host_state: HostState, spec: dict[str, Any]) -> bool:
        if host_state.service_disabled:
            LOG.debug("%s rejected: compute service disabled", host_state.host)
            return False
        if not host_state.service_up:
            LOG.debug("%s rejected: compute service down", host_state.host)
            return False
        return True
