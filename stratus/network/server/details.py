"""What an agent is told of a port (``port_update``) and a DHCP agent of a network (``network_update``): the
admin's views, with the network's segment and subnets and the port's security group rules, where a rule naming a
remote group also lists that group's members' addresses (``remote_ips``), so the agent filters without asking."""

from __future__ import annotations

from typing import Any

from stratus.db import network as db
from stratus.db.engine import Connection
from stratus.network.server import networks, ports, security_groups, subnets


def _port_view(record: dict[str, Any], allocations: list[dict[str, Any]]) -> dict[str, Any]:
    return ports.view(record, allocations)


async def network_payload(conn: Connection, network_id: str, zones: list[str]
                          ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]] | None:
    record = await db.get(conn, "network", network_id)
    if record is None:
        return None
    subnet_records = await db.find(conn, "subnet", network_id=network_id)
    port_records = await db.find(conn, "port", network_id=network_id)
    allocations = await db.allocations(conn, network_id=network_id)
    by_port: dict[str, list[dict[str, Any]]] = {}
    for allocation in allocations:
        by_port.setdefault(allocation["port_id"], []).append(allocation)
    return (networks.view(record, [s["id"] for s in subnet_records], zones),
            [subnets.view(s) for s in subnet_records],
            [_port_view(p, by_port.get(p["id"], [])) for p in port_records])


#: a port's rows as the transaction that wrote them has them: (port record, network record, its allocations, the
#: network's subnets, its groups' rules as its agent is told them)
Known = ports.Known


def payload(known: Known, zones: list[str]) -> dict[str, Any]:
    """What the port's agent is told of it (``port_update``), from its rows: the port, its network, the subnets it
    has addresses on, and its groups' rules."""
    record, network, allocations, network_subnets, rules = known
    port = _port_view(record, allocations)
    mine = {ip["subnet_id"] for ip in port["fixed_ips"]}
    return {**port, "network": networks.view(network, [s["id"] for s in network_subnets], zones),
            "subnets": [subnets.view(s) for s in network_subnets if s["id"] in mine], "security_group_rules": rules}


async def port_payload(conn: Connection, port_id: str, zones: list[str]) -> dict[str, Any] | None:
    """:func:`payload` of the port as the database has it (its own rows only: the network's other ports are not
    read); None if it is gone."""
    record = await db.get(conn, "port", port_id)
    network = None if record is None else await db.get(conn, "network", record["network_id"])
    if record is None or network is None:
        return None
    allocations = await db.allocations(conn, port_ids=[port_id])
    network_subnets = await db.find(conn, "subnet", network_id=network["id"])
    rules = await security_groups.group_rules(conn, list(record.get("security_groups") or []))
    return payload((record, network, allocations, network_subnets, rules), zones)


async def router_payload(conn: Connection, router_id: str) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                    dict[str, Any] | None, list[dict[str, Any]]] | None:
    """(router, interfaces, gateway, floating_ips) for ``router_update``: the router's columns, its interface
    ports and gateway port (with their fixed IPs and subnets) and its floating IPs."""
    router = await db.get(conn, "router", router_id)
    if router is None:
        return None
    own = await db.find(conn, "port", device_id=router_id)
    held = await db.allocations(conn, port_ids=[p["id"] for p in own]) if own else []
    subnet_records = {s["id"]: subnets.view(s) for s in
                      (await db.find(conn, "subnet", id=list({h["subnet_id"] for h in held})) if held else [])}

    def with_subnets(port: dict[str, Any]) -> dict[str, Any]:
        shown = ports.view(port, [h for h in held if h["port_id"] == port["id"]])
        shown["subnets"] = [subnet_records[ip["subnet_id"]] for ip in shown["fixed_ips"]
                            if ip["subnet_id"] in subnet_records]
        return shown

    interfaces = [with_subnets(p) for p in own if p["device_owner"] == "network:router_interface"]
    gateway = next((with_subnets(p) for p in own if p["id"] == router["gw_port_id"]), None)
    fips = [{"id": f["id"], "floating_ip_address": f["floating_ip_address"], "fixed_ip_address": f["fixed_ip_address"],
             "port_id": f["fixed_port_id"], "status": f["status"]}
            for f in await db.find(conn, "floatingip", router_id=router_id)]
    shown_router = {"id": router["id"], "name": router["name"], "project_id": router["project_id"],
                    "admin_state_up": router["admin_state_up"], "enable_snat": router["enable_snat"],
                    "routes": router.get("routes") or []}
    return shown_router, interfaces, gateway, fips
