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


async def test_validate_networks_asks_only_the_fields_it_reads() -> None:
    """The networks of a boot are asked with Neutron's ``fields`` (id, router:external, shared), and what comes
    back decides as the whole networks did: an unknown network, an external one not shared, a shared one."""
    seen: list[httpx.Request] = []
    nets = {"n1": {"id": "n1", "name": "private", "router:external": False, "shared": False, "mtu": 1450},
            "ext": {"id": "ext", "name": "public", "router:external": True, "shared": False, "mtu": 1500},
            "pub": {"id": "pub", "name": "shared", "router:external": True, "shared": True, "mtu": 1500}}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v2.0/networks":
            fields = request.url.params.get_list("fields")
            found = [nets[i] for i in request.url.params.get_list("id") if i in nets]
            return httpx.Response(200, json={"networks": [{k: v for k, v in n.items() if not fields or k in fields}
                                                          for n in found]})
        if request.url.path == "/v2.0/extensions":
            return httpx.Response(200, json={"extensions": []})
        return httpx.Response(500)

    api = neutron.API(_client(handler).conf, _client(handler))
    ctx = {"project_id": "p", "auth_token": "u:p"}
    assert await api.validate_networks(ctx, neutron.requested_networks([{"uuid": "n1"}]), 3) == 3
    asked = [r for r in seen if r.url.path == "/v2.0/networks"]
    assert sorted(asked[0].url.params.get_list("fields")) == ["id", "router:external", "shared"]
    with pytest.raises(neutron.ExternalNetworkAttachForbidden):
        await api.validate_networks(ctx, neutron.requested_networks([{"uuid": "ext"}]), 1)
    assert await api.validate_networks(ctx, neutron.requested_networks([{"uuid": "ext"}]), 1,
                                       attach_external=True) == 1
    assert await api.validate_networks(ctx, neutron.requested_networks([{"uuid": "pub"}]), 1) == 1
    with pytest.raises(neutron.NetworkNotFound):
        await api.validate_networks(ctx, neutron.requested_networks([{"uuid": "n1"}, {"uuid": "n9"}]), 1)
    await api.aclose()


def test_noauth2_asks_as_its_admin_without_keystoneauth() -> None:
    """With noauth2 and no [neutron] auth_type, Nova's own token is noauth2's admin, known without importing
    keystoneauth (a process that never talks to a real Keystone does not load it)."""
    import subprocess
    import sys
    import textwrap

    probe = textwrap.dedent("""\
        import asyncio, sys
        import httpx
        from stratus import conf as conf_mod
        from stratus.network.neutron_client import NeutronClient

        seen = []
        def handler(request):
            seen.append(request.headers["x-auth-token"])
            return httpx.Response(200, json={"ports": []})

        conf = conf_mod.load(overrides={"neutron": {"endpoint_override": "http://net.example:9696/"},
                                        "api": {"auth_strategy": "noauth2"}})
        async def main():
            client = NeutronClient(conf, transport=httpx.MockTransport(handler))
            await client.list(None, "ports", device_id="x")
            await client.aclose()
        asyncio.run(main())
        print(seen, "keystoneauth1" in sys.modules)
        """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split("\n")[-2] == "['admin:admin'] False", out.stdout + out.stderr
