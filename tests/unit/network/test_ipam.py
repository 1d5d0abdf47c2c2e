"""Address arithmetic of the networking server: default gateways and pools, pool checks, the next free address
and SLAAC's EUI-64 addresses, with Neutron's answers."""

from __future__ import annotations

import pytest

from stratus.network.server import errors, ipam


def test_default_gateway_and_pools() -> None:
    net = ipam.network("10.0.0.0/24")
    assert ipam.default_gateway(net) == "10.0.0.1"
    assert ipam.default_pools(net, "10.0.0.1") == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert ipam.default_pools(net, "10.0.0.100") == [{"start": "10.0.0.1", "end": "10.0.0.99"},
                                                     {"start": "10.0.0.101", "end": "10.0.0.254"}]
    assert ipam.default_pools(net, None) == [{"start": "10.0.0.1", "end": "10.0.0.254"}]
    v6 = ipam.network("fd00::/64")
    assert ipam.default_pools(v6, "fd00::1") == [{"start": "fd00::2", "end": "fd00::ffff:ffff:ffff:ffff"}]
    assert ipam.default_pools(ipam.network("10.1.0.0/31"), None) == [{"start": "10.1.0.0", "end": "10.1.0.1"}]


@pytest.mark.parametrize(("pools", "gateway", "kind"), [
    ([{"start": "10.0.0.9", "end": "10.0.0.5"}], None, "InvalidAllocationPool"),
    ([{"start": "10.0.0.5", "end": "10.0.1.5"}], None, "OutOfBoundsAllocationPool"),
    ([{"start": "10.0.0.5", "end": "10.0.0.9"}, {"start": "10.0.0.9", "end": "10.0.0.20"}], None,
     "OverlappingAllocationPools"),
    ([{"start": "10.0.0.1", "end": "10.0.0.9"}], "10.0.0.1", "GatewayConflictWithAllocationPools"),
    ([{"start": "10.0.0.1"}], None, "HTTPBadRequest"),
    ([{"start": "fd00::1", "end": "fd00::5"}], None, "InvalidAllocationPool"),
])
def test_pool_checks(pools: list[dict[str, str]], gateway: str | None, kind: str) -> None:
    with pytest.raises(errors.NeutronError) as caught:
        ipam.check_pools(ipam.network("10.0.0.0/24"), pools, gateway)
    assert caught.value.type == kind


def test_candidates_skip_what_is_taken_across_pools() -> None:
    pools = [{"start": "10.0.0.2", "end": "10.0.0.3"}, {"start": "10.0.0.10", "end": "10.0.0.11"}]
    assert ipam.candidates(pools, {"10.0.0.2", "10.0.0.3"}, 2) == ["10.0.0.10", "10.0.0.11"]
    assert ipam.candidates(pools, {"10.0.0.2", "10.0.0.3", "10.0.0.10", "10.0.0.11"}) == []
    assert ipam.pool_size(pools) == 4


def test_eui64_and_subnet_membership() -> None:
    assert ipam.eui64("2001:db8::/64", "fa:16:3e:11:22:33") == "2001:db8::f816:3eff:fe11:2233"
    net = ipam.network("10.0.0.0/24")
    assert ipam.valid_for_subnet(net, "10.0.0.7")
    assert not ipam.valid_for_subnet(net, "10.0.0.0") and not ipam.valid_for_subnet(net, "10.0.0.255")
    assert not ipam.valid_for_subnet(net, "10.0.1.1") and not ipam.valid_for_subnet(net, "fd00::1")


def test_random_macs_keep_the_base_prefix() -> None:
    macs = {ipam.random_mac("fa:16:3e:00:00:00") for _ in range(50)}
    assert all(m.startswith("fa:16:3e:") and len(m) == 17 for m in macs) and len(macs) > 40
