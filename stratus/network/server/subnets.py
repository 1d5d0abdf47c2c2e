"""Subnets: ``/v2.0/subnets``. IPv4 with allocation pools, gateway, DNS nameservers, host routes and DHCP; IPv6
with ``ipv6_ra_mode``/``ipv6_address_mode``, whose SLAAC subnets give every port of the network an EUI-64
address. Checks and messages are those of Neutron's ``_validate_subnet`` and its IPAM."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from stratus.db import network as db
from stratus.db.engine import Connection
from stratus.network.server import attributes as a
from stratus.network.server import errors, ipam, listing, networks, quotas
from stratus.network.server.resource import (
    STANDARD_ATTRIBUTES,
    NetworkRequest,
    new_standard,
    standard_view,
    touch,
)

AUTO = "__auto__"  # gateway_ip not given: the first address of the subnet
IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")


def _nameservers(attr: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise a.Invalid(f"'{value}' is not a list")
    seen: list[str] = []
    for item in value:
        checked = a.ip_check(attr, item)
        if checked in seen:
            raise a.Invalid(f"Duplicate nameserver '{item}'")
        seen.append(checked)
    if len(seen) > 1000:
        raise a.Invalid("too many nameservers")
    return seen


def host_routes_check(attr: str, value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or len(value) > 1000:
        raise a.Invalid(f"'{value}' is not a list")
    routes: list[dict[str, str]] = []
    for route in value:
        if not isinstance(route, dict) or set(route) != {"destination", "nexthop"}:
            raise a.Invalid(f"Invalid data format for hostroute: '{route}'")
        checked = {"destination": a.route_cidr_check(route["destination"]),
                   "nexthop": a.ip_check(attr, route["nexthop"])}
        if checked in routes:
            raise a.Invalid(f"Duplicate hostroute '{route}'")
        routes.append(checked)
    return routes


def _pools(attr: str, value: Any) -> list[Any]:
    if not isinstance(value, list) or len(value) > 1000:
        raise a.Invalid(f"Invalid data format for IP pool: '{value}'")
    return value


_ATTRS: dict[str, a.Attr] = {
    "name": a.NAME, "description": a.DESCRIPTION,
    "network_id": a.Attr(a.uuid_check, put=False, required=True),
    "ip_version": a.Attr(a.one_of(4, 6), put=False, required=True),
    "cidr": a.Attr(a.cidr_check, put=False, required=True),
    "gateway_ip": a.Attr(a.nullable(a.ip_check), default=AUTO),
    "allocation_pools": a.Attr(_pools),
    "dns_nameservers": a.Attr(_nameservers, default=list),
    "host_routes": a.Attr(host_routes_check, default=list),
    "enable_dhcp": a.Attr(a.boolean, default=True),
    "ipv6_ra_mode": a.Attr(a.nullable(a.one_of(*IPV6_MODES)), put=False),
    "ipv6_address_mode": a.Attr(a.nullable(a.one_of(*IPV6_MODES)), put=False),
    "subnetpool_id": a.Attr(a.nullable(a.one_of(None)), put=False),
    "service_types": a.Attr(a.list_of(a.string(255), 64), default=list),
    "tenant_id": a.PROJECT, "project_id": a.PROJECT,
}
VIEW_ATTRIBUTES = {*_ATTRS, *STANDARD_ATTRIBUTES, "id", "segment_id"}
CONVERTERS: dict[str, listing.Converter] = {"enable_dhcp": a.boolean, "ip_version": a.integer(0, 2**31)}


def view(record: dict[str, Any]) -> dict[str, Any]:
    return {"id": record["id"], "name": record["name"], **standard_view(record),
            "network_id": record["network_id"], "ip_version": record["ip_version"], "subnetpool_id": None,
            "enable_dhcp": record["enable_dhcp"], "ipv6_ra_mode": record["ipv6_ra_mode"],
            "ipv6_address_mode": record["ipv6_address_mode"], "gateway_ip": record["gateway_ip"],
            "cidr": record["cidr"], "allocation_pools": record["allocation_pools"],
            "host_routes": record.get("host_routes", []), "dns_nameservers": record.get("dns_nameservers", []),
            "service_types": record.get("service_types", []), "segment_id": None}


def target(record: dict[str, Any], network: dict[str, Any]) -> dict[str, Any]:
    return {"project_id": record["project_id"], "tenant_id": record["project_id"],
            "network:project_id": network["project_id"], "network:shared": network["shared"],
            "network_id": network["id"]}


def is_auto_address(record: dict[str, Any]) -> bool:
    return record["ip_version"] == 6 and record.get("ipv6_address_mode") in ipam.AUTO_ADDRESS_MODES


def _version(name: str, value: str, ip_version: int) -> None:
    if ipaddress.ip_network(value, strict=False).version != ip_version:
        raise errors.invalid_input(f"{name} '{value}' does not match the ip_version '{ip_version}'")


def _validate(req: NetworkRequest, s: dict[str, Any], current: dict[str, Any] | None) -> None:
    """Neutron's _validate_subnet over the merged record ``s`` (``current``: the stored one, on update)."""
    ip_version, net = s["ip_version"], ipam.network(s["cidr"])
    if current is None:
        _version("cidr", s["cidr"], ip_version)
        if ip_version == 6 and net.network_address == ipaddress.IPv6Address("::"):
            raise errors.invalid_input("IPv6 subnet '::' is not supported")
        if net.prefixlen == 0:
            raise errors.invalid_input("0 is not allowed as CIDR prefix length")
    if s["enable_dhcp"] and not (current or {}).get("enable_dhcp"):
        if net.prefixlen > (30 if ip_version == 4 else 126):
            raise errors.invalid_input("Subnet has a prefix length that is incompatible with DHCP service enabled")
        if net.is_multicast:
            raise errors.invalid_input("Multicast IP subnet is not supported if enable_dhcp is True")
        if net.is_loopback:
            raise errors.invalid_input("Loopback IP subnet is not supported if enable_dhcp is True")
        if ip_version == 4 and int(net.network_address) == 0:
            raise errors.invalid_input("First IP '0.0.0.0' of network is not supported if enable_dhcp is True.")
    gateway = s["gateway_ip"]
    if gateway is not None:
        _version("gateway_ip", gateway, ip_version)
        gw = ipaddress.ip_address(gateway)
        if gw == net.network_address or (ip_version == 4 and net.num_addresses > 2 and gw == net.broadcast_address):
            raise errors.invalid_input("Gateway is not valid on subnet")
    opts = req.services.options
    label = s.get("id") or "new subnet"
    if len(s["dns_nameservers"]) > opts.max_dns_nameservers:
        raise errors.NeutronError(400, "DNSNameServersExhausted", f"Unable to complete operation for {label}. The "
                                  f"number of DNS nameservers exceeds the limit {opts.max_dns_nameservers}.")
    for dns in s["dns_nameservers"]:
        _version("dns_nameserver", dns, ip_version)
    if len(s["host_routes"]) > opts.max_subnet_host_routes:
        raise errors.NeutronError(400, "HostRoutesExhausted", f"Unable to complete operation for {label}. The "
                                  f"number of host routes exceeds the limit {opts.max_subnet_host_routes}.")
    for route in s["host_routes"]:
        _version("nexthop", route["nexthop"], ip_version)
        _version("destination", route["destination"], ip_version)
    ra, mode = s["ipv6_ra_mode"], s["ipv6_address_mode"]
    if ip_version == 4:
        if ra is not None:
            raise errors.invalid_input("ipv6_ra_mode is not valid when ip_version is 4")
        if mode is not None:
            raise errors.invalid_input("ipv6_address_mode is not valid when ip_version is 4")
        return
    if current is not None:
        if not s["enable_dhcp"] and (ra or mode):
            raise errors.invalid_input("Cannot disable enable_dhcp with ipv6 attributes set")
        return
    if (ra or mode) and not s["enable_dhcp"]:
        raise errors.invalid_input("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to "
                                   "False")
    if ra and mode and ra != mode:
        raise errors.invalid_input(f"ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{mode}' is not "
                                   "valid. If both attributes are set, they must be the same value")
    if is_auto_address(s) or ra in ipam.AUTO_ADDRESS_MODES:
        if net.prefixlen != 64:
            raise errors.invalid_input(f"Invalid CIDR {s['cidr']} for IPv6 address mode. OpenStack uses the "
                                       "EUI-64 address format, which requires the prefix to be /64")


