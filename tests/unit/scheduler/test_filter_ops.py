"""Nova's extra spec operators and hypervisor version predicates."""

from __future__ import annotations

import pytest

from stratus.scheduler import filters, weighers
from stratus.scheduler.filters.extra_specs_ops import match
from stratus.scheduler.filters.image_props_filter import version_satisfies


@pytest.mark.parametrize(("value", "requirement", "expected"), [
    ("1024", "= 512", True), ("256", "= 512", False),
    ("4", "== 4", True), ("4", "!= 4", False), ("5", ">= 4", True), ("3", "<= 2", False),
    ("abc", "== 4", False),  # not a number: no match rather than an error
    ("x86_64", "s== x86_64", True), ("b", "s< c", True), ("b", "s> c", False), ("a", "s!= a", False),
    ("avx avx2 sse", "<in> avx2", True), ("sse", "<in> avx", False),
    ("avx avx2", "<all-in> avx avx2", True), ("avx", "<all-in> avx avx2", False),
    ("kvm", "<or> xen <or> kvm", True), ("qemu", "<or> xen <or> kvm", False),
    ("plain", "plain", True), ("plain", "other", False), (None, ">= 1", False),
])
def test_match(value: str | None, requirement: str, expected: bool) -> None:
    assert match(value, requirement) is expected


@pytest.mark.parametrize(("version", "predicate", "expected"), [
    (6_000_000, ">=6.0", True), (6_000_000, ">=6.1", False), (6_002_001, ">=6.2,<7", True),
    (7_000_000, ">=6.2,<7", False), (1_000, "==0.1", True), (1_000, "bogus", False),
])
def test_version_predicates(version: int, predicate: str, expected: bool) -> None:
    assert version_satisfies(version, predicate) is expected


def test_filters_and_weighers_load_by_nova_names() -> None:
    from stratus import conf as conf_mod

    loaded = filters.load(["ComputeFilter", "nova.scheduler.filters.affinity_filter.SameHostFilter"])
    assert [type(f).__name__ for f in loaded] == ["ComputeFilter", "SameHostFilter"]
    with pytest.raises(ValueError, match="unknown filter 'NoSuchFilter'"):
        filters.load(["NoSuchFilter"])
    conf = conf_mod.load()
    assert {type(w).__name__ for w in weighers.load(conf, ["nova.scheduler.weights.all_weighers"])} == set(
        weighers.ALL_WEIGHERS)
    assert [type(w).__name__ for w in weighers.load(conf, ["nova.scheduler.weights.ram.RAMWeigher"])] == [
        "RAMWeigher"]
