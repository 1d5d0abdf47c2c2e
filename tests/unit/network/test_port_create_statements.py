"""What a port create asks of the database, the part of a boot the Networking service pays for: no lookup of a MAC
it made itself (the unique key of network and MAC catches the rare clash, and the create runs again), no delete of
groups a new port cannot have, its addresses not read back; the statements of the hot queries built once and run
with their values; an admin's subnet list by id reading those subnets joined to their networks in one statement."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.db import network as db
from stratus.network.server import ipam
from tests.unit.network.counted_api import counted_api

ADMIN = {"X-Auth-Token": "admin:admin"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async with counted_api(tmp_path, ADMIN) as found:
        yield found


async def _network(client: httpx.AsyncClient, cidr: str) -> tuple[str, str]:
    net = (await client.post("/networks", json={"network": {"name": "n", "project_id": "p"}})).json()["network"]
    resp = await client.post("/subnets", json={"subnet": {"network_id": net["id"], "cidr": cidr, "ip_version": 4,
                                                          "project_id": "p"}})
    assert resp.status_code == 201, resp.text
    return str(net["id"]), str(resp.json()["subnet"]["id"])


async def _create(client: httpx.AsyncClient, network_id: str, **extra: Any) -> httpx.Response:
    return await client.post("/ports", json={"port": {"network_id": network_id, "project_id": "p",
                                                      "device_id": str(uuid.uuid4()), "device_owner": "compute:nova",
                                                      **extra}})


async def test_a_port_create_reads_and_writes_only_what_it_needs(api: dict[str, Any]) -> None:
    client, statements = api["client"], api["statements"]
    net, subnet = await _network(client, "10.9.0.0/24")
    assert (await _create(client, net)).status_code == 201  # the project's default group is made by the first
    statements.clear()
    resp = await _create(client, net)
    assert resp.status_code == 201, resp.text
    port = resp.json()["port"]
    assert port["fixed_ips"] == [{"subnet_id": subnet, "ip_address": "10.9.0.3"}]
    assert len(port["security_groups"]) == 1
    assert not [s for s in statements if "FROM ports" in s and "mac_address" in s.split("WHERE")[-1]], statements
    assert not [s for s in statements if s.startswith("DELETE")], statements
    allocation_reads = [s for s in statements if s.startswith("SELECT") and "FROM ip_allocations" in s]
    assert len(allocation_reads) == 1 and "ip_allocations.network_id =" in allocation_reads[0]
    # the rows are as the response says
    shown = (await client.get(f"/ports/{port['id']}")).json()["port"]
    assert shown["fixed_ips"] == port["fixed_ips"] and shown["security_groups"] == port["security_groups"]
    assert shown["mac_address"] == port["mac_address"]


async def test_a_mac_made_here_that_clashes_is_made_again(api: dict[str, Any], monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    client = api["client"]
    net, _ = await _network(client, "10.10.0.0/24")
    first = (await _create(client, net)).json()["port"]
    made = iter([first["mac_address"], first["mac_address"], "fa:16:3e:00:00:42"])
    monkeypatch.setattr(ipam, "random_mac", lambda base: next(made))
    resp = await _create(client, net)
    assert resp.status_code == 201, resp.text
    second = resp.json()["port"]
    assert second["mac_address"] == "fa:16:3e:00:00:42"
    assert second["fixed_ips"][0]["ip_address"] != first["fixed_ips"][0]["ip_address"]
    listed = (await client.get(f"/ports?network_id={net}")).json()["ports"]
    assert sorted(p["id"] for p in listed) == sorted([first["id"], second["id"]])  # nothing half-made is left


async def test_macs_that_always_clash_are_neutrons_409(api: dict[str, Any], monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    client = api["client"]
    net, _ = await _network(client, "10.11.0.0/24")
    first = (await _create(client, net)).json()["port"]
    monkeypatch.setattr(ipam, "random_mac", lambda base: first["mac_address"])
    resp = await _create(client, net)
    assert resp.status_code == 409
    assert resp.json()["NeutronError"]["type"] == "MacAddressGenerationFailure"
    # a MAC asked for that is taken is still MacAddressInUse, and the port is not made
    resp = await _create(client, net, mac_address=first["mac_address"])
    assert resp.status_code == 409 and resp.json()["NeutronError"]["type"] == "MacAddressInUse"
    assert len((await client.get(f"/ports?network_id={net}")).json()["ports"]) == 1


async def test_hot_statements_are_built_once(api: dict[str, Any]) -> None:
    client = api["client"]
    net, _ = await _network(client, "10.12.0.0/24")
    await _create(client, net)
    await client.get(f"/ports?network_id={net}&device_owner=network:dhcp")
    built = set(db._STATEMENTS)
    statements = {k: id(v) for k, v in db._STATEMENTS.items()}
    for _ in range(3):
        assert (await _create(client, net)).status_code == 201
        assert (await client.get(f"/ports?network_id={net}&device_owner=network:dhcp")).status_code == 200
    assert set(db._STATEMENTS) == built
    assert {k: id(v) for k, v in db._STATEMENTS.items()} == statements
    # one network, one owner: plain equalities, not an IN list rendered again at each execution
    assert ("find", "ports", (("network_id", False), ("device_owner", False))) in built


async def test_a_list_of_one_value_is_an_equality_and_of_more_an_in(api: dict[str, Any]) -> None:
    client, statements = api["client"], api["statements"]
    first, second = await _network(client, "10.13.0.0/24"), await _network(client, "10.14.0.0/24")
    statements.clear()
    one = (await client.get(f"/networks?id={first[0]}")).json()["networks"]
    assert [n["id"] for n in one] == [first[0]] and one[0]["subnets"] == [first[1]]
    assert any("networks.id = ?" in s for s in statements) and not any(" IN " in s for s in statements), statements
    statements.clear()
    both = (await client.get(f"/networks?id={first[0]}&id={second[0]}")).json()["networks"]
    assert sorted(n["id"] for n in both) == sorted([first[0], second[0]])
    assert {n["id"]: n["subnets"] for n in both} == {first[0]: [first[1]], second[0]: [second[1]]}
    assert any("networks.id IN" in s for s in statements), statements


async def test_a_network_list_reads_its_subnets_ids_only(api: dict[str, Any]) -> None:
    client, statements = api["client"], api["statements"]
    net, subnet = await _network(client, "10.15.0.0/24")
    second = await client.post("/subnets", json={"subnet": {"network_id": net, "cidr": "10.16.0.0/24",
                                                            "ip_version": 4, "project_id": "p"}})
    statements.clear()
    (shown,) = (await client.get(f"/networks?id={net}")).json()["networks"]
    assert shown["subnets"] == [subnet, second.json()["subnet"]["id"]]  # oldest first, as before
    subnet_reads = [s for s in statements if "FROM subnets" in s]
    assert subnet_reads == ["SELECT subnets.network_id, subnets.id \nFROM subnets \nWHERE subnets.network_id = ? "
                            "ORDER BY subnets.created_at, subnets.id"], subnet_reads


async def test_an_admins_subnet_list_by_id_reads_them_with_their_networks_at_once(api: dict[str, Any]) -> None:
    client, statements = api["client"], api["statements"]
    nets = [await _network(client, f"10.{20 + k}.0.0/24") for k in range(3)]
    statements.clear()
    resp = await client.get(f"/subnets?id={nets[1][1]}&fields=id&fields=cidr")
    assert resp.json() == {"subnets": [{"id": nets[1][1], "cidr": "10.21.0.0/24"}]}
    # one statement: the subnet by its id, joined to its network for what the policy check reads of it
    assert len(statements) == 1 and "JOIN networks ON networks.id = subnets.network_id" in statements[0] and \
        "WHERE subnets.id = ?" in statements[0], statements
    # a project user still sees only the subnets of networks it may see
    resp = await client.get(f"/subnets?id={nets[1][1]}", headers={"X-Auth-Token": "u:other"})
    assert resp.json() == {"subnets": []}



async def test_a_nul_in_the_path_or_query_is_refused(api: dict[str, Any]) -> None:
    client = api["client"]
    for url in ("/networks/a%00b", "/ports?device_id=a%00b"):
        resp = await client.get(url)
        assert resp.status_code == 400, url
        assert resp.json()["NeutronError"]["message"] == "NUL characters are not allowed in the URL."


async def test_a_network_list_of_a_few_fields_reads_no_subnets(api: dict[str, Any]) -> None:
    client, statements = api["client"], api["statements"]
    net, subnet = await _network(client, "10.30.0.0/24")
    statements.clear()
    resp = await client.get(f"/networks?id={net}&fields=id&fields=name")
    assert resp.json() == {"networks": [{"id": net, "name": "n"}]}
    assert not [s for s in statements if "FROM subnets" in s]
    # asked for, or filtered by: read
    assert (await client.get(f"/networks?id={net}")).json()["networks"][0]["subnets"] == [subnet]
    assert (await client.get(f"/networks?id={net}&fields=id&fields=subnets")).json()["networks"] == [
        {"id": net, "subnets": [subnet]}]
    assert (await client.get(f"/networks?fields=id&subnets={subnet}")).json()["networks"] == [{"id": net}]
    assert (await client.get("/networks?fields=id&subnets=nope")).json()["networks"] == []


async def test_group_members_of_one_group_and_of_several(api: dict[str, Any]) -> None:
    """The members' addresses of the rules' remote groups: one group (a port's default group) by an equality,
    several by IN, the same rows either way."""
    client, database = api["client"], api["db"]
    net, _ = await _network(client, "10.17.0.0/24")
    first = (await _create(client, net)).json()["port"]
    group = (await client.post("/security-groups", json={"security_group": {"name": "web", "project_id": "p"}})
             ).json()["security_group"]["id"]
    second = (await _create(client, net, security_groups=[group])).json()["port"]
    default = first["security_groups"][0]
    address = {p["id"]: p["fixed_ips"][0]["ip_address"] for p in (first, second)}
    api["statements"].clear()
    async with database.read() as conn:
        assert await db.group_member_addresses(conn, [default]) == {default: [address[first["id"]]]}
        assert await db.group_member_addresses(conn, [default, group]) == {
            default: [address[first["id"]]], group: [address[second["id"]]]}
        assert await db.group_member_addresses(conn, []) == {}
    one, several = api["statements"]
    assert "security_group_id = ?" in one and "security_group_id IN" in several


async def test_a_port_create_asks_quota_group_and_agents_in_one_statement(api: dict[str, Any]) -> None:
    """The port quota, the default group, the host's L2 agent and whether a DHCP agent exists: one SELECT of the
    create's transaction, not one each (and no read of the agents after the commit)."""
    client, statements = api["client"], api["statements"]
    net, _ = await _network(client, "10.11.0.0/24")
    assert (await _create(client, net)).status_code == 201  # the project's default group is made by the first
    statements.clear()
    resp = await _create(client, net, **{"binding:host_id": "h1"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["port"]["binding:vif_type"] == "binding_failed"  # no agent on h1
    asked = [s for s in statements if s.startswith("SELECT") and
             ("network_agents" in s or "network_quotas" in s or "default_security_groups" in s)]
    assert len(asked) == 1, asked
    assert all(t in asked[0] for t in ("network_agents", "network_quotas", "default_security_groups"))
