"""Host filters by Nova's class names; ``[filter_scheduler] enabled_filters`` picks and orders them."""

from __future__ import annotations

from stratus.scheduler.filters.affinity_filter import (
    DifferentHostFilter,
    SameHostFilter,
    ServerGroupAffinityFilter,
    ServerGroupAntiAffinityFilter,
)
from stratus.scheduler.filters.aggregate_instance_extra_specs import AggregateInstanceExtraSpecsFilter
from stratus.scheduler.filters.availability_zone_filter import AvailabilityZoneFilter
from stratus.scheduler.filters.base import BaseHostFilter
from stratus.scheduler.filters.compute_capabilities_filter import ComputeCapabilitiesFilter
from stratus.scheduler.filters.compute_filter import ComputeFilter
from stratus.scheduler.filters.image_props_filter import ImagePropertiesFilter

ALL_FILTERS: dict[str, type[BaseHostFilter]] = {cls.__name__: cls for cls in (
    ComputeFilter, AvailabilityZoneFilter, ComputeCapabilitiesFilter, ImagePropertiesFilter,
    AggregateInstanceExtraSpecsFilter, ServerGroupAffinityFilter, ServerGroupAntiAffinityFilter, SameHostFilter,
    DifferentHostFilter)}


def load(names: list[str]) -> list[BaseHostFilter]:
    """Instances of the named filters, in order; an unknown name is a configuration error."""
    out = []
    for name in names:
        cls = ALL_FILTERS.get(name.rsplit(".", 1)[-1])
        if cls is None:
            raise ValueError(f"[filter_scheduler] enabled_filters: unknown filter {name!r}; "
                             f"known: {', '.join(sorted(ALL_FILTERS))}")
        out.append(cls())
    return out
