"""Floating IPs: ``/v2.0/floatingips``. An address of an external network (held by a ``network:floatingip``
port), associated with a port's fixed IPv4 address through the router that has both a gateway on that external
network and an interface on the fixed address's subnet; without such a router the association is Neutron's 404
``ExternalGatewayForFloatingIPNotFound``. The L3 agents hear of it through the router's ``router_update``, and Nova
through ``network-changed`` for the server port it reached or left, as Neutron's nova notifier sends it."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from stratus.db import network as db
from stratus.db.engine import Connection
from stratus.network.server import attributes as a
from stratus.network.server import errors, listing, networks, ports, quotas
from stratus.network.server.resource import (
    STANDARD_ATTRIBUTES,
    NetworkRequest,
    new_standard,
    standard_view,
    touch,
)
from stratus.network.server.routers import GATEWAY, INTERFACE, RETRIES, bad

FLOATING = "network:floatingip"
_ATTRS: dict[str, a.Attr] = {
    "floating_network_id": a.Attr(a.uuid_check, put=False, required=True),
    "floating_ip_address": a.Attr(a.nullable(a.ip_check), put=False),
    "subnet_id": a.Attr(a.nullable(a.uuid_check), put=False),
    "port_id": a.Attr(a.nullable(a.uuid_check)),
    "fixed_ip_address": a.Attr(a.nullable(a.ip_check)),
    "description": a.DESCRIPTION,
    "tenant_id": a.PROJECT, "project_id": a.PROJECT,
}
VIEW_ATTRIBUTES = {*_ATTRS, *STANDARD_ATTRIBUTES, "id", "router_id", "status", "port_details"}


def view(record: dict[str, Any]) -> dict[str, Any]:
    return {"id": record["id"], **standard_view(record), "floating_network_id": record["floating_network_id"],
            "floating_ip_address": record["floating_ip_address"], "port_id": record["fixed_port_id"],
            "fixed_ip_address": record["fixed_ip_address"], "router_id": record["router_id"],
            "status": record["status"]}


def _target(record: dict[str, Any]) -> dict[str, Any]:
    return {"project_id": record["project_id"], "tenant_id": record["project_id"]}


async def visible(req: NetworkRequest, conn: Connection, fip_id: str, for_update: bool = False) -> dict[str, Any]:
    record = await db.get(conn, "floatingip", fip_id, for_update=for_update)
    if record is None or not req.services.policy.check(req.ctx, "get_floatingip", _target(record)):
        raise errors.NeutronError(404, "FloatingIPNotFound", f"Floating IP {fip_id} could not be found")
    return record


#: the attributes a list's filters may narrow in the database (``listing.pushdown``): Nova asks by ``port_id``
FILTER_COLUMNS = {"id": "id", "project_id": "project_id", "floating_network_id": "floating_network_id",
                  "floating_ip_address": "floating_ip_address", "port_id": "fixed_port_id",
                  "fixed_ip_address": "fixed_ip_address", "router_id": "router_id", "status": "status"}


async def list_floatingips(req: NetworkRequest) -> dict[str, Any]:
    equals = listing.pushdown(req.query, FILTER_COLUMNS)
    if not req.ctx.is_admin:
        mine = equals.get("project_id")
        equals["project_id"] = [req.ctx.project_id] if mine is None or req.ctx.project_id in mine else []
    async with req.services.db.read() as conn:
        records = await db.find(conn, "floatingip", **equals)
    views = [view(r) for r in records if req.services.policy.check(req.ctx, "get_floatingip", _target(r))]
    views = listing.filtered(views, req.query, VIEW_ATTRIBUTES, {})
    views, links = listing.page(req.full_url, "floatingip", views, req.query, VIEW_ATTRIBUTES,
                                req.services.options.pagination_max_limit)
    body: dict[str, Any] = {"floatingips": [listing.only_fields(v, req.query) for v in views]}
    if links:
        body["floatingips_links"] = links
    return body


async def show_floatingip(req: NetworkRequest) -> dict[str, Any]:
    async with req.services.db.read() as conn:
        return {"floatingip": listing.only_fields(view(await visible(req, conn, req.path["floatingip_id"])),
                                                  req.query)}


async def _association(req: NetworkRequest, conn: Connection, record: dict[str, Any], port_id: str | None,
                       fixed_ip: str | None) -> None:
    """Point the floating IP at ``port_id``'s ``fixed_ip`` (or its one IPv4 address) through the router that
    reaches it, or at nothing."""
    if port_id is None:
        if fixed_ip is not None:
            raise bad("floatingip", "fixed_ip_address cannot be specified without a port_id")
        record.update(fixed_port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")
        return
    port, _network = await ports.visible(req, conn, port_id)
    if port["project_id"] != record["project_id"] and not req.ctx.is_admin:
        raise errors.not_found("Port", "port_id", port_id)
    if port["device_owner"].startswith("network:"):
        raise bad("floatingip", f"Port {port['id']} is unable to be assigned a floating IP")
    held = [h for h in await db.allocations(conn, port_ids=[port["id"]])
            if ipaddress.ip_address(h["ip_address"]).version == 4]
    if fixed_ip is not None:
        chosen = next((h for h in held if h["ip_address"] == fixed_ip), None)
        if chosen is None:
            raise bad("floatingip", f"Port {port['id']} does not have fixed ip {fixed_ip}")
    else:
        if not held:
            raise bad("floatingip", f"Cannot add floating IP to port {port['id']} that has no fixed IPv4 addresses")
        if len(held) > 1:
            raise bad("floatingip", f"Port {port['id']} has multiple fixed IPv4 addresses.  Must provide a specific "
                                    "IPv4 address when assigning a floating IP")
        chosen = held[0]
    router_id = await _router_for(conn, record["floating_network_id"], chosen["subnet_id"])
    if router_id is None:
        raise errors.NeutronError(404, "ExternalGatewayForFloatingIPNotFound", f"External network "
                                  f"{record['floating_network_id']} is not reachable from subnet "
                                  f"{chosen['subnet_id']}.  Therefore, cannot associate Port {port['id']} with a "
                                  "Floating IP.")
    for other in await db.find(conn, "floatingip", fixed_port_id=port["id"]):
        if other["id"] != record["id"] and other["fixed_ip_address"] == chosen["ip_address"] and \
                other["floating_network_id"] == record["floating_network_id"]:
            raise errors.conflict("FloatingIPPortAlreadyAssociated", f"Cannot associate floating IP "
                                  f"{record['floating_ip_address']} ({record['id']}) with port {port['id']} using "
                                  f"fixed IP {chosen['ip_address']}, as that fixed IP already has a floating IP on "
                                  f"external network {record['floating_network_id']}.")
    record.update(fixed_port_id=port["id"], fixed_ip_address=chosen["ip_address"], router_id=router_id,
                  status="ACTIVE")


async def _router_for(conn: Connection, external_network_id: str, subnet_id: str) -> str | None:
    """A router with a gateway on the external network and an interface on the subnet."""
    interfaces = await db.find(conn, "port", device_owner=INTERFACE)
    held = await db.allocations(conn, port_ids=[p["id"] for p in interfaces]) if interfaces else []
    on_subnet = {p["device_id"] for p in interfaces for h in held if h["port_id"] == p["id"]
                 and h["subnet_id"] == subnet_id}
    gateways = await db.find(conn, "port", device_owner=GATEWAY, network_id=external_network_id)
    return next((g["device_id"] for g in gateways if g["device_id"] in on_subnet), None)


async def create_floatingip(req: NetworkRequest) -> dict[str, Any]:
    body = await req.body()
    values = a.parse_body(body, "floatingip", _ATTRS, create=True)
    given = body["floatingip"]
    project_id = req.project_of(values)
    req.enforce("create_floatingip", {"project_id": project_id, "tenant_id": project_id},
                [k for k in given if k not in ("tenant_id", "project_id")])
    for attempt in range(RETRIES):
        try:
            async with req.services.db.write() as conn:
                await quotas.check(req, conn, "floatingip", project_id)
                network = await networks.visible(req, conn, values["floating_network_id"])
                if not network["external"]:
                    raise bad("floatingip", f"Network {network['id']} is not a valid external network")
                v4 = [s for s in await db.find(conn, "subnet", network_id=network["id"]) if s["ip_version"] == 4]
                if not v4:
                    raise bad("floatingip", f"Network {network['id']} does not contain any IPv4 subnet")
                fixed = None
                if values["floating_ip_address"] is not None or values["subnet_id"] is not None:
                    fixed = [{k: v for k, v in (("subnet_id", values["subnet_id"]),
                                                ("ip_address", values["floating_ip_address"])) if v is not None}]
                record = {"id": str(uuid.uuid4()), **new_standard(project_id),
                          "floating_network_id": network["id"], "description": values["description"],
                          "fixed_port_id": None, "fixed_ip_address": None, "router_id": None, "status": "DOWN"}
                try:
                    port = await ports.make_port(req.services.options, conn, network, "", record["id"], FLOATING, fixed)
                except errors.NeutronError as exc:
                    if exc.type == "IpAddressGenerationFailure":
                        raise errors.NeutronError(400, "ExternalIpAddressExhausted", f"Unable to find any IP address "
                                                  f"on external network {network['id']}.") from None
                    raise
                held = await db.allocations(conn, port_ids=[port["id"]])
                address = next(h["ip_address"] for h in held if ipaddress.ip_address(h["ip_address"]).version == 4)
                record.update(floating_port_id=port["id"], floating_ip_address=address)
                await _association(req, conn, record, values["port_id"], values["fixed_ip_address"])
                await db.insert_record(conn, "floatingip", record)
            break
        except IntegrityError:
            if attempt == RETRIES - 1:
                raise
    await _changed(req, [record["router_id"]], [record["fixed_port_id"]])
    return {"floatingip": view(record)}


async def update_floatingip(req: NetworkRequest) -> dict[str, Any]:
    values = a.parse_body(await req.body(), "floatingip", _ATTRS, create=False)
    async with req.services.db.write() as conn:
        record = await visible(req, conn, req.path["floatingip_id"], for_update=True)
        req.enforce("update_floatingip", _target(record), list(values))
        before, before_port = record["router_id"], record["fixed_port_id"]
        if "port_id" in values or "fixed_ip_address" in values:
            await _association(req, conn, record, values.get("port_id", record["fixed_port_id"]),
                               values.get("fixed_ip_address"))
        if "description" in values:
            record["description"] = values["description"]
        touch(record)
        await db.update_record(conn, "floatingip", record)
    await _changed(req, [before, record["router_id"]], [before_port, record["fixed_port_id"]])
    return {"floatingip": view(record)}


async def delete_floatingip(req: NetworkRequest) -> None:
    async with req.services.db.write() as conn:
        record = await visible(req, conn, req.path["floatingip_id"], for_update=True)
        req.enforce("delete_floatingip", _target(record))
        await db.delete_record(conn, "floatingip", record["id"])
        await db.delete_record(conn, "port", record["floating_port_id"])
    await _changed(req, [record["router_id"]], [record["fixed_port_id"]])


async def _changed(req: NetworkRequest, router_ids: list[str | None], port_ids: list[str | None]) -> None:
    """The routers' L3 agents first (the address is then live), then Nova for the server ports concerned."""
    if req.services.notifier is not None:
        for router_id in dict.fromkeys(r for r in router_ids if r):
            await req.services.notifier.router_changed(router_id)
        await req.services.notifier.floatingip_changed(port_ids)
