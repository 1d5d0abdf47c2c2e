"""Routers: ``/v2.0/routers`` with ``external_gateway_info`` (a gateway port on an external network, SNAT on by
default) and ``add_router_interface``/``remove_router_interface`` by subnet (a port with the subnet's gateway IP)
or by port. The L3 agents hear of each change (``router_update``, ``router_delete``)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from stratus.db import network as db
from stratus.db.engine import Connection
from stratus.network.server import attributes as a
from stratus.network.server import errors, ipam, listing, networks, ports, quotas, subnets
from stratus.network.server.resource import (
    STANDARD_ATTRIBUTES,
    NetworkRequest,
    new_standard,
    standard_view,
    touch,
)

INTERFACE = "network:router_interface"
GATEWAY = "network:router_gateway"
RETRIES = 10


def _gateway_info(attr: str, value: Any) -> dict[str, Any] | None:
    if value is None or value == {}:
        return None
    if not isinstance(value, dict) or "network_id" not in value or \
            set(value) - {"network_id", "enable_snat", "external_fixed_ips"}:
        raise a.Invalid(f"Validation of dictionary's keys failed. Expected keys: {{'network_id'}} Provided keys: "
                        f"{set(value) if isinstance(value, dict) else value}")
    info = {"network_id": a.uuid_check(attr, value["network_id"])}
    if "enable_snat" in value:
        info["enable_snat"] = a.boolean(attr, value["enable_snat"])
    if "external_fixed_ips" in value:
        info["external_fixed_ips"] = ports.fixed_ips_check(attr, value["external_fixed_ips"])
    return info


def _routes(attr: str, value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    return subnets.host_routes_check(attr, value)


_ATTRS: dict[str, a.Attr] = {
    "name": a.NAME, "description": a.DESCRIPTION, "admin_state_up": a.Attr(a.boolean, default=True),
    "external_gateway_info": a.Attr(_gateway_info),
    "routes": a.Attr(_routes, post=False),
    "availability_zone_hints": a.Attr(a.list_of(a.string(255), 100), put=False, default=list),
    "tenant_id": a.PROJECT, "project_id": a.PROJECT,
}
VIEW_ATTRIBUTES = {*_ATTRS, *STANDARD_ATTRIBUTES, "id", "status", "availability_zones"}
_CONVERTERS: dict[str, listing.Converter] = {"admin_state_up": a.boolean}


def bad(resource: str, message: str) -> errors.NeutronError:
    return errors.NeutronError(400, "BadRequest", f"Bad {resource} request: {message}.")


def _target(record: dict[str, Any]) -> dict[str, Any]:
    return {"project_id": record["project_id"], "tenant_id": record["project_id"]}


async def _view(conn: Connection, record: dict[str, Any], zones: list[str]) -> dict[str, Any]:
    gateway = None
    if record["gw_port_id"]:
        gw_port = await db.get(conn, "port", record["gw_port_id"])
        if gw_port is not None:
            fixed = await db.allocations(conn, port_ids=[gw_port["id"]])
            gateway = {"network_id": gw_port["network_id"], "enable_snat": record["enable_snat"],
                       "external_fixed_ips": [{"subnet_id": x["subnet_id"], "ip_address": x["ip_address"]}
                                              for x in fixed]}
    return {"id": record["id"], "name": record["name"], **standard_view(record), "status": record["status"],
            "admin_state_up": record["admin_state_up"], "external_gateway_info": gateway,
            "routes": record.get("routes") or [],
            "availability_zone_hints": record.get("availability_zone_hints") or [],
            "availability_zones": record.get("availability_zone_hints") or zones}


async def visible(req: NetworkRequest, conn: Connection, router_id: str, for_update: bool = False
                  ) -> dict[str, Any]:
    record = await db.get(conn, "router", router_id, for_update=for_update)
    if record is None or not req.services.policy.check(req.ctx, "get_router", _target(record)):
        raise errors.NeutronError(404, "RouterNotFound", f"Router {router_id} could not be found")
    return record


def _zones(req: NetworkRequest) -> list[str]:
    return list(req.services.options.default_availability_zones)


async def list_routers(req: NetworkRequest) -> dict[str, Any]:
    async with req.services.db.read() as conn:
        records = await db.find(conn, "router") if req.ctx.is_admin else \
            await db.find(conn, "router", project_id=req.ctx.project_id)
        views = [await _view(conn, r, _zones(req)) for r in records
                 if req.services.policy.check(req.ctx, "get_router", _target(r))]
    views = listing.filtered(views, req.query, VIEW_ATTRIBUTES, _CONVERTERS)
    views, links = listing.page(req.full_url, "router", views, req.query, VIEW_ATTRIBUTES,
                                req.services.options.pagination_max_limit)
    body: dict[str, Any] = {"routers": [listing.only_fields(v, req.query) for v in views]}
    if links:
        body["routers_links"] = links
    return body


async def show_router(req: NetworkRequest) -> dict[str, Any]:
    async with req.services.db.read() as conn:
        record = await visible(req, conn, req.path["router_id"])
        return {"router": listing.only_fields(await _view(conn, record, _zones(req)), req.query)}


async def set_gateway(req: NetworkRequest, conn: Connection, record: dict[str, Any],
                       info: dict[str, Any] | None) -> None:
    """Replace the router's gateway port by one for ``info`` (or none)."""
    if record["gw_port_id"]:
        old = await db.get(conn, "port", record["gw_port_id"])
        keep_network = info is not None and old is not None and old["network_id"] == info["network_id"] \
            and "external_fixed_ips" not in info
        if keep_network:
            record["enable_snat"] = info.get("enable_snat", True) if info else True
            return
        if old is not None and await db.find(conn, "floatingip", router_id=record["id"]):
            raise errors.conflict("RouterExternalGatewayInUseByFloatingIp", f"Gateway cannot be updated for router "
                                  f"{record['id']}, since a gateway to external network {old['network_id']} is "
                                  "required by one or more floating IPs.")
        record["gw_port_id"] = None
        await db.update_record(conn, "router", record)
        if old is not None:
            await db.delete_record(conn, "port", old["id"])
    if info is None:
        record["enable_snat"] = True
        return
    network = await networks.visible(req, conn, info["network_id"])
    if not network["external"]:
        raise bad("router", f"Network {network['id']} is not an external network")
    record["enable_snat"] = info.get("enable_snat", True)
    gw = await ports.make_port(req.services.options, conn, network, "", record["id"], GATEWAY,
                               info.get("external_fixed_ips"))
    record["gw_port_id"] = gw["id"]


