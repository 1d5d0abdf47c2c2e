"""Weighers by Nova's class names; ``[filter_scheduler] weight_classes`` picks them."""

from __future__ import annotations

from oslo_config import cfg

from stratus.scheduler.weighers.affinity import ServerGroupSoftAffinityWeigher, ServerGroupSoftAntiAffinityWeigher
from stratus.scheduler.weighers.base import BaseHostWeigher
from stratus.scheduler.weighers.compute import BuildFailureWeigher
from stratus.scheduler.weighers.io_ops import IoOpsWeigher
from stratus.scheduler.weighers.resources import CPUWeigher, DiskWeigher, RAMWeigher

ALL_WEIGHERS: dict[str, type[BaseHostWeigher]] = {cls.__name__: cls for cls in (  # type: ignore[type-abstract]
    RAMWeigher, CPUWeigher, DiskWeigher, IoOpsWeigher, BuildFailureWeigher, ServerGroupSoftAffinityWeigher,
    ServerGroupSoftAntiAffinityWeigher)}
ALL_WEIGHERS_NAME = "all_weighers"


def load(conf: cfg.ConfigOpts, names: list[str]) -> list[BaseHostWeigher]:
    """The named weighers (``nova.scheduler.weights.all_weighers`` or ``all_weighers`` means every one)."""
    classes: list[type[BaseHostWeigher]] = []
    for name in names:
        short = name.rsplit(".", 1)[-1]
        if short == ALL_WEIGHERS_NAME:
            classes.extend(c for c in ALL_WEIGHERS.values() if c not in classes)
            continue
        cls = ALL_WEIGHERS.get(short)
        if cls is None:
            raise ValueError(f"[filter_scheduler] weight_classes: unknown weigher {name!r}; "
                             f"known: {', '.join(sorted(ALL_WEIGHERS))}")
        if cls not in classes:
            classes.append(cls)
    return [cls(conf) for cls in classes]  # type: ignore[call-arg]
