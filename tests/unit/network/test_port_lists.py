"""Port and floating IP lists whose filters are asked of the database (``listing.pushdown``): the same answers as
filtering every visible view, for admins and project users alike, while the query reads only the matching rows;
and Nova's events batched while a POST is on its way."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.datastructures import QueryParams

from stratus import conf as conf_mod
from stratus.network.server import listing, ports
from stratus.network.server.nova import NovaNotifier
from tests.unit.network.counted_api import counted_api


def test_pushdown_takes_plain_columns_only() -> None:
    query = QueryParams("device_id=a&device_id=b&admin_state_up=true&fields=id&limit=2&binding:host_id=h"
                        "&tenant_id=p1&project_id=p1&project_id=p2&fixed_ips=ip_address%3D10.0.0.3")
    assert listing.pushdown(query, ports.FILTER_COLUMNS) == {
        "device_id": ["a", "b"], "binding_host_id": ["h"], "project_id": ["p1"]}
    # tenant_id and project_id that cannot both hold: nothing can match, and nothing is read
    assert listing.pushdown(QueryParams("tenant_id=p1&project_id=p2"), ports.FILTER_COLUMNS) == {"project_id": []}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async with counted_api(tmp_path) as found:
        yield found


def _as(caller: str) -> dict[str, str]:
    return {"X-Auth-Token": caller}


async def _network(client: httpx.AsyncClient, project: str, cidr: str, shared: bool = False) -> str:
    body: dict[str, Any] = {"name": f"net-{project}", "project_id": project}
    if shared:
        body["shared"] = True
    net = (await client.post("/networks", json={"network": body}, headers=_as("admin:admin"))).json()["network"]
    resp = await client.post("/subnets", headers=_as("admin:admin"), json={"subnet": {
        "network_id": net["id"], "cidr": cidr, "ip_version": 4, "project_id": project}})
    assert resp.status_code == 201, resp.text
    return str(net["id"])


async def _port(client: httpx.AsyncClient, network_id: str, project: str, device_id: str = "",
                host: str = "") -> dict[str, Any]:
    body = {"network_id": network_id, "project_id": project, "device_id": device_id,
            "device_owner": "compute:nova" if device_id else "", "binding:host_id": host}
    resp = await client.post("/ports", json={"port": body}, headers=_as("admin:admin"))
    assert resp.status_code == 201, resp.text
    return dict(resp.json()["port"])


async def _ids(client: httpx.AsyncClient, caller: str, query: str) -> list[str]:
    resp = await client.get(f"/ports?{query}", headers=_as(caller))
    assert resp.status_code == 200, resp.text
    return [p["id"] for p in resp.json()["ports"]]


async def test_filtered_lists_answer_as_before(api: dict[str, Any]) -> None:
    client = api["client"]
    net_a = await _network(client, "pa", "10.1.0.0/24")
    net_b = await _network(client, "pb", "10.2.0.0/24")
    shared = await _network(client, "pb", "10.3.0.0/24", shared=True)
    server = str(uuid.uuid4())
    a1 = await _port(client, net_a, "pa", server, "h1")
    a2 = await _port(client, net_a, "pa")
    b1 = await _port(client, net_b, "pb", str(uuid.uuid4()), "h1")
    on_shared = await _port(client, shared, "pa", server)  # pa's port on pb's shared network
    theirs_on_shared = await _port(client, shared, "pb")
    sort = "&sort_key=id"

    def ids(*found: dict[str, Any]) -> list[str]:
        return sorted(p["id"] for p in found)

    assert await _ids(client, "admin:admin", f"device_id={server}{sort}") == ids(a1, on_shared)
    assert await _ids(client, "admin:admin", f"device_id={server}&network_id={shared}") == [on_shared["id"]]
    assert await _ids(client, "admin:admin", f"binding:host_id=h1{sort}") == ids(a1, b1)
    assert await _ids(client, "admin:admin", "tenant_id=pa&project_id=pb") == []
    assert await _ids(client, "admin:admin", f"network_id={net_a}&network_id={net_b}{sort}") == ids(a1, a2, b1)
    assert await _ids(client, "admin:admin", f"mac_address={a2['mac_address']}") == [a2["id"]]
    # a project user: its own ports wherever they are, and any port on its own networks, never others'
    assert await _ids(client, "u:pa", sort.lstrip("&")) == ids(a1, a2, on_shared)
    assert await _ids(client, "u:pa", f"network_id={shared}") == [on_shared["id"]]
    assert await _ids(client, "u:pb", f"network_id={shared}{sort}") == ids(on_shared, theirs_on_shared)
    assert await _ids(client, "u:pa", "project_id=pb") == []
    assert await _ids(client, "u:pb", f"project_id=pa&network_id={shared}") == [on_shared["id"]]
    assert await _ids(client, "u:pa", f"network_id={net_b}") == []
    # binding:host_id is hidden from project users: filtering on it matches nothing, as before
    assert await _ids(client, "u:pa", "binding:host_id=h1") == []
    # filters the database is not asked still apply, and an unknown one is still Neutron's 400
    assert await _ids(client, "admin:admin", f"device_id={server}&fixed_ips=ip_address%3D"
                                             f"{a1['fixed_ips'][0]['ip_address']}") == [a1["id"]]
    resp = await client.get("/ports?device_id=x&color=red", headers=_as("admin:admin"))
    assert resp.status_code == 400
    assert resp.json()["NeutronError"]["message"] == "['color'] is invalid attribute for filtering"


async def test_a_servers_ports_are_read_by_device_id(api: dict[str, Any]) -> None:
    client, statements = api["client"], api["statements"]
    net = await _network(client, "pa", "10.4.0.0/24")
    server = str(uuid.uuid4())
    mine = await _port(client, net, "pa", server)
    for _ in range(3):
        await _port(client, net, "pa", str(uuid.uuid4()))
    statements.clear()
    assert await _ids(client, "admin:admin", f"device_id={server}") == [mine["id"]]
    port_reads = [s for s in statements if "FROM ports" in s]
    assert port_reads and all("ports.device_id = ?" in s for s in port_reads), port_reads


async def test_floating_ips_are_read_by_port(api: dict[str, Any]) -> None:
    client, statements = api["client"], api["statements"]
    statements.clear()
    resp = await client.get("/floatingips?port_id=p1&port_id=p2", headers=_as("admin:admin"))
    assert resp.status_code == 200 and resp.json() == {"floatingips": []}
    reads = [s for s in statements if "FROM floatingips" in s]
    assert reads and all("floatingips.fixed_port_id IN" in s for s in reads), reads
    statements.clear()
    assert (await client.get("/floatingips?tenant_id=other", headers=_as("u:pa"))).json() == {"floatingips": []}
    reads = [s for s in statements if "FROM floatingips" in s]
    assert reads and all("floatingips.project_id" in s for s in reads), reads


async def test_nova_events_coming_during_a_post_go_in_the_next_one() -> None:
    conf = conf_mod.load(overrides={})
    posts: list[list[str]] = []
    first_sent, release = asyncio.Event(), asyncio.Event()

    async def post(events: list[dict[str, Any]]) -> int:
        posts.append([e["tag"] for e in events])
        first_sent.set()
        await asyncio.wait_for(release.wait(), 5)
        return 200

    nova = NovaNotifier(conf, post)

    def plugged(port: str) -> dict[str, Any]:
        return {"name": "network-vif-plugged", "server_uuid": str(uuid.uuid4()), "tag": port, "status": "completed"}

    nova.send([plugged("p1")])
    await asyncio.wait_for(first_sent.wait(), 5)  # the first went at once, alone
    nova.send([plugged("p2")])
    nova.send([plugged("p3"), plugged("p4")])
    release.set()
    await nova.drain()
    assert posts == [["p1"], ["p2", "p3", "p4"]]
    nova.send([plugged("p5")])
    await nova.drain()
    assert posts[-1] == ["p5"]


async def test_network_and_subnet_lists_by_id_answer_as_before(api: dict[str, Any]) -> None:
    client, statements = api["client"], api["statements"]
    net_a = await _network(client, "pa", "10.5.0.0/24")
    net_b = await _network(client, "pb", "10.6.0.0/24")
    shared = await _network(client, "pb", "10.7.0.0/24", shared=True)

    async def listed(caller: str, collection: str, query: str) -> list[str]:
        resp = await client.get(f"/{collection}?{query}", headers=_as(caller))
        assert resp.status_code == 200, resp.text
        return sorted(x["id"] for x in resp.json()[collection])

    assert await listed("u:pa", "networks", f"id={net_a}&id={net_b}&id={shared}") == sorted([net_a, shared])
    assert await listed("admin:admin", "networks", f"id={net_a}&id={net_b}") == sorted([net_a, net_b])
    assert await listed("u:pa", "networks", "name=net-pb") == [shared]  # pb's own network is not pa's to see
    subnets = {n: (await client.get(f"/subnets?network_id={n}", headers=_as("admin:admin"))).json()["subnets"][0]["id"]
               for n in (net_a, net_b, shared)}
    assert await listed("u:pa", "subnets", f"id={subnets[net_b]}") == []
    assert await listed("u:pa", "subnets", f"network_id={net_b}&network_id={shared}") == [subnets[shared]]
    statements.clear()
    assert await listed("admin:admin", "subnets", f"id={subnets[net_a]}&cidr=10.5.0.0/24") == [subnets[net_a]]
    assert all("subnets.id = ?" in s for s in statements if "FROM subnets" in s)
    assert await listed("admin:admin", "subnets", "cidr=10.5.0.0/25") == []


async def test_quota_details_count_every_resource_in_one_statement(api: dict[str, Any]) -> None:
    client, statements = api["client"], api["statements"]
    net = await _network(client, "pq", "10.8.0.0/24")
    await _port(client, net, "pq")
    await _port(client, net, "pq")
    statements.clear()
    resp = await client.get("/quotas/pq/details", headers=_as("admin:admin"))
    assert resp.status_code == 200, resp.text
    quota = resp.json()["quota"]
    groups = (await client.get("/security-groups?tenant_id=pq", headers=_as("admin:admin"))).json()
    rules = (await client.get("/security-group-rules?tenant_id=pq", headers=_as("admin:admin"))).json()
    assert {k: v["used"] for k, v in quota.items()} == {
        "network": 1, "subnet": 1, "port": 2, "router": 0, "floatingip": 0,
        "security_group": len(groups["security_groups"]), "security_group_rule": len(rules["security_group_rules"])}
    assert quota["port"] == {"limit": 500, "used": 2, "reserved": 0}
    assert len([s for s in statements if "count(" in s.lower()]) == 1
    # the project's own limits come in the same statement: the details are one statement in all
    assert (await client.put("/quotas/pq", json={"quota": {"port": 7, "router": -1}},
                             headers=_as("admin:admin"))).status_code == 200
    statements.clear()
    quota = (await client.get("/quotas/pq/details", headers=_as("admin:admin"))).json()["quota"]
    assert quota["port"] == {"limit": 7, "used": 2, "reserved": 0} and quota["router"]["limit"] == -1
    assert quota["network"]["limit"] == 100  # the default: no limit of its own
    assert len(statements) == 1, statements
