"""Ports: ``/v2.0/ports``, with fixed IPs from the network's subnets (``ipam``), a MAC of ``base_mac``, the
``binding:*`` attributes (``binding``), security groups, allowed address pairs and port security.

A create or an update that allocates runs in one write transaction; when a concurrent one took the same address
or MAC first (the database's unique keys say so), the whole transaction runs again and sees it taken: the next
free address is chosen, or an address or MAC that was asked for is a 409.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from stratus.db import network as db
from stratus.db.engine import Connection
from stratus.network.server import attributes as a
from stratus.network.server import binding, errors, ipam, listing, networks, quotas, security_groups, subnets
from stratus.network.server.resource import (
    STANDARD_ATTRIBUTES,
    NetworkRequest,
    new_standard,
    standard_view,
    touch,
)

RETRIES = 10
#: a port's rows as the transaction that wrote them has them: the port, its network, its allocations, the
#: network's subnets and its groups' rules as its agent is told them (``details.Known``: details imports this
#: module)
Known = tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]
VNIC_TYPES = ("normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder", "smart-nic",
              "remote-managed")


def fixed_ips_check(attr: str, value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or len(value) > 1000:
        raise a.Invalid(f"Invalid data format for fixed IP: '{value}'")
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, dict) or not item or set(item) - {"subnet_id", "ip_address"}:
            raise a.Invalid(f"Invalid data format for fixed IP: '{item}'")
        checked = {}
        if "subnet_id" in item:
            checked["subnet_id"] = a.uuid_check(attr, item["subnet_id"])
        if "ip_address" in item:
            checked["ip_address"] = a.ip_check(attr, item["ip_address"])
            if checked["ip_address"] in seen:
                raise a.Invalid(f"Duplicate IP address '{item['ip_address']}'")
            seen.add(checked["ip_address"])
        out.append(checked)
    return out


def _address_pairs(attr: str, value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or len(value) > 1000:
        raise a.Invalid(f"Allowed address pairs must be a list.: {value}")
    pairs: list[dict[str, str]] = []
    for pair in value:
        if not isinstance(pair, dict) or "ip_address" not in pair or set(pair) - {"ip_address", "mac_address"}:
            raise a.Invalid(f"Invalid data format for allowed address pair: '{pair}'")
        ip = pair["ip_address"]
        try:
            shown = str(ipaddress.ip_network(ip, strict=False)) if "/" in str(ip) else str(ipaddress.ip_address(ip))
        except (ValueError, TypeError):
            raise a.Invalid(f"'{ip}' is not a valid IP address") from None
        checked = {"ip_address": shown}
        if pair.get("mac_address") is not None:
            checked["mac_address"] = a.mac_check(attr, pair["mac_address"])
        pairs.append(checked)
    return pairs


_ATTRS: dict[str, a.Attr] = {
    "name": a.NAME, "description": a.DESCRIPTION,
    "network_id": a.Attr(a.uuid_check, put=False, required=True),
    "admin_state_up": a.Attr(a.boolean, default=True),
    "mac_address": a.Attr(a.mac_check),
    "fixed_ips": a.Attr(fixed_ips_check),
    "device_id": a.Attr(a.string(a.DEVICE_ID_MAX), default=""),
    "device_owner": a.Attr(a.string(a.DEVICE_ID_MAX), default=""),
    "binding:host_id": a.Attr(a.string(255), default=""),
    "binding:profile": a.Attr(a.nullable(a.dict_check()), default=dict),
    "binding:vnic_type": a.Attr(a.one_of(*VNIC_TYPES), default="normal"),
    "security_groups": a.Attr(a.nullable(a.list_of(a.uuid_check, 100))),
    "allowed_address_pairs": a.Attr(a.nullable(_address_pairs), default=list),
    "port_security_enabled": a.Attr(a.boolean),
    "tenant_id": a.PROJECT, "project_id": a.PROJECT,
}
VIEW_ATTRIBUTES = {*_ATTRS, *STANDARD_ATTRIBUTES, "id", "status", "binding:vif_type", "binding:vif_details"}
CONVERTERS: dict[str, listing.Converter] = {"admin_state_up": a.boolean, "port_security_enabled": a.boolean}
_COLUMNS = {"binding:host_id": "binding_host_id", "binding:profile": "binding_profile",
            "binding:vnic_type": "binding_vnic_type"}


def view(record: dict[str, Any], allocations: list[dict[str, Any]]) -> dict[str, Any]:
    fixed = sorted(allocations, key=lambda x: (ipaddress.ip_address(x["ip_address"]).version,
                                               int(ipaddress.ip_address(x["ip_address"]))))
    return {"id": record["id"], "name": record["name"], "network_id": record["network_id"], **standard_view(record),
            "mac_address": record["mac_address"], "admin_state_up": record["admin_state_up"],
            "status": record["status"], "device_id": record["device_id"], "device_owner": record["device_owner"],
            "fixed_ips": [{"subnet_id": x["subnet_id"], "ip_address": x["ip_address"]} for x in fixed],
            "allowed_address_pairs": record.get("allowed_address_pairs") or [],
            "security_groups": list(record.get("security_groups") or []),
            "port_security_enabled": record.get("port_security_enabled", True),
            "binding:host_id": record["binding_host_id"], "binding:profile": record["binding_profile"] or {},
            "binding:vnic_type": record["binding_vnic_type"], "binding:vif_type": record["binding_vif_type"],
            "binding:vif_details": record["binding_vif_details"] or {}}


def target(record: dict[str, Any], network: dict[str, Any]) -> dict[str, Any]:
    return {"project_id": record["project_id"], "tenant_id": record["project_id"],
            "network:project_id": network["project_id"], "network:shared": network["shared"],
            "network_id": network["id"], "network_device": str(record.get("device_owner", "")).startswith("network:")}


async def visible(req: NetworkRequest, conn: Connection, port_id: str, for_update: bool = False
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    record = await db.get(conn, "port", port_id, for_update=for_update)
    network = None if record is None else await db.get(conn, "network", record["network_id"])
    if record is None or network is None or \
            not req.services.policy.visible(req.ctx, "port", target(record, network)):
        raise errors.not_found("Port", "port_id", port_id)
    return record, network


async def views(req: NetworkRequest, conn: Connection, pairs: list[tuple[dict[str, Any], dict[str, Any]]]
                ) -> list[dict[str, Any]]:
    found = await db.allocations(conn, port_ids=[p["id"] for p, _ in pairs]) if pairs else []
    by_port: dict[str, list[dict[str, Any]]] = {}
    for allocation in found:
        by_port.setdefault(allocation["port_id"], []).append(allocation)
    hidden = _Hidden(req)
    return [hidden.view(view(p, by_port.get(p["id"], [])), target(p, n)) for p, n in pairs]


class _Hidden:
    """The ``get_port`` rules of one request, decided once per distinct target: the ports of a list share a few
    (one per project and network), so hundreds of rows cost a few policy checks, not a few per row."""

    def __init__(self, req: NetworkRequest) -> None:
        self.req = req
        self._visible: dict[tuple[Any, ...], bool] = {}
        self._hidden: dict[tuple[Any, ...], list[str]] = {}

    def visible(self, tgt: dict[str, Any]) -> bool:
        key = tuple(tgt.values())
        found = self._visible.get(key)
        if found is None:
            found = self._visible[key] = self.req.services.policy.visible(self.req.ctx, "port", tgt)
        return found

    def view(self, shown: dict[str, Any], tgt: dict[str, Any]) -> dict[str, Any]:
        key = tuple(tgt.values())
        gone = self._hidden.get(key)
        if gone is None:
            gone = self._hidden[key] = self.req.services.policy.hidden(self.req.ctx, "port", shown, tgt)
        for attr in gone:
            shown.pop(attr, None)
        return shown


#: the attributes a list's filters may narrow in the database: their views show the column unconverted
FILTER_COLUMNS = {"id": "id", "name": "name", "network_id": "network_id", "project_id": "project_id",
                  "mac_address": "mac_address", "status": "status", "device_id": "device_id",
                  "device_owner": "device_owner", "binding:host_id": "binding_host_id"}


async def list_ports(req: NetworkRequest) -> dict[str, Any]:
    """The ports the caller may see that match the query. The filters on plain columns (``device_id``,
    ``network_id``, ``device_owner``, ...: Nova's lists) are asked of the database, so a list of one server's
    ports reads that server's rows, not every port; the rest is filtered on the views, as before."""
    equals = listing.pushdown(req.query, FILTER_COLUMNS)
    async with req.services.db.read() as conn:
        if req.ctx.is_admin:
            records = await db.find(conn, "port", **equals)
            net_ids = sorted({r["network_id"] for r in records})
            nets = {n["id"]: n for n in await db.find(conn, "network", id=net_ids)} if net_ids else {}
        else:
            nets = {n["id"]: n for n in await db.visible_networks(conn, req.ctx.project_id)}
            own_nets = [i for i, n in nets.items() if n["project_id"] == req.ctx.project_id]
            mine = equals.get("project_id")
            records = [] if mine is not None and req.ctx.project_id not in mine else \
                await db.find(conn, "port", **{**equals, "project_id": req.ctx.project_id})
            if own_nets:
                known = {r["id"] for r in records}
                on_mine = await db.find(conn, "port", **{**equals, "network_id": sorted(
                    set(own_nets) & set(equals["network_id"])) if "network_id" in equals else own_nets})
                records += [r for r in on_mine if r["id"] not in known]
        hidden = _Hidden(req)
        pairs = [(r, nets[r["network_id"]]) for r in records if r["network_id"] in nets]
        pairs = [(r, n) for r, n in pairs if hidden.visible(target(r, n))]
        found = await db.allocations(conn, port_ids=[p["id"] for p, _ in pairs]) if pairs else []
    by_port: dict[str, list[dict[str, Any]]] = {}
    for allocation in found:
        by_port.setdefault(allocation["port_id"], []).append(allocation)
    shown = [hidden.view(view(p, by_port.get(p["id"], [])), target(p, n)) for p, n in pairs]
    shown = listing.filtered(shown, req.query, VIEW_ATTRIBUTES, CONVERTERS)
    shown, links = listing.page(req.full_url, "port", shown, req.query, VIEW_ATTRIBUTES,
                                req.services.page_limit)
    body: dict[str, Any] = {"ports": [listing.only_fields(v, req.query) for v in shown]}
    if links:
        body["ports_links"] = links
    return body


async def show_port(req: NetworkRequest) -> dict[str, Any]:
    async with req.services.db.read() as conn:
        record, network = await visible(req, conn, req.path["port_id"])
        shown = (await views(req, conn, [(record, network)]))[0]
    return {"port": listing.only_fields(shown, req.query)}


def _policy_attributes(given: dict[str, Any]) -> list[str]:
    """The attributes with rules of their own that a body sets (``fixed_ips`` by what its entries ask)."""
    names = [k for k in given if k not in ("tenant_id", "project_id", "fixed_ips")]
    for entry in given.get("fixed_ips") or []:
        names += [f"fixed_ips:{k}" for k in entry]
    return list(dict.fromkeys(names))


async def _allocate(conn: Connection, network: dict[str, Any], port: dict[str, Any],
                    requests: list[dict[str, str]] | None, max_fixed_ips: int,
                    keep: list[dict[str, Any]] | None = None,
                    all_subnets: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Addresses for ``port`` as Neutron's IPAM gives them: what ``requests`` asks, else one IPv4 and one
    stateful IPv6 address from the first subnet with room, and always a SLAAC address on every auto-address
    subnet. ``keep``: allocations the port already holds and keeps (an update); ``all_subnets``: the network's
    subnets, when the caller read them already. Returns the port's allocations now (those kept and those made), as
    the rows hold them."""
    if all_subnets is None:
        all_subnets = await db.find(conn, "subnet", network_id=network["id"])
    keep = keep or []
    kept = {(k["subnet_id"], k["ip_address"]) for k in keep}
    auto = [s for s in all_subnets if subnets.is_auto_address(s)]
    wanted: list[tuple[list[dict[str, Any]], str | None]] = []  # (any of these subnets, the address or None)
    explicit_auto: set[str] = set()
    if requests is None:
        for group in ([s for s in all_subnets if s["ip_version"] == 4],
                      [s for s in all_subnets if s["ip_version"] == 6 and not subnets.is_auto_address(s)]):
            if group:
                wanted.append((group, None))
    else:
        if len(requests) > max_fixed_ips:
            raise errors.invalid_input("Exceeded maximum amount of fixed ips per port.")
        for fixed in requests:
            subnet = _subnet_for(network, all_subnets, fixed)
            if (subnet["id"], fixed.get("ip_address")) in kept:
                continue
            if subnets.is_auto_address(subnet):
                explicit_auto.add(subnet["id"])
                eui = ipam.eui64(subnet["cidr"], port["mac_address"])
                if "ip_address" in fixed and fixed["ip_address"] != eui:
                    raise errors.NeutronError(400, "AllocationOnAutoAddressSubnet", f"IPv6 address "
                                              f"{fixed['ip_address']} cannot be directly assigned to a port on "
                                              f"subnet {subnet['id']} as the subnet is configured for automatic "
                                              "addresses")
                continue
            wanted.append(([subnet], fixed.get("ip_address")))
    if not port["device_owner"].startswith("network:router"):
        for subnet in auto:
            if requests is None or subnet["id"] in explicit_auto or requests is not None:
                address = ipam.eui64(subnet["cidr"], port["mac_address"])
                if (subnet["id"], address) not in kept:
                    wanted.append(([subnet], address))
    taken_on_network = await db.addresses_on(conn, network["id"])
    made: list[dict[str, Any]] = []
    for group, address in wanted:
        if address is not None:
            if address in taken_on_network:
                raise errors.conflict("IpAddressAlreadyAllocated", f"IP address {address} already allocated in "
                                      f"subnet {group[0]['id']}")
            made.append(await db.allocate(conn, network["id"], port["id"], group[0]["id"], address))
            taken_on_network.add(address)
            continue
        for subnet in group:
            free = ipam.candidates(subnet["allocation_pools"], taken_on_network)
            if free:
                made.append(await db.allocate(conn, network["id"], port["id"], subnet["id"], free[0]))
                taken_on_network.add(free[0])
                break
        else:
            raise errors.conflict("IpAddressGenerationFailure", f"No more IP addresses available on network "
                                  f"{network['id']}.")
    return [*keep, *made]


def _subnet_for(network: dict[str, Any], all_subnets: list[dict[str, Any]], fixed: dict[str, str]
                ) -> dict[str, Any]:
    if not all_subnets:
        raise errors.invalid_input("IP allocation requires subnets for network")
    if "subnet_id" in fixed:
        subnet = next((s for s in all_subnets if s["id"] == fixed["subnet_id"]), None)
        if subnet is None:
            raise errors.invalid_input(f"Failed to create port on network {network['id']}, because fixed_ips "
                                       f"included invalid subnet {fixed['subnet_id']}")
        if "ip_address" in fixed and not ipam.valid_for_subnet(ipam.network(subnet["cidr"]), fixed["ip_address"]):
            raise errors.NeutronError(400, "InvalidIpForSubnet", f"IP address {fixed['ip_address']} is not a valid "
                                      "IP for the specified subnet.")
        return subnet
    for subnet in all_subnets:
        if ipam.valid_for_subnet(ipam.network(subnet["cidr"]), fixed["ip_address"]):
            return subnet
    raise errors.NeutronError(400, "InvalidIpForNetwork", f"IP address {fixed['ip_address']} is not a valid IP for "
                              "any of the subnets on the specified network.")


def _check_port_security(record: dict[str, Any]) -> None:
    if not record.get("port_security_enabled", True) and (record.get("security_groups")
                                                          or record.get("allowed_address_pairs")):
        kind = "security groups" if record.get("security_groups") else "allowed address pairs"
        type_ = "PortSecurityAndIPRequiredForSecurityGroups" if record.get("security_groups") else \
            "AddressPairAndPortSecurityRequired"
        message = ("Port security must be enabled and port must have an IP address in order to use security "
                   "groups.") if kind == "security groups" else \
            "Port Security must be enabled in order to have allowed address pairs on a port."
        raise errors.NeutronError(409, type_, message)


async def create_port(req: NetworkRequest) -> dict[str, Any]:
    body = await req.body()
    values = a.parse_body(body, "port", _ATTRS, create=True)
    given = dict(body["port"])
    project_id = req.project_of(values)
    opts = req.services.options
    for attempt in range(RETRIES):
        try:
            async with req.services.db.write() as conn:
                network = await networks.visible(req, conn, values["network_id"], for_update=True)
                record: dict[str, Any] = {
                    "id": str(uuid.uuid4()), **new_standard(project_id), "name": values["name"],
                    "network_id": network["id"], "admin_state_up": values["admin_state_up"], "status": "DOWN",
                    "device_id": values["device_id"], "device_owner": values["device_owner"],
                    "binding_host_id": values["binding:host_id"], "binding_profile": values["binding:profile"] or {},
                    "binding_vnic_type": values["binding:vnic_type"], "description": values["description"],
                    "allowed_address_pairs": values["allowed_address_pairs"] or [],
                    "port_security_enabled": network.get("port_security_enabled", True)
                    if values["port_security_enabled"] is None else values["port_security_enabled"]}
                req.enforce("create_port", target(record, network), _policy_attributes(given))
                facts = await db.port_create_facts(conn, project_id, record["binding_host_id"],
                                                   binding.L2_AGENT_TYPE, binding.DHCP_AGENT_TYPE)
                quotas.enforce(req, "port", facts.limit, facts.used)
                record["mac_address"] = values["mac_address"] or ipam.random_mac(opts.base_mac)
                # a MAC asked for is looked up (a 409 if taken); one made here is left to the unique key of
                # (network, MAC): the rare clash is an IntegrityError, and the create runs again with another
                if values["mac_address"] and await db.find(conn, "port", network_id=network["id"],
                                                           mac_address=record["mac_address"]):
                    raise errors.conflict("MacAddressInUse", f"Unable to complete operation for network "
                                          f"{network['id']}. The mac address {record['mac_address']} is in use.")
                record["security_groups"] = await security_groups.for_port(
                    req, conn, project_id, values["security_groups"], record["port_security_enabled"],
                    record["device_owner"], facts.default_group)
                _check_port_security(record)
                binding.apply(record, binding.heartbeat_alive(facts.heartbeat, opts.agent_down_time))
                await db.insert_record(conn, "port", record)
                await db.add_port_groups(conn, record["id"], record["security_groups"])
                network_subnets = await db.find(conn, "subnet", network_id=network["id"])
                held = await _allocate(conn, network, record, values["fixed_ips"], opts.max_fixed_ips_per_port,
                                       all_subnets=network_subnets)
                # what its agent is told (port_update), read in this transaction (its own address among the
                # members): only a port bound to an agent is told of, so only its rules are read
                rules = await security_groups.group_rules(conn, record["security_groups"]) \
                    if record["binding_vif_type"] == binding.VIF_TYPE_BRIDGE else []
            break
        except IntegrityError:
            if attempt == RETRIES - 1:
                if values["mac_address"] is None:  # the clashes were those of the MACs made here
                    raise errors.conflict("MacAddressGenerationFailure", f"Unable to generate unique mac on "
                                                                         f"network {values['network_id']}.") from None
                raise
    shown = _Hidden(req).view(view(record, held), target(record, network))
    # a new port: its rows as just written
    await _changed(req, record["id"], known=(record, network, held, network_subnets, rules),
                   dhcp_agents=facts.dhcp_agents)
    return {"port": shown}


async def make_port(opts: Any, conn: Connection, network: dict[str, Any], project_id: str, device_id: str,
                    device_owner: str, fixed_ips: list[dict[str, str]] | None, host: str = "") -> dict[str, Any]:
    """A port the service itself owns (a router's interface or gateway, a floating IP's, a DHCP server's; ``opts``
    the ``[network_server]`` options): no policy, no groups; an IntegrityError when a concurrent transaction took
    its address or MAC (the caller runs again)."""
    record: dict[str, Any] = {
        "id": str(uuid.uuid4()), **new_standard(project_id), "name": "", "network_id": network["id"],
        "admin_state_up": True, "status": "ACTIVE" if device_owner.startswith("network:") else "DOWN",
        "device_id": device_id, "device_owner": device_owner, "binding_host_id": host, "binding_profile": {},
        "binding_vnic_type": "normal", "binding_vif_type": binding.VIF_TYPE_UNBOUND, "binding_vif_details": {},
        "description": "", "allowed_address_pairs": [], "port_security_enabled": False, "security_groups": [],
        "mac_address": ipam.random_mac(opts.base_mac)}
    await db.insert_record(conn, "port", record)
    await _allocate(conn, network, record, fixed_ips, opts.max_fixed_ips_per_port)
    return record


async def update_port(req: NetworkRequest) -> dict[str, Any]:
    body = await req.body()
    values = a.parse_body(body, "port", _ATTRS, create=False)
    given = dict(body["port"])
    opts = req.services.options
    for attempt in range(RETRIES):
        try:
            async with req.services.db.write() as conn:
                record, network = await visible(req, conn, req.path["port_id"], for_update=True)
                old_host, old_mac = record["binding_host_id"], record["mac_address"]
                record.update({_COLUMNS.get(k, k): v for k, v in values.items() if k != "fixed_ips"})
                if "binding:profile" in values and record["binding_profile"] is None:
                    record["binding_profile"] = {}
                req.enforce("update_port", target(record, network), _policy_attributes(given))
                if "mac_address" in values and values["mac_address"] != old_mac:
                    if record["binding_vif_type"] not in (binding.VIF_TYPE_UNBOUND, binding.VIF_TYPE_BINDING_FAILED):
                        raise errors.conflict("PortBound", f"Unable to complete operation on port {record['id']}, "
                                              f"port is already bound, port type: {record['binding_vif_type']}, "
                                              f"old_mac {old_mac}, new_mac {values['mac_address']}.")
                    others = await db.find(conn, "port", network_id=network["id"], mac_address=values["mac_address"])
                    if others:
                        raise errors.conflict("MacAddressInUse", f"Unable to complete operation for network "
                                              f"{network['id']}. The mac address {values['mac_address']} is in use.")
                    await _readdress_slaac(conn, network, record)
                if "security_groups" in values:
                    record["security_groups"] = await security_groups.for_port(
                        req, conn, record["project_id"], values["security_groups"] or [],
                        record.get("port_security_enabled", True), record["device_owner"])
                    await db.set_port_groups(conn, record["id"], record["security_groups"])
                _check_port_security(record)
                if "fixed_ips" in values:
                    await _update_fixed_ips(conn, network, record, values["fixed_ips"] or [],
                                            opts.max_fixed_ips_per_port)
                if "binding:host_id" in values:
                    await binding.bind(conn, record, opts.agent_down_time)
                    if values["binding:host_id"] != old_host:
                        record["status"] = "DOWN"
                touch(record)
                await db.update_record(conn, "port", record)
                held = await db.allocations(conn, port_ids=[record["id"]])
            break
        except IntegrityError:
            if attempt == RETRIES - 1:
                raise
    shown = _Hidden(req).view(view(record, held), target(record, network))
    await _changed(req, record["id"], "fixed_ips" in values)  # read again: a concurrent update may be newer
    return {"port": shown}


async def _readdress_slaac(conn: Connection, network: dict[str, Any], record: dict[str, Any]) -> None:
    """A new MAC: the port's SLAAC addresses follow it (EUI-64)."""
    auto = {s["id"]: s for s in await db.find(conn, "subnet", network_id=network["id"]) if subnets.is_auto_address(s)}
    held = [h for h in await db.allocations(conn, port_ids=[record["id"]]) if h["subnet_id"] in auto]
    await db.release(conn, record["id"], [(h["subnet_id"], h["ip_address"]) for h in held])
    for allocation in held:
        address = ipam.eui64(auto[allocation["subnet_id"]]["cidr"], record["mac_address"])
        await db.allocate(conn, network["id"], record["id"], allocation["subnet_id"], address)


async def _update_fixed_ips(conn: Connection, network: dict[str, Any], record: dict[str, Any],
                            requests: list[dict[str, str]], max_fixed_ips: int) -> None:
    """The port's addresses become what ``requests`` lists: kept where listed, released where not, allocated
    where new (its SLAAC addresses stay)."""
    held = await db.allocations(conn, port_ids=[record["id"]])
    all_subnets = {s["id"]: s for s in await db.find(conn, "subnet", network_id=network["id"])}
    keep = []
    for allocation in held:
        subnet = all_subnets.get(allocation["subnet_id"])
        listed = any(r.get("ip_address") == allocation["ip_address"] and
                     r.get("subnet_id", allocation["subnet_id"]) == allocation["subnet_id"] for r in requests)
        if listed or (subnet is not None and subnets.is_auto_address(subnet)):
            keep.append(allocation)
    drop = [(h["subnet_id"], h["ip_address"]) for h in held if h not in keep]
    await db.release(conn, record["id"], drop)
    remaining = [r for r in requests if not any(r.get("ip_address") == k["ip_address"] for k in keep)]
    if len(requests) > max_fixed_ips:
        raise errors.invalid_input("Exceeded maximum amount of fixed ips per port.")
    await _allocate(conn, network, record, remaining, max_fixed_ips, keep)


async def delete_port(req: NetworkRequest) -> None:
    async with req.services.db.write() as conn:
        record, network = await visible(req, conn, req.path["port_id"], for_update=True)
        req.enforce("delete_port", target(record, network))
        if record["device_owner"] in ("network:router_interface", "network:router_gateway",
                                      "network:floatingip", "network:router_interface_distributed"):
            raise errors.NeutronError(409, "ServicePortInUse", f"Port {record['id']} cannot be deleted directly via "
                                      f"the port API: has device owner {record['device_owner']}.")
        routers = await db.disassociate_floating_ips(conn, record["id"])
        await db.delete_record(conn, "port", record["id"])
    if req.services.notifier is not None:
        await req.services.notifier.port_deleted(record)
        for router_id in routers:
            await req.services.notifier.router_changed(router_id)


async def _changed(req: NetworkRequest, port_id: str, addresses_changed: bool = False,
                   known: Known | None = None, dhcp_agents: bool = True) -> None:
    if req.services.notifier is not None:
        await req.services.notifier.port_changed(port_id, addresses_changed, known, dhcp_agents)
