from __future__ import annotations

from stratus import conf as conf_mod
from stratus.scheduler.filters.base import filter_hosts
from stratus.scheduler.filters.compute_filter import ComputeFilter
from stratus.scheduler.host_state import HostState
from stratus.scheduler.manager import resources_from_flavor
from stratus.scheduler.weighers.base import weigh_hosts
from stratus.scheduler.weighers.ram import RAMWeigher


def host(name: str, free_ram: int, up: bool = True, disabled: bool = False) -> HostState:
    inv = {"MEMORY_MB": {"total": 8192, "reserved": 0, "min_unit": 1, "max_unit": 8192, "step_size": 1,
                         "allocation_ratio": 1.0},
           "VCPU": {"total": 8, "reserved": 0, "min_unit": 1, "max_unit": 8, "step_size": 1,
                    "allocation_ratio": 1.0}}
    return HostState(host=name, nodename=name, provider_id=1, provider_uuid=name, inventories=inv,
                     usages={"MEMORY_MB": 8192 - free_ram}, service_up=up, service_disabled=disabled)


def test_compute_filter_drops_down_and_disabled_hosts() -> None:
    hosts = [host("a", 100), host("b", 100, up=False), host("c", 100, disabled=True)]
    assert [h.host for h in filter_hosts([ComputeFilter()], hosts, {})] == ["a"]


def test_ram_weigher_spreads_and_negative_multiplier_stacks() -> None:
    hosts = [host("small", 1000), host("big", 6000), host("mid", 3000)]
    conf = conf_mod.load()
    assert [h.host for _, h in weigh_hosts([RAMWeigher(conf)], hosts, {})] == ["big", "mid", "small"]
    conf.set_override("ram_weight_multiplier", -1.0, group="filter_scheduler")
    assert [h.host for _, h in weigh_hosts([RAMWeigher(conf)], hosts, {})] == ["small", "mid", "big"]


def test_fits_and_consume() -> None:
    h = host("a", 1024)
    assert h.fits({"MEMORY_MB": 1024, "VCPU": 8})
    assert not h.fits({"MEMORY_MB": 1025})
    assert not h.fits({"DISK_GB": 1})
    h.consume({"MEMORY_MB": 1024})
    assert not h.fits({"MEMORY_MB": 1})


def test_resources_from_flavor_rounds_swap_up_to_gb() -> None:
    flavor = {"vcpus": 2, "memory_mb": 2048, "root_gb": 20, "ephemeral_gb": 5, "swap": 1}
    assert resources_from_flavor(flavor) == {"VCPU": 2, "MEMORY_MB": 2048, "DISK_GB": 26}