async def create_router(req: NetworkRequest) -> dict[str, Any]:
    body = await req.body()
    values = a.parse_body(body, "router", _ATTRS, create=True)
    given = body["router"]
    project_id = req.project_of(values)
    attrs = [k for k in given if k not in ("tenant_id", "project_id")]
    info = values["external_gateway_info"]
    if info is not None:
        attrs += [f"external_gateway_info:{k}" for k in info]
    req.enforce("create_router", {"project_id": project_id, "tenant_id": project_id}, attrs)
    for attempt in range(RETRIES):
        try:
            async with req.services.db.write() as conn:
                await quotas.check(req, conn, "router", project_id)
                record = {"id": str(uuid.uuid4()), **new_standard(project_id), "name": values["name"],
                          "description": values["description"], "status": "ACTIVE",
                          "admin_state_up": values["admin_state_up"], "gw_port_id": None, "enable_snat": True,
                          "routes": [], "availability_zone_hints": values["availability_zone_hints"]}
                await db.insert_record(conn, "router", record)
                await set_gateway(req, conn, record, info)
                await db.update_record(conn, "router", record)
                shown = await _view(conn, record, _zones(req))
            break
        except IntegrityError:
            if attempt == RETRIES - 1:
                raise
    await _changed(req, record["id"])
    return {"router": shown}


