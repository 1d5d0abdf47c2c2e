"""A filter keeps or drops one host for one request; the chain runs them in the configured order."""

from __future__ import annotations

import abc
import logging
from typing import Any

from stratus.scheduler.host_state import HostState

LOG = logging.getLogger(__name__)


class BaseHostFilter(abc.ABC):
    @abc.abstractmethod
    def host_passes(self, host_state: HostState, spec: dict[str, Any]) -> bool:
        """True if the host can take the instance ``spec`` describes."""


def filter_hosts(filters: list[BaseHostFilter], hosts: list[HostState], spec: dict[str, Any]) -> list[HostState]:
    for f in filters:
        before = len(hosts)
        hosts = [h for h in hosts if f.host_passes(h, spec)]
        LOG.debug("filter %s: %d -> %d hosts", type(f).__name__, before, len(hosts))
        if not hosts:
            LOG.info("filter %s returned 0 hosts", type(f).__name__)
            break
    return hosts
