"""The agent RPC seam in one process, as the all-in-one wires it: the real networking API (over ASGI), database,
in-process transport and server endpoint, with recording L2 and DHCP agents on the other side of the seam."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus import conf as conf_mod
from stratus.context import RequestContext
from stratus.identity.auth import NoAuth2
from stratus.network.agent_rpc import AGENT_TOPIC, DHCP_TOPIC, SERVER_TOPIC, AgentNotifyAPI, PluginAPI
from stratus.network.server.app import create_app
from stratus.network.server.notify import Notifier
from stratus.network.server.nova import NovaNotifier
from stratus.network.server.policy import NetworkPolicy
from stratus.network.server.resource import NetworkServices
from stratus.network.server.rpc import NetworkServerEndpoint
from stratus.rpc.local import LocalTransport
from stratus.service import open_database

CTX = RequestContext.admin().to_dict()


class L2Agent:
    """Records what it is told and says every port is up, as an agent that wired it."""

    def __init__(self, plugin: PluginAPI, host: str) -> None:
        self.plugin, self.host = plugin, host
        self.updates: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.groups: list[list[str]] = []

    async def port_update(self, context: dict[str, Any], port: dict[str, Any]) -> None:
        self.updates.append(port)
        await self.plugin.update_device_up(CTX, self.host, port["id"])

    async def port_delete(self, context: dict[str, Any], port_id: str, network_id: str) -> None:
        self.deleted.append(port_id)

    async def network_delete(self, context: dict[str, Any], network_id: str) -> None:
        pass

    async def security_groups_updated(self, context: dict[str, Any], port_ids: list[str]) -> None:
        self.groups.append(port_ids)


class DhcpAgent:
    def __init__(self) -> None:
        self.networks: list[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]] = []

    async def network_update(self, context: dict[str, Any], network: dict[str, Any], subnets: list[dict[str, Any]],
                             ports: list[dict[str, Any]]) -> None:
        self.networks.append((network, subnets, ports))

    async def network_delete(self, context: dict[str, Any], network_id: str) -> None:
        pass


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 2 s")


@pytest.fixture
async def seam(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    db = await open_database(conf)
    transport = LocalTransport()
    events: list[list[dict[str, Any]]] = []

    async def post(batch: list[dict[str, Any]]) -> int:
        events.append(batch)
        return 404  # a compute API without the events API: logged and ignored

    nova = NovaNotifier(conf, post)
    notifier = Notifier(db, AgentNotifyAPI(transport), nova, ["nova"])
    await transport.listen(SERVER_TOPIC, NetworkServerEndpoint(db, notifier, "nova", conf.network_server))
    plugin = PluginAPI(transport)
    l2, dhcp = L2Agent(plugin, "h1"), DhcpAgent()
    await transport.listen(AGENT_TOPIC, l2, server="h1")
    await transport.listen(DHCP_TOPIC, dhcp, server="net-host")
    services = NetworkServices(conf=conf, db=db, policy=NetworkPolicy(conf), notifier=notifier)
    auth = NoAuth2()
    app = auth.wrap(create_app(services, auth))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://net/v2.0",
                                 headers={"X-Auth-Token": "admin:admin"}) as client:
        yield {"client": client, "plugin": plugin, "l2": l2, "dhcp": dhcp, "events": events, "nova": nova, "db": db}
    await transport.stop()
    await nova.drain()
    await db.dispose()


async def test_bound_port_reaches_its_agent_goes_active_and_nova_hears(seam: dict[str, Any]) -> None:
    client, plugin, l2, dhcp = seam["client"], seam["plugin"], seam["l2"], seam["dhcp"]
    await plugin.report_state(CTX, "h1", "Linux bridge agent", "test-agent", {"devices": 0})
    await plugin.report_state(CTX, "net-host", "DHCP agent", "test-dhcp", {})
    net = (await client.post("/networks", json={"network": {"name": "n"}})).json()["network"]
    sub = (await client.post("/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.9.0.0/24",
                                                          "ip_version": 4}})).json()["subnet"]
    server = str(uuid.uuid4())
    peer = (await client.post("/ports", json={"port": {"network_id": net["id"]}})).json()["port"]
    port = (await client.post("/ports", json={"port": {"network_id": net["id"], "device_id": server,
                                                       "device_owner": "compute:nova",
                                                       "binding:host_id": "h1"}})).json()["port"]
    assert port["binding:vif_type"] == "bridge"
    await _until(lambda: bool(l2.updates))
    told = l2.updates[0]
    assert told["id"] == port["id"] and told["network"]["provider:segmentation_id"] == \
        net["provider:segmentation_id"]
    assert [s["id"] for s in told["subnets"]] == [sub["id"]]
    ingress = [r for r in told["security_group_rules"] if r["direction"] == "ingress" and r["ethertype"] == "IPv4"]
    assert ingress and sorted(ingress[0]["remote_ips"]) == sorted(
        [peer["fixed_ips"][0]["ip_address"], port["fixed_ips"][0]["ip_address"]])  # the default group's members
    # each rule as Neutron's security group RPC gives it: the fields a firewall filters by, no ids or timestamps
    assert set(ingress[0]) == {"security_group_id", "direction", "ethertype", "protocol", "port_range_min",
                               "port_range_max", "remote_ip_prefix", "remote_group_id", "remote_ips"}
    assert {r["security_group_id"] for r in told["security_group_rules"]} == set(port["security_groups"])
    assert all("remote_ips" not in r for r in told["security_group_rules"] if not r["remote_group_id"])
    await _until(lambda: bool(seam["events"]))
    assert seam["events"][0] == [{"name": "network-vif-plugged", "server_uuid": server, "tag": port["id"],
                                  "status": "completed"}]
    assert (await client.get(f"/ports/{port['id']}")).json()["port"]["status"] == "ACTIVE"
    assert any(ports for _, _, ports in dhcp.networks)
    # a report from a host the port is not bound to changes nothing
    assert await plugin.update_device_down(CTX, "h2", port["id"]) is False
    assert await plugin.update_device_down(CTX, "h1", port["id"]) is True
    await _until(lambda: len(seam["events"]) == 2)
    assert seam["events"][1][0]["name"] == "network-vif-unplugged"
    details = await plugin.get_device_details(CTX, "h1", port["id"])
    assert details is not None and details["status"] == "DOWN"
    # a rule change reaches the agents of the group's ports
    group = port["security_groups"][0]
    await client.post("/security-group-rules", json={"security_group_rule": {
        "security_group_id": group, "direction": "ingress", "protocol": "icmp"}})
    await _until(lambda: bool(l2.groups))
    assert l2.groups[0] == [port["id"]]
    assert (await client.delete(f"/ports/{port['id']}")).status_code == 204
    await _until(lambda: bool(l2.deleted))
    assert l2.deleted == [port["id"]]


async def test_dhcp_port_is_made_once_per_agent(seam: dict[str, Any]) -> None:
    client, plugin = seam["client"], seam["plugin"]
    net = (await client.post("/networks", json={"network": {}})).json()["network"]
    assert await plugin.create_dhcp_port(CTX, "net-host", net["id"]) is None  # no DHCP subnet yet
    await client.post("/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.8.0.0/24",
                                                   "ip_version": 4}})
    first = await plugin.create_dhcp_port(CTX, "net-host", net["id"])
    again = await plugin.create_dhcp_port(CTX, "net-host", net["id"])
    assert first is not None and again is not None and first["id"] == again["id"]
    assert first["device_owner"] == "network:dhcp" and first["fixed_ips"][0]["ip_address"] == "10.8.0.2"
    # DHCP ports do not keep the network from being deleted; released, the port is gone
    assert await plugin.release_dhcp_port(CTX, "net-host", net["id"]) is True
    assert (await client.get(f"/ports/{first['id']}")).status_code == 404
    assert (await client.delete(f"/networks/{net['id']}")).status_code == 204


async def test_floating_ip_association_tells_nova_network_changed(seam: dict[str, Any]) -> None:
    """As Neutron's nova notifier: a floating IP that reaches or leaves a server's port is network-changed for
    that server, so Nova re-reads its addresses."""
    client, events = seam["client"], seam["events"]
    public = (await client.post("/networks", json={"network": {"router:external": True}})).json()["network"]
    await client.post("/subnets", json={"subnet": {"network_id": public["id"], "cidr": "172.24.0.0/24",
                                                   "ip_version": 4}})
    net = (await client.post("/networks", json={"network": {}})).json()["network"]
    sub = (await client.post("/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.7.0.0/24",
                                                          "ip_version": 4}})).json()["subnet"]
    router = (await client.post("/routers", json={"router": {"external_gateway_info": {
        "network_id": public["id"]}}})).json()["router"]
    assert (await client.put(f"/routers/{router['id']}/add_router_interface",
                             json={"subnet_id": sub["id"]})).status_code == 200
    server, other = str(uuid.uuid4()), str(uuid.uuid4())
    ports = [(await client.post("/ports", json={"port": {"network_id": net["id"], "device_id": s,
                                                         "device_owner": "compute:nova"}})).json()["port"]
             for s in (server, other)]
    plain = (await client.post("/ports", json={"port": {"network_id": net["id"]}})).json()["port"]
    await seam["nova"].drain()
    events.clear()

    def changed() -> list[tuple[str, str]]:
        return sorted((e["server_uuid"], e["tag"]) for batch in events for e in batch
                      if e["name"] == "network-changed")

    fip = (await client.post("/floatingips", json={"floatingip": {
        "floating_network_id": public["id"], "port_id": ports[0]["id"]}})).json()["floatingip"]
    await seam["nova"].drain()
    assert changed() == [(server, ports[0]["id"])]
    events.clear()
    # moved to another server's port: both hear of it
    await client.put(f"/floatingips/{fip['id']}", json={"floatingip": {"port_id": ports[1]["id"]}})
    await seam["nova"].drain()
    assert changed() == sorted([(server, ports[0]["id"]), (other, ports[1]["id"])])
    events.clear()
    # a port of no server: nothing to tell; deleted while on a server's port: that server hears
    await client.put(f"/floatingips/{fip['id']}", json={"floatingip": {"port_id": plain["id"]}})
    await seam["nova"].drain()
    assert changed() == [(other, ports[1]["id"])]
    await client.put(f"/floatingips/{fip['id']}", json={"floatingip": {"port_id": ports[0]["id"]}})
    await seam["nova"].drain()
    events.clear()
    assert (await client.delete(f"/floatingips/{fip['id']}")).status_code == 204
    await seam["nova"].drain()
    assert changed() == [(server, ports[0]["id"])]


async def test_dhcp_updates_of_a_burst_of_ports_are_coalesced(seam: dict[str, Any]) -> None:
    """Ports made at once on one network: the DHCP agents get fewer network-wide updates than ports, and the
    last one (sent after every port's commit) holds them all."""
    client, plugin, dhcp = seam["client"], seam["plugin"], seam["dhcp"]
    await plugin.report_state(CTX, "net-host", "DHCP agent", "test-dhcp", {})
    net = (await client.post("/networks", json={"network": {}})).json()["network"]
    await client.post("/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.6.0.0/24",
                                                   "ip_version": 4}})
    dhcp.networks.clear()
    made = await asyncio.gather(*(client.post("/ports", json={"port": {"network_id": net["id"]}})
                                  for _ in range(20)))
    ids = sorted(r.json()["port"]["id"] for r in made)
    await seam["plugin"].transport.stop()  # every fanout delivered
    assert sorted(p["id"] for p in dhcp.networks[-1][2]) == ids
    assert 1 <= len(dhcp.networks) < len(ids)