async def update_router(req: NetworkRequest) -> dict[str, Any]:
    body = await req.body()
    values = a.parse_body(body, "router", _ATTRS, create=False)
    attrs = list(values)
    if values.get("external_gateway_info"):
        attrs += [f"external_gateway_info:{k}" for k in values["external_gateway_info"]]
    for attempt in range(RETRIES):
        try:
            async with req.services.db.write() as conn:
                record = await visible(req, conn, req.path["router_id"], for_update=True)
                req.enforce("update_router", _target(record), attrs)
                if "routes" in values:
                    await _check_routes(conn, record, values["routes"])
                for key in ("name", "description", "admin_state_up", "routes"):
                    if key in values:
                        record[key] = values[key]
                if "external_gateway_info" in values:
                    await set_gateway(req, conn, record, values["external_gateway_info"])
                touch(record)
                await db.update_record(conn, "router", record)
                shown = await _view(conn, record, _zones(req))
            break
        except IntegrityError:
            if attempt == RETRIES - 1:
                raise
    await _changed(req, record["id"])
    return {"router": shown}


async def _check_routes(conn: Connection, record: dict[str, Any], routes: list[dict[str, str]]) -> None:
    """extraroute's rule: each nexthop on a subnet the router has an interface on."""
    cidrs = [ipam.network(s["cidr"]) for s in await _interface_subnets(conn, record["id"])]
    for route in routes:
        if not any(ipam.valid_for_subnet(c, route["nexthop"]) for c in cidrs):
            raise errors.NeutronError(400, "InvalidRoutes", f"Invalid format for routes: {routes}, the nexthop is "
                                      "not connected with router")


async def _interface_subnets(conn: Connection, router_id: str) -> list[dict[str, Any]]:
    interfaces = await db.find(conn, "port", device_id=router_id, device_owner=INTERFACE)
    held = await db.allocations(conn, port_ids=[p["id"] for p in interfaces]) if interfaces else []
    return await db.find(conn, "subnet", id=[h["subnet_id"] for h in held]) if held else []


async def delete_router(req: NetworkRequest) -> None:
    async with req.services.db.write() as conn:
        record = await visible(req, conn, req.path["router_id"], for_update=True)
        req.enforce("delete_router", _target(record))
        if await db.find(conn, "port", device_id=record["id"], device_owner=INTERFACE):
            raise errors.conflict("RouterInUse", f"Router {record['id']} still has ports")
        await set_gateway(req, conn, record, None)
        await db.delete_record(conn, "router", record["id"])
    if req.services.notifier is not None:
        await req.services.notifier.router_deleted(record["id"])


