from __future__ import annotations

import itertools

import pytest

from stratus.api import microversion
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.routes import ROUTES


def test_versions_are_contiguous_from_2_1() -> None:
    parsed = [APIVersion.parse(v) for v, _ in microversion.VERSIONS]
    assert parsed[0] == APIVersion(2, 1)
    for a, b in itertools.pairwise(parsed):
        assert b == APIVersion(a.major, a.minor + 1)


def test_latest_is_pinned() -> None:
    # Raising the maximum is a deliberate act: add the version, document it, then move this pin.
    assert str(microversion.MAX_VERSION) == "2.100"


def test_documented_in_version_history() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "api" / "version_history.rst").read_text()
    for version, _ in microversion.VERSIONS:
        assert f"\n{version}\n" in text, version


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, "2.1"),
    ({"openstack-api-version": "compute 2.10"}, "2.10"),
    ({"openstack-api-version": "image 2.5, compute 2.3"}, "2.3"),
    ({"x-openstack-nova-api-version": "2.5"}, "2.5"),
    ({"openstack-api-version": "compute latest"}, "2.100"),
])
def test_negotiation(headers: dict[str, str], expected: str) -> None:
    assert str(microversion.from_headers(headers)) == expected


@pytest.mark.parametrize(("header", "code"), [("compute 3.0", 406), ("compute 2.0", 406), ("compute x", 400)])
def test_refused(header: str, code: int) -> None:
    with pytest.raises(Fault) as err:
        microversion.from_headers({"openstack-api-version": header})
    assert err.value.code == code


def test_route_ranges_do_not_overlap() -> None:
    seen: dict[tuple[str, str], list[tuple[APIVersion, APIVersion]]] = {}
    for route in ROUTES:
        lo = APIVersion.parse(route.min_version)
        hi = APIVersion.parse(route.max_version) if route.max_version else microversion.MAX_VERSION
        assert lo <= hi, route
        for other_lo, other_hi in seen.get((route.path, route.method), []):
            assert hi < other_lo or lo > other_hi, f"overlapping versions for {route.method} {route.path}"
        seen.setdefault((route.path, route.method), []).append((lo, hi))


def test_one_placeholder_name_per_path_pattern() -> None:
    """Two spellings of one path (``/os-networks/{id}`` and ``/os-networks/{network_id}``) would be two Starlette
    routes, the first answering 405 for the other's methods."""
    import collections
    import re

    from stratus.api import routes

    spellings: dict[str, set[str]] = collections.defaultdict(set)
    for route in routes.ROUTES:
        spellings[re.sub(r"\{[^}]*\}", "{}", route.path)].add(route.path)
    assert {k: v for k, v in spellings.items() if len(v) > 1} == {}
