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

    def host_passes(self, host_state: HostState, request: SchedulingRequest) -> bool:
        wanted = self._wanted(request)
        if not any(wanted):
            return True
        version = self._requested_version(request)
        if version and host_state.hypervisor_version and not version_satisfies(host_state.hypervisor_version,
                                                                              str(version)):
            return False
        for supported in host_state.supported_instances:
            offered = {_canon(supported[0], _ARCH_ALIASES), _canon(supported[1], _HV_ALIASES),
                       _canon(supported[2], _MODE_ALIASES)}
            if all(w is None or w in offered for w in wanted):
                return True
        return False

    def filter_mask(self, hosts: HostManager, candidates: np.ndarray, request: SchedulingRequest) -> np.ndarray:
        """Hosts of one kind report the same triples and version: judge each kind once."""
        seen: dict[tuple[Any, ...], bool] = {}
        states = hosts.hosts
        out = np.empty(candidates.size, dtype=bool)
        for n, i in enumerate(candidates):
            state = states[i]
            key = (tuple(state.supported_instances), state.hypervisor_version)
            verdict = seen.get(key)
            if verdict is None:
                verdict = seen[key] = self.host_passes(state, request)
            out[n] = verdict
        return out