async def test_a_dhcp_agent_that_reports_after_a_port_hears_of_the_next(seam: dict[str, Any]) -> None:
    """A port's create finds in its own statement whether any DHCP agent exists: none, none is told; one that
    reported since (another process's, as far as the create knows) hears of the network at the next port."""
    client, plugin, dhcp = seam["client"], seam["plugin"], seam["dhcp"]
    net = (await client.post("/networks", json={"network": {"name": "n"}})).json()["network"]
    await client.post("/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.9.1.0/24", "ip_version": 4}})
    first = (await client.post("/ports", json={"port": {"network_id": net["id"]}})).json()["port"]
    await asyncio.sleep(0.05)
    assert dhcp.networks == []
    await plugin.report_state(CTX, "net-host", "DHCP agent", "test-dhcp", {})
    second = (await client.post("/ports", json={"port": {"network_id": net["id"]}})).json()["port"]
    await _until(lambda: bool(dhcp.networks))
    network, _subnets, told = dhcp.networks[-1]
    assert network["id"] == net["id"] and {p["id"] for p in told} == {first["id"], second["id"]}


async def test_port_create_facts(seam: dict[str, Any]) -> None:
    """The one statement a port's create asks of the quota, default group and agent tables."""
    from stratus.db import network as db

    client, plugin, database = seam["client"], seam["plugin"], seam["db"]
    project = "p-facts"
    async with database.read() as conn:
        facts = await db.port_create_facts(conn, project, "h9", "Linux bridge agent", "DHCP agent")
    assert facts == db.PortCreateFacts(None, 0, None, None, False)
    await plugin.report_state(CTX, "h9", "Linux bridge agent", "test-agent", {})
    await plugin.report_state(CTX, "elsewhere", "DHCP agent", "test-dhcp", {})
    assert (await client.put(f"/quotas/{project}", json={"quota": {"port": 7}})).status_code == 200
    net = (await client.post("/networks", json={"network": {"name": "n", "project_id": project}})).json()["network"]
    port = (await client.post("/ports", json={"port": {"network_id": net["id"], "project_id": project}})
            ).json()["port"]
    async with database.read() as conn:
        facts = await db.port_create_facts(conn, project, "h9", "Linux bridge agent", "DHCP agent")
        other = await db.port_create_facts(conn, project, "h8", "Linux bridge agent", "DHCP agent")
    assert (facts.limit, facts.used, facts.default_group, facts.dhcp_agents) == \
        (7, 1, port["security_groups"][0], True)
    assert facts.heartbeat is not None and facts.heartbeat.tzinfo is None and other.heartbeat is None
    agent = next(a for a in (await client.get("/agents", params={"host": "h9"})).json()["agents"])
    assert (await client.put(f"/agents/{agent['id']}", json={"agent": {"admin_state_up": False}})).status_code == 200
    async with database.read() as conn:
        assert (await db.port_create_facts(conn, project, "h9", "Linux bridge agent", "DHCP agent")).heartbeat is None


async def test_a_port_no_agent_is_told_of_reads_no_rules(seam: dict[str, Any]) -> None:
    """Only a port bound to an agent is told of (port_update), so only its create reads its groups' rules (in its
    own transaction); an unbound port's create reads none, and nothing is read after its commit."""
    from sqlalchemy import event

    client, database = seam["client"], seam["db"]
    net = (await client.post("/networks", json={"network": {"name": "n"}})).json()["network"]
    await client.post("/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.9.2.0/24", "ip_version": 4}})
    assert (await client.post("/ports", json={"port": {"network_id": net["id"]}})).status_code == 201
    statements: list[str] = []
    event.listen(database.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: statements.append(statement))
    port = (await client.post("/ports", json={"port": {"network_id": net["id"], "device_id": str(uuid.uuid4()),
                                                       "device_owner": "compute:nova"}})).json()["port"]
    await asyncio.sleep(0.05)
    assert port["binding:vif_type"] == "unbound"
    assert not [s for s in statements if "security_group_rules" in s], statements
    assert not [s for s in statements if s.startswith("SELECT ports.")], statements  # the port is not read back