async def visible(req: NetworkRequest, conn: Connection, subnet_id: str, for_update: bool = False
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The subnet and its network, or 404 when the caller may not see the subnet."""
    record = await db.get(conn, "subnet", subnet_id, for_update=for_update)
    network = None if record is None else await db.get(conn, "network", record["network_id"])
    if record is None or network is None or \
            not req.services.policy.visible(req.ctx, "subnet", target(record, network)):
        raise errors.not_found("Subnet", "subnet_id", subnet_id)
    return record, network


#: the attributes a list's filters may narrow in the database (``listing.pushdown``): Nova asks by ``id``
FILTER_COLUMNS = {"id": "id", "name": "name", "network_id": "network_id", "project_id": "project_id",
                  "cidr": "cidr", "gateway_ip": "gateway_ip"}


async def _visible_records(req: NetworkRequest, conn: Connection) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The subnets the caller may see that the query's column filters match, each with its network (for an admin,
    what a subnet's policy check reads of it). An admin's are read by the filters, joined to their networks (Nova
    asks by ``id`` for every boot: every network of the cloud is not read for that); a project's among the
    networks it may see."""
    equals = listing.pushdown(req.query, FILTER_COLUMNS)
    if req.ctx.is_admin:  # the subnets with what their policy checks read of their networks, in one statement
        return [(r, n) for r, n in await db.find_subnets_with_networks(conn, **equals)
                if req.services.policy.visible(req.ctx, "subnet", target(r, n))]
    nets = {n["id"]: n for n in await db.visible_networks(conn, req.ctx.project_id)}
    found = []
    wanted = set(equals.pop("network_id", nets))
    query = {**equals, "network_id": [n for n in nets if n in wanted]}
    for record in await db.find(conn, "subnet", **query) if nets else []:
        network = nets[record["network_id"]]
        if req.services.policy.visible(req.ctx, "subnet", target(record, network)):
            found.append((record, network))
    return found


async def list_subnets(req: NetworkRequest) -> dict[str, Any]:
    async with req.services.db.read() as conn:
        records = await _visible_records(req, conn)
    views = [req.services.policy.hide(req.ctx, "subnet", view(r), target(r, n)) for r, n in records]
    views = listing.filtered(views, req.query, VIEW_ATTRIBUTES, CONVERTERS)
    views, links = listing.page(req.full_url, "subnet", views, req.query, VIEW_ATTRIBUTES,
                                req.services.page_limit)
    body: dict[str, Any] = {"subnets": [listing.only_fields(v, req.query) for v in views]}
    if links:
        body["subnets_links"] = links
    return body


async def show_subnet(req: NetworkRequest) -> dict[str, Any]:
    async with req.services.db.read() as conn:
        record, network = await visible(req, conn, req.path["subnet_id"])
    shown = req.services.policy.hide(req.ctx, "subnet", view(record), target(record, network))
    return {"subnet": listing.only_fields(shown, req.query)}


async def create_subnet(req: NetworkRequest) -> dict[str, Any]:
    body = await req.body()
    values = a.parse_body(body, "subnet", _ATTRS, create=True)
    given = list(body["subnet"])
    project_id = req.project_of(values)
    async with req.services.db.write() as conn:
        network = await networks.visible(req, conn, values["network_id"], for_update=True)
        req.enforce("create_subnet", {"project_id": project_id, "tenant_id": project_id,
                                      "network:project_id": network["project_id"],
                                      "network:shared": network["shared"], "network_id": network["id"]},
                    [g for g in given if g not in ("tenant_id", "project_id")])
        await quotas.check(req, conn, "subnet", project_id)
        net = ipam.network(values["cidr"])
        if values["gateway_ip"] == AUTO:
            values["gateway_ip"] = ipam.default_gateway(net)
        record = {"id": str(uuid.uuid4()), **new_standard(project_id), **values}
        record.pop("subnetpool_id", None)
        _validate(req, record, None)
        for other in await db.find(conn, "subnet", network_id=network["id"]):
            if ipam.network(other["cidr"]).overlaps(net):
                raise errors.invalid_input(f"Requested subnet with cidr: {values['cidr']} for network: "
                                           f"{network['id']} overlaps with another subnet")
        pools = values["allocation_pools"]
        record["allocation_pools"] = ipam.default_pools(net, record["gateway_ip"]) if pools is None else \
            ipam.check_pools(net, pools, record["gateway_ip"])
        await db.insert_record(conn, "subnet", record)
        if is_auto_address(record):
            for port in await db.find(conn, "port", network_id=network["id"]):
                if not port["device_owner"].startswith("network:router"):
                    await db.allocate(conn, network["id"], port["id"], record["id"],
                                      ipam.eui64(record["cidr"], port["mac_address"]))
    await _network_changed(req, network["id"])
    return {"subnet": view(record)}


async def update_subnet(req: NetworkRequest) -> dict[str, Any]:
    body = await req.body()
    values = a.parse_body(body, "subnet", _ATTRS, create=False)
    async with req.services.db.write() as conn:
        record, network = await visible(req, conn, req.path["subnet_id"], for_update=True)
        req.enforce("update_subnet", target(record, network), list(values))
        current = dict(record)
        record.update(values)
        _validate(req, record, current)
        net = ipam.network(record["cidr"])
        if "allocation_pools" in values or "gateway_ip" in values:
            record["allocation_pools"] = ipam.check_pools(net, record["allocation_pools"], record["gateway_ip"])
        touch(record)
        await db.update_record(conn, "subnet", record)
    await _network_changed(req, network["id"])
    return {"subnet": req.services.policy.hide(req.ctx, "subnet", view(record), target(record, network))}


async def delete_subnet(req: NetworkRequest) -> None:
    async with req.services.db.write() as conn:
        record, network = await visible(req, conn, req.path["subnet_id"], for_update=True)
        req.enforce("delete_subnet", target(record, network))
        used = await db.allocations(conn, subnet_ids=[record["id"]])
        owners = {p["id"]: p["device_owner"] for p in await db.find(conn, "port", id=[u["port_id"] for u in used])} \
            if used else {}
        blocking = [u for u in used if not owners.get(u["port_id"], "").startswith("network:dhcp")]
        if blocking and not is_auto_address(record):
            raise errors.conflict("SubnetInUse", f"Unable to complete operation on subnet {record['id']}: One or "
                                                 "more ports have an IP allocation from this subnet.")
        await db.delete_record(conn, "subnet", record["id"])
    await _network_changed(req, network["id"])


async def _network_changed(req: NetworkRequest, network_id: str) -> None:
    if req.services.notifier is not None:
        await req.services.notifier.network_changed(network_id)