def _interface_body(body: Any) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        raise errors.bad_request("Malformed request body")
    unknown = set(body) - {"subnet_id", "port_id"}
    if unknown:
        raise errors.bad_request(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
    subnet_id, port_id = body.get("subnet_id"), body.get("port_id")
    for name, value in (("subnet_id", subnet_id), ("port_id", port_id)):
        if value is not None:
            try:
                a.uuid_check(name, value)
            except a.Invalid as exc:
                raise errors.invalid_attribute(name, exc.reason) from None
    if subnet_id is None and port_id is None:
        raise bad("router", "Either subnet_id or port_id must be specified")
    if subnet_id is not None and port_id is not None:
        raise bad("router", "Cannot specify both subnet-id and port-id")
    return subnet_id, port_id


async def add_interface(req: NetworkRequest) -> dict[str, Any]:
    subnet_id, port_id = _interface_body(await req.body())
    for attempt in range(RETRIES):
        try:
            async with req.services.db.write() as conn:
                record = await visible(req, conn, req.path["router_id"], for_update=True)
                req.enforce("add_router_interface", _target(record))
                attached = await _interface_subnets(conn, record["id"])
                if port_id is not None:
                    port, network = await ports.visible(req, conn, port_id, for_update=True)
                    if port["device_id"] or port["device_owner"]:
                        raise errors.conflict("PortInUse", f"Unable to complete operation on port {port['id']} for "
                                              f"network {network['id']}. Port already has an attached device "
                                              f"{port['device_id']}.")
                    held = await db.allocations(conn, port_ids=[port["id"]])
                    if not held:
                        raise bad("router", "Router port must have at least one fixed IP")
                    new_subnets = await db.find(conn, "subnet", id=[h["subnet_id"] for h in held])
                    _no_overlap(attached, new_subnets)
                    port.update(device_id=record["id"], device_owner=INTERFACE, status="ACTIVE")
                    await db.update_record(conn, "port", port)
                else:
                    assert subnet_id is not None
                    subnet, network = await subnets.visible(req, conn, subnet_id)
                    if subnet["gateway_ip"] is None:
                        raise bad("router", "Subnet for router interface must have a gateway IP")
                    if any(s["id"] == subnet["id"] for s in attached):
                        raise bad("router", f"Router already has a port on subnet {subnet['id']}")
                    _no_overlap(attached, [subnet])
                    port = await ports.make_port(req.services.options, conn, network, record["project_id"],
                                                 record["id"], INTERFACE,
                                                 [{"subnet_id": subnet["id"], "ip_address": subnet["gateway_ip"]}])
                    held = await db.allocations(conn, port_ids=[port["id"]])
            break
        except IntegrityError:
            if attempt == RETRIES - 1:
                raise
    await _changed(req, record["id"])
    return _interface_info(record, port, held)


def _no_overlap(attached: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    for subnet in new:
        for other in attached:
            if ipam.network(other["cidr"]).overlaps(ipam.network(subnet["cidr"])):
                raise bad("router", f"Cidr {subnet['cidr']} of subnet {subnet['id']} overlaps with cidr "
                                    f"{other['cidr']} of subnet {other['id']}")


def _interface_info(record: dict[str, Any], port: dict[str, Any], held: list[dict[str, Any]]) -> dict[str, Any]:
    ids = [h["subnet_id"] for h in held]
    return {"id": record["id"], "tenant_id": record["project_id"], "project_id": record["project_id"],
            "port_id": port["id"], "network_id": port["network_id"], "subnet_id": ids[0] if ids else None,
            "subnet_ids": ids}


async def remove_interface(req: NetworkRequest) -> dict[str, Any]:
    subnet_id, port_id = _interface_body(await req.body())
    async with req.services.db.write() as conn:
        record = await visible(req, conn, req.path["router_id"], for_update=True)
        req.enforce("remove_router_interface", _target(record))
        interfaces = await db.find(conn, "port", device_id=record["id"], device_owner=INTERFACE)
        held = await db.allocations(conn, port_ids=[p["id"] for p in interfaces]) if interfaces else []
        if port_id is not None:
            port = next((p for p in interfaces if p["id"] == port_id), None)
            if port is None:
                raise errors.NeutronError(404, "RouterInterfaceNotFound", f"Router {record['id']} does not have an "
                                          f"interface with id {port_id}")
        else:
            found = next((h for h in held if h["subnet_id"] == subnet_id), None)
            if found is None:
                raise errors.NeutronError(404, "RouterInterfaceNotFoundForSubnet", f"Router {record['id']} has no "
                                          f"interface on subnet {subnet_id}")
            port = next(p for p in interfaces if p["id"] == found["port_id"])
        mine = [h for h in held if h["port_id"] == port["id"]]
        await _check_not_used_by_floating_ips(conn, record, [h["subnet_id"] for h in mine])
        await db.delete_record(conn, "port", port["id"])
    await _changed(req, record["id"])
    return _interface_info(record, port, mine)


async def _check_not_used_by_floating_ips(conn: Connection, record: dict[str, Any], subnet_ids: list[str]) -> None:
    for fip in await db.find(conn, "floatingip", router_id=record["id"]):
        held = await db.allocations(conn, port_ids=[fip["fixed_port_id"]]) if fip["fixed_port_id"] else []
        used = {h["subnet_id"] for h in held if h["ip_address"] == fip["fixed_ip_address"]}
        for subnet_id in subnet_ids:
            if subnet_id in used:
                raise errors.conflict("RouterInterfaceInUseByFloatingIP", f"Router interface for subnet {subnet_id} "
                                      f"on router {record['id']} cannot be deleted, as it is required by one or "
                                      "more floating IPs.")


async def _changed(req: NetworkRequest, router_id: str) -> None:
    if req.services.notifier is not None:
        await req.services.notifier.router_changed(router_id)
