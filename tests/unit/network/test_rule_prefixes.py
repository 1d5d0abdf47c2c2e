"""A security group rule's ``remote_ip_prefix`` as Neutron keeps it: as the user gave it (host bits too), with its
network in ``normalized_cidr``; two rules whose prefixes have the same network are the same rule (409)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from stratus import conf as conf_mod
from stratus.identity.auth import NoAuth2
from stratus.network.server.app import create_app
from stratus.network.server.policy import NetworkPolicy
from stratus.network.server.resource import NetworkServices
from stratus.service import open_database


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    database = await open_database(conf)
    auth = NoAuth2()
    app = auth.wrap(create_app(NetworkServices(conf=conf, db=database, policy=NetworkPolicy(conf)), auth))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://net/v2.0",
                                 headers={"X-Auth-Token": "u:p"}) as http:
        yield http
    await database.dispose()


async def _rule(client: httpx.AsyncClient, group: str, prefix: str, ethertype: str = "IPv4") -> httpx.Response:
    return await client.post("/security-group-rules", json={"security_group_rule": {
        "security_group_id": group, "direction": "ingress", "ethertype": ethertype, "protocol": "tcp",
        "port_range_min": 76, "port_range_max": 77, "remote_ip_prefix": prefix}})


async def test_the_prefix_is_kept_as_given_and_normalised_beside(client: httpx.AsyncClient) -> None:
    group = (await client.post("/security-groups", json={"security_group": {"name": "g"}})).json()[
        "security_group"]["id"]
    resp = await _rule(client, group, "10.2.3.124/24")
    assert resp.status_code == 201, resp.text
    rule = resp.json()["security_group_rule"]
    assert (rule["remote_ip_prefix"], rule["normalized_cidr"]) == ("10.2.3.124/24", "10.2.3.0/24")
    shown = (await client.get(f"/security-group-rules/{rule['id']}")).json()["security_group_rule"]
    assert (shown["remote_ip_prefix"], shown["normalized_cidr"]) == ("10.2.3.124/24", "10.2.3.0/24")
    listed = (await client.get("/security-group-rules?remote_ip_prefix=10.2.3.124/24")).json()
    assert [r["id"] for r in listed["security_group_rules"]] == [rule["id"]]
    # the same network written another way is the same rule
    resp = await _rule(client, group, "10.2.3.0/24")
    assert resp.status_code == 409
    assert resp.json()["NeutronError"] == {"type": "SecurityGroupRuleExists", "detail": "",
                                           "message": f"Security group rule already exists. Rule id is "
                                                      f"{rule['id']}."}
    # a bare address is its /32 (/128); IPv6 as written, compressed, with its network beside
    bare = (await _rule(client, group, "10.9.9.9")).json()["security_group_rule"]
    assert (bare["remote_ip_prefix"], bare["normalized_cidr"]) == ("10.9.9.9/32", "10.9.9.9/32")
    v6 = (await _rule(client, group, "2001:DB8:0::5/64", "IPv6")).json()["security_group_rule"]
    assert (v6["remote_ip_prefix"], v6["normalized_cidr"]) == ("2001:db8::5/64", "2001:db8::/64")
    # host bits do not hide a wrong ethertype
    resp = await _rule(client, group, "10.2.3.124/24", "IPv6")
    assert resp.status_code == 400 and "Conflicting value ethertype" in resp.json()["NeutronError"]["message"]
    # a rule without a prefix has none normalised either
    egress = [r for r in (await client.get(f"/security-group-rules?security_group_id={group}")).json()[
        "security_group_rules"] if r["direction"] == "egress"]
    assert egress and all(r["normalized_cidr"] is None for r in egress)
