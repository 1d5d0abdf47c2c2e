"""ImagePropertiesFilter: an image that names an architecture, hypervisor type, VM mode or hypervisor
version runs only on hosts that report a matching ``supported_instances`` entry and version."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from stratus.scheduler.filters.base import BaseHostFilter
from stratus.scheduler.host_manager import HostManager
from stratus.scheduler.host_state import HostState
from stratus.scheduler.request import SchedulingRequest

_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "i486": "i686", "i586": "i686", "i386": "i686",
                 "x86_32": "i686", "arm64": "aarch64", "ppc64el": "ppc64le"}
_HV_ALIASES = {"xapi": "xen"}
_MODE_ALIASES = {"pv": "xen", "hv": "hvm", "baremetal": "hvm"}
_CMP = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt,
        "<": operator.lt}


def _canon(value: Any, aliases: dict[str, str]) -> str | None:
    if not value:
        return None
    text = str(value).lower()
    return aliases.get(text, text)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.strip().split(".") if p.isdigit())


def version_satisfies(hypervisor_version: int, predicate: str) -> bool:
    """``img_hv_requested_version`` such as ``">=6000, <7"`` against a version packed as Nova packs it
    (major * 1,000,000 + minor * 1,000 + micro)."""
    have = (hypervisor_version // 1_000_000, hypervisor_version // 1_000 % 1_000, hypervisor_version % 1_000)
    for clause in predicate.split(","):
        clause = clause.strip()
        if not clause:
            continue
        for symbol in (">=", "<=", "==", "!=", ">", "<"):
            if clause.startswith(symbol):
                want = _version_tuple(clause[len(symbol):])
                padded = want + (0,) * (3 - len(want))
                if not _CMP[symbol](have, padded[:3]):
                    return False
                break
        else:
            return False
    return True


class ImagePropertiesFilter(BaseHostFilter):
    @staticmethod
    def _wanted(request: SchedulingRequest) -> tuple[str | None, str | None, str | None]:
        props = request.image_props
        return (_canon(props.get("hw_architecture") or props.get("architecture"), _ARCH_ALIASES),
                _canon(props.get("img_hv_type") or props.get("hypervisor_type"), _HV_ALIASES),
                _canon(props.get("hw_vm_mode") or props.get("vm_mode"), _MODE_ALIASES))

    @staticmethod
    def _requested_version(request: SchedulingRequest) -> str | None:
        props = request.image_props
        return props.get("img_hv_requested_version") or props.get("hypervisor_version_requires")

    def run_filter_for_request(self, request: SchedulingRequest) -> bool:
        # as in Nova, a requested version alone constrains nothing: it refines an architecture/type/mode match
        return any(self._wanted(request))

    def _supports(self, supported_instances: list[tuple[str, str, str]] | tuple[tuple[str, str, str], ...],
                  hypervisor_version: int, request: SchedulingRequest) -> bool:
        wanted = self._wanted(request)
        if not any(wanted):
            return True
        version = self._requested_version(request)
        if version and hypervisor_version and not version_satisfies(hypervisor_version, str(version)):
            return False
        for supported in supported_instances:
            offered = {_canon(supported[0], _ARCH_ALIASES), _canon(supported[1], _HV_ALIASES),
                       _canon(supported[2], _MODE_ALIASES)}
            if all(w is None or w in offered for w in wanted):
                return True
        return False

    def host_passes(self, host_state: HostState, request: SchedulingRequest) -> bool:
        return self._supports(host_state.supported_instances, host_state.hypervisor_version, request)

    def filter_mask(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest) -> np.ndarray:
        """Hosts of one kind report the same triples and version: judge each kind once."""
        verdicts = np.fromiter((self._supports(triples, version, request) for triples, version in hosts.kinds),
                               dtype=bool, count=len(hosts.kinds))
        return verdicts[hosts.kind_id[candidates]]
