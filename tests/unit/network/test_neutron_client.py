"""The Neutron HTTP client: Neutron's error body, the caller's token or Nova's own, filters as Neutron reads them.

The HTTP exchange is checked at the wire (httpx's MockTransport records each request); the functional tests run the
same client against the embedded Networking service."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stratus import conf as conf_mod
from stratus.network import neutron
from stratus.network.neutron_client import NeutronClient, NeutronClientError, configured


def _client(handler: Any) -> NeutronClient:
    conf = conf_mod.load(overrides={"neutron": {"endpoint_override": "http://net.example:9696/"},
                                    "api": {"auth_strategy": "noauth2"}})
    return NeutronClient(conf, transport=httpx.MockTransport(handler))


def test_configured_only_with_an_endpoint_or_auth() -> None:
    assert not configured(conf_mod.load())
    assert configured(conf_mod.load(overrides={"neutron": {"endpoint_override": "http://x:9696"}}))


async def test_user_token_filters_and_neutron_error() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v2.0/networks":
            return httpx.Response(200, json={"networks": [{"id": "n1"}]})
        return httpx.Response(404, json={"NeutronError": {"type": "PortNotFound", "message": "Port p1 could not "
                                                          "be found.", "detail": ""}})

    client = _client(handler)
    nets = await client.list({"auth_token": "u:p"}, "networks", id=["n1", "n2"])
    assert nets == [{"id": "n1"}]
    assert seen[0].headers["x-auth-token"] == "u:p"
    assert seen[0].url.params.get_list("id") == ["n1", "n2"]
    with pytest.raises(NeutronClientError) as err:
        await client.show(None, "ports", "p1")
    assert err.value.status == 404 and err.value.type == "PortNotFound"
    assert err.value.message == "Port p1 could not be found."
    assert seen[1].headers["x-auth-token"] == "admin:admin"  # Nova's own identity (noauth2 all-in-one)
    await client.aclose()


async def test_port_in_use_and_unknown_network_are_novas_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2.0/ports/p1":
            return httpx.Response(200, json={"port": {"id": "p1", "network_id": "n1", "device_id": "other"}})
        if request.url.path == "/v2.0/networks":
            return httpx.Response(200, json={"networks": []})
        return httpx.Response(500)

    api = neutron.API(_client(handler).conf, _client(handler))
    ctx = {"project_id": "p", "auth_token": "u:p"}
    with pytest.raises(neutron.PortInUse, match=r"Port p1 is still in use\."):
        await api.validate_networks(ctx, neutron.requested_networks([{"port": "p1"}]), 1)
    with pytest.raises(neutron.NetworkNotFound, match=r"Network n9 could not be found\."):
        await api.validate_networks(ctx, neutron.requested_networks([{"uuid": "n9"}]), 1)
    await api.aclose()
