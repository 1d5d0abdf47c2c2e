"""Security groups and their rules: ``/v2.0/security-groups``, ``/v2.0/security-group-rules``.

Each project's ``default`` group is made at its first use (a list, a port, a group) with Neutron's default rules:
ingress from members of the group itself and all egress, for IPv4 and IPv6; other groups start with the two
egress rules. Rules are checked as Neutron's securitygroups_db does (ethertype, protocol, port range, ICMP
type/code, remote prefix or group), and a rule the group already has is a 409 naming it.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from stratus.db import network as db
from stratus.db.engine import Connection
from stratus.network.server import attributes as a
from stratus.network.server import errors, listing, quotas
from stratus.network.server.resource import (
    STANDARD_ATTRIBUTES,
    NetworkRequest,
    new_standard,
    standard_view,
    touch,
)

ETHERTYPES = ("IPv4", "IPv6")
PROTOCOLS = {"ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2, "ip": 0,
             "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58, "ipv6-nonxt": 59,
             "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6,
             "udp": 17, "udplite": 136, "vrrp": 112}
_PORT_PROTOCOLS = ("tcp", "udp", "dccp", "sctp", "udplite")
_PORT_NUMBERS = (6, 17, 33, 132, 136)
_IPV6_ONLY = ("ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route",
              "41", "44", "58", "59", "60", "43")
_SUPPORTED = ("any", *PROTOCOLS)


def _protocol(attr: str, value: Any) -> str | None:
    """neutron's convert_protocol: None or 'any' for any, a name (lower case), or a number 0-255 as a string."""
    if value is None or value == "any":
        return None
    if isinstance(value, bool):
        raise _invalid_protocol(value)
    try:
        number = int(value)
    except (TypeError, ValueError):
        if isinstance(value, str) and value.lower() in PROTOCOLS:
            return value.lower()
        raise _invalid_protocol(value) from None
    if 0 <= number <= 255:
        return str(number)
    raise _invalid_protocol(value)


def _invalid_protocol(value: Any) -> errors.NeutronError:
    return errors.NeutronError(400, "SecurityGroupRuleInvalidProtocol", f"Security group rule protocol {value} not "
                               f"supported. Only protocol values {list(_SUPPORTED)} and integer representations "
                               "[0 to 255] are supported.")


def _ethertype(attr: str, value: Any) -> str:
    for name in ETHERTYPES:
        if isinstance(value, str) and value.lower() == name.lower():
            return name
    raise errors.NeutronError(400, "SecurityGroupRuleInvalidEtherType", f"Security group rule for ethertype "
                              f"'{value}' not supported. Allowed values are {list(ETHERTYPES)}.")


def _port(attr: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise errors.NeutronError(400, "SecurityGroupInvalidPortValue", f"Invalid value for port {value}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise errors.NeutronError(400, "SecurityGroupInvalidPortValue", f"Invalid value for port {value}") from None
    if not 0 <= number <= 65535:
        raise errors.NeutronError(400, "SecurityGroupInvalidPortValue", f"Invalid value for port {value}")
    return number


def _prefix(attr: str, value: Any) -> str | None:
    """The prefix as the user gave it, host bits kept (``10.0.0.5/24``), in address/length form (a bare address
    gets its full length): Neutron's ``convert_ip_prefix_to_cidr``. Its network is the rule's ``normalized_cidr``."""
    if value is None or value == "":
        return None
    try:
        return str(ipaddress.ip_interface(value))
    except (TypeError, ValueError):
        raise a.Invalid(f"'{value}' is not a valid IP subnet") from None


def normalized_cidr(prefix: str | None) -> str | None:
    """The network of a rule's ``remote_ip_prefix`` (``10.0.0.0/24`` for ``10.0.0.5/24``), as Neutron reports it
    and compares rules by."""
    return None if prefix is None else str(ipaddress.ip_network(prefix, strict=False))


_GROUP_ATTRS: dict[str, a.Attr] = {
    "name": a.NAME, "description": a.DESCRIPTION, "stateful": a.Attr(a.boolean, default=True),
    "tenant_id": a.PROJECT, "project_id": a.PROJECT,
}
_RULE_ATTRS: dict[str, a.Attr] = {
    "security_group_id": a.Attr(a.uuid_check, put=False, required=True),
    "direction": a.Attr(a.one_of("ingress", "egress"), put=False, required=True),
    "ethertype": a.Attr(_ethertype, put=False, default="IPv4"),
    "protocol": a.Attr(_protocol, put=False),
    "port_range_min": a.Attr(_port, put=False),
    "port_range_max": a.Attr(_port, put=False),
    "remote_ip_prefix": a.Attr(_prefix, put=False),
    "remote_group_id": a.Attr(a.nullable(a.string(255)), put=False),  # not a group: its 404, as Neutron
    "remote_address_group_id": a.Attr(a.nullable(a.one_of(None)), put=False),
    "description": a.Attr(a.string(a.DESCRIPTION_MAX), put=False, default=""),
    "tenant_id": a.PROJECT, "project_id": a.PROJECT,
}
GROUP_VIEW_ATTRIBUTES = {*_GROUP_ATTRS, *STANDARD_ATTRIBUTES, "id", "security_group_rules", "shared"}
RULE_VIEW_ATTRIBUTES = {*_RULE_ATTRS, *STANDARD_ATTRIBUTES, "id", "normalized_cidr", "belongs_to_default_sg"}
_CONVERTERS: dict[str, listing.Converter] = {"stateful": a.boolean, "shared": a.boolean}
_RULE_CONVERTERS: dict[str, listing.Converter] = {"port_range_min": a.integer(0, 65535),
                                                  "port_range_max": a.integer(0, 65535)}


def rule_view(rule: dict[str, Any], default_ids: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    return {"id": rule["id"], **standard_view(rule), "security_group_id": rule["security_group_id"],
            "direction": rule["direction"], "ethertype": rule["ethertype"], "protocol": rule["protocol"],
            "port_range_min": rule["port_range_min"], "port_range_max": rule["port_range_max"],
            "remote_ip_prefix": rule["remote_ip_prefix"], "remote_group_id": rule["remote_group_id"],
            "remote_address_group_id": None, "normalized_cidr": normalized_cidr(rule["remote_ip_prefix"]),
            "belongs_to_default_sg": rule["security_group_id"] in default_ids}


def group_view(group: dict[str, Any], rules: list[dict[str, Any]], default_ids: set[str]) -> dict[str, Any]:
    return {"id": group["id"], "name": group["name"], **standard_view(group), "stateful": group.get("stateful", True),
            "shared": False, "security_group_rules": [rule_view(r, default_ids) for r in rules]}


def _target(record: dict[str, Any]) -> dict[str, Any]:
    return {"project_id": record["project_id"], "tenant_id": record["project_id"]}


def _rule(group_id: str, project_id: str, direction: str, ethertype: str, remote_group: str | None = None
          ) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), **new_standard(project_id), "security_group_id": group_id,
            "direction": direction, "ethertype": ethertype, "protocol": None, "port_range_min": None,
            "port_range_max": None, "remote_ip_prefix": None, "remote_group_id": remote_group, "description": ""}


async def _insert_group(conn: Connection, project_id: str, name: str, description: str, stateful: bool,
                        default: bool) -> dict[str, Any]:
    group = {"id": str(uuid.uuid4()), **new_standard(project_id), "name": name, "description": description,
             "stateful": stateful}
    await db.insert_record(conn, "security_group", group)
    if default:
        await db.set_default_group(conn, project_id, group["id"])
    for ethertype in ETHERTYPES:
        if default:
            await db.insert_record(conn, "security_group_rule",
                                   _rule(group["id"], project_id, "ingress", ethertype, group["id"]))
        await db.insert_record(conn, "security_group_rule", _rule(group["id"], project_id, "egress", ethertype))
    return group


async def ensure_default(req: NetworkRequest, project_id: str) -> str:
    """The project's ``default`` group, made now if it has none (once, however many first uses race)."""
    async with req.services.db.read() as conn:
        found = await db.default_group_of(conn, project_id)
    if found is not None:
        return found
    try:
        async with req.services.db.write() as conn:
            found = await db.default_group_of(conn, project_id)
            if found is None:
                found = (await _insert_group(conn, project_id, "default", "Default security group", True,
                                             True))["id"]
            return found
    except IntegrityError:
        async with req.services.db.read() as conn:
            found = await db.default_group_of(conn, project_id)
        assert found is not None
        return found


async def for_port(req: NetworkRequest, conn: Connection, project_id: str, given: list[str] | None,
                   port_security: bool, device_owner: str, default_group: str | None = None) -> list[str]:
    """The groups of a port: those given (each of the port's project), else its project's default group (none
    for a port without port security, or one the network itself owns; ``default_group``: that group as the
    caller's transaction read it, else looked up, and made if the project has none yet)."""
    if given is None:
        if not port_security or device_owner.startswith("network:"):
            return []
        found = default_group or await db.default_group_of(conn, project_id)
        if found is None:
            found = (await _insert_group(conn, project_id, "default", "Default security group", True, True))["id"]
        return [found]
    chosen = list(dict.fromkeys(given))
    groups = {g["id"]: g for g in await db.find(conn, "security_group", id=chosen)} if chosen else {}
    for group_id in chosen:
        group = groups.get(group_id)
        if group is None or (group["project_id"] != project_id and not req.ctx.is_admin):
            raise errors.NeutronError(404, "SecurityGroupNotFound", f"Security group {group_id} does not exist")
    return chosen


async def group_rules(conn: Connection, group_ids: list[str]) -> list[dict[str, Any]]:
    """The rules of ``group_ids`` as an agent filters by them (``db.RULE_FILTER_COLUMNS``, the fields Neutron's
    security group RPC gives its agents); a rule with a remote group carries its members' addresses of the rule's
    ethertype in ``remote_ips``."""
    if not group_ids:
        return []
    rules = await db.filter_rules(conn, group_ids)
    remote = sorted({r["remote_group_id"] for r in rules if r["remote_group_id"]})
    members = await db.group_member_addresses(conn, remote) if remote else {}
    for rule in rules:
        if rule["remote_group_id"]:
            v6 = rule["ethertype"] == "IPv6"
            rule["remote_ips"] = sorted(a for a in members.get(rule["remote_group_id"], []) if (":" in a) == v6)
    return rules


async def visible_group(req: NetworkRequest, conn: Connection, group_id: str) -> dict[str, Any]:
    group = await db.get(conn, "security_group", group_id)
    if group is None or not req.services.policy.check(req.ctx, "get_security_group", _target(group)):
        raise errors.NeutronError(404, "SecurityGroupNotFound", f"Security group {group_id} does not exist")
    return group


async def list_groups(req: NetworkRequest) -> dict[str, Any]:
    await ensure_default(req, req.ctx.project_id)
    async with req.services.db.read() as conn:
        groups = await db.find(conn, "security_group") if req.ctx.is_admin else \
            await db.find(conn, "security_group", project_id=req.ctx.project_id)
        groups = [g for g in groups if req.services.policy.check(req.ctx, "get_security_group", _target(g))]
        rules = await db.find(conn, "security_group_rule", security_group_id=[g["id"] for g in groups]) \
            if groups else []
        default_ids = await db.default_group_ids(conn)
    by_group: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        by_group.setdefault(rule["security_group_id"], []).append(rule)
    views = [group_view(g, by_group.get(g["id"], []), default_ids) for g in groups]
    views = listing.filtered(views, req.query, GROUP_VIEW_ATTRIBUTES, _CONVERTERS)
    views, links = listing.page(req.full_url, "security_group", views, req.query, GROUP_VIEW_ATTRIBUTES,
                                req.services.options.pagination_max_limit)
    body: dict[str, Any] = {"security_groups": [listing.only_fields(v, req.query) for v in views]}
    if links:
        body["security_groups_links"] = links
    return body


async def show_group(req: NetworkRequest) -> dict[str, Any]:
    async with req.services.db.read() as conn:
        group = await visible_group(req, conn, req.path["security_group_id"])
        rules = await db.find(conn, "security_group_rule", security_group_id=group["id"])
        default_ids = await db.default_group_ids(conn)
    return {"security_group": listing.only_fields(group_view(group, rules, default_ids), req.query)}


async def create_group(req: NetworkRequest) -> dict[str, Any]:
    values = a.parse_body(await req.body(), "security_group", _GROUP_ATTRS, create=True)
    project_id = req.project_of(values)
    req.enforce("create_security_group", {"project_id": project_id, "tenant_id": project_id})
    if values["name"] == "default":
        raise errors.conflict("SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
    await ensure_default(req, project_id)
    async with req.services.db.write() as conn:
        await quotas.check(req, conn, "security_group", project_id)
        await quotas.check(req, conn, "security_group_rule", project_id, 2)
        group = await _insert_group(conn, project_id, values["name"], values["description"], values["stateful"],
                                    False)
        rules = await db.find(conn, "security_group_rule", security_group_id=group["id"])
    return {"security_group": group_view(group, rules, set())}


async def update_group(req: NetworkRequest) -> dict[str, Any]:
    values = a.parse_body(await req.body(), "security_group", _GROUP_ATTRS, create=False)
    async with req.services.db.write() as conn:
        group = await visible_group(req, conn, req.path["security_group_id"])
        req.enforce("update_security_group", _target(group))
        default_ids = await db.default_group_ids(conn)
        if group["id"] in default_ids and values.get("name", "default") != "default":
            raise errors.conflict("SecurityGroupCannotUpdateDefault", "Updating default security group not allowed.")
        if values.get("name") == "default" and group["id"] not in default_ids:
            raise errors.conflict("SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
        group.update(values)
        touch(group)
        await db.update_record(conn, "security_group", group)
        rules = await db.find(conn, "security_group_rule", security_group_id=group["id"])
    return {"security_group": group_view(group, rules, default_ids)}


async def delete_group(req: NetworkRequest) -> None:
    async with req.services.db.write() as conn:
        group = await visible_group(req, conn, req.path["security_group_id"])
        req.enforce("delete_security_group", _target(group))
        if group["id"] in await db.default_group_ids(conn) and not req.ctx.is_admin:
            raise errors.conflict("SecurityGroupCannotRemoveDefault",
                                  "Insufficient rights for removing default security group.")
        if await db.ports_in_groups(conn, [group["id"]]):
            raise errors.conflict("SecurityGroupInUse", f"Security Group {group['id']} in use.")
        await db.delete_record(conn, "security_group", group["id"])


# --- rules -------------------------------------------------------------------------------------------------------
def _check_rule(rule: dict[str, Any]) -> None:
    """Neutron's _validate_security_group_rule, in its order."""
    if rule["remote_ip_prefix"] is not None and rule["remote_group_id"] is not None:
        raise errors.NeutronError(400, "SecurityGroupMultipleRemoteEntites", "Only one of remote_ip_prefix or "
                                  "remote_group_id or remote_address_group_id may be provided.")
    if rule["remote_ip_prefix"] is not None:
        version = ipaddress.ip_network(rule["remote_ip_prefix"], strict=False).version
        if f"IPv{version}" != rule["ethertype"]:
            raise errors.NeutronError(400, "SecurityGroupRuleParameterConflict", f"Conflicting value ethertype "
                                      f"{rule['ethertype']} for CIDR {rule['remote_ip_prefix']}")
    protocol = rule["protocol"]
    if rule["ethertype"] == "IPv6" and protocol in ("icmp", "icmpv6", "1"):
        rule["protocol"] = protocol = "ipv6-icmp" if protocol != "1" else "58"
    if protocol in _IPV6_ONLY and rule["ethertype"] == "IPv4":
        raise errors.NeutronError(400, "SecurityGroupEthertypeConflictWithProtocol", f"Invalid ethertype "
                                  f"{rule['ethertype']} for protocol {protocol}.")
    low, high = rule["port_range_min"], rule["port_range_max"]
    if low is None and high is None:
        return
    if protocol is None:
        raise errors.NeutronError(400, "SecurityGroupProtocolRequiredWithPorts",
                                  "Must also specify protocol if port range is given.")
    number = PROTOCOLS.get(protocol, None) if not protocol.isdigit() else int(protocol)
    if number in _PORT_NUMBERS:
        if low == 0 or high == 0:
            raise errors.NeutronError(400, "SecurityGroupInvalidPortValue", "Invalid value for port 0")
        if low is None or high is None or low > high:
            raise errors.NeutronError(400, "SecurityGroupInvalidPortRange",
                                      "For TCP/UDP protocols, port_range_min must be <= port_range_max")
        if low == 1 and high == 65535:
            rule["port_range_min"] = rule["port_range_max"] = None  # the whole range: no range, as Neutron
    elif number in (1, 58):
        for attr, field in (("port_range_min", "type"), ("port_range_max", "code")):
            if rule[attr] is not None and not 0 <= rule[attr] <= 255:
                raise errors.NeutronError(400, "SecurityGroupInvalidIcmpValue", f"Invalid value for ICMP {field} "
                                          f"({attr}) {rule[attr]}. It must be 0 to 255.")
        if low is None and high is not None:
            raise errors.NeutronError(400, "SecurityGroupMissingIcmpType", f"ICMP code (port-range-max) {high} is "
                                      "provided but ICMP type (port-range-min) is missing.")
    else:
        raise errors.NeutronError(400, "SecurityGroupInvalidProtocolForPort", f"Ports cannot be specified for "
                                  f"protocol {number}. Ports are only supported for "
                                  f"{', '.join(p.upper() for p in _PORT_PROTOCOLS)}.")


def _key(rule: dict[str, Any]) -> tuple[Any, ...]:
    protocol = rule["protocol"]
    number = None if protocol is None else (int(protocol) if protocol.isdigit() else PROTOCOLS.get(protocol))
    prefix = normalized_cidr(rule["remote_ip_prefix"])  # 10.0.0.5/24 is the same rule as 10.0.0.0/24
    if prefix in ("0.0.0.0/0", "::/0"):
        prefix = None
    return (rule["security_group_id"], rule["direction"], rule["ethertype"], number, rule["port_range_min"],
            rule["port_range_max"], prefix, rule["remote_group_id"])


async def _visible_rule(req: NetworkRequest, conn: Connection, rule_id: str) -> dict[str, Any]:
    rule = await db.get(conn, "security_group_rule", rule_id)
    if rule is None or not req.services.policy.check(req.ctx, "get_security_group_rule", _target(rule)):
        raise errors.NeutronError(404, "SecurityGroupRuleNotFound", f"Security group rule {rule_id} does not exist")
    return rule


async def list_rules(req: NetworkRequest) -> dict[str, Any]:
    async with req.services.db.read() as conn:
        rules = await db.find(conn, "security_group_rule") if req.ctx.is_admin else \
            await db.find(conn, "security_group_rule", project_id=req.ctx.project_id)
        default_ids = await db.default_group_ids(conn)
    views = [rule_view(r, default_ids) for r in rules
             if req.services.policy.check(req.ctx, "get_security_group_rule", _target(r))]
    views = listing.filtered(views, req.query, RULE_VIEW_ATTRIBUTES, _RULE_CONVERTERS)
    views, links = listing.page(req.full_url, "security_group_rule", views, req.query, RULE_VIEW_ATTRIBUTES,
                                req.services.options.pagination_max_limit)
    body: dict[str, Any] = {"security_group_rules": [listing.only_fields(v, req.query) for v in views]}
    if links:
        body["security_group_rules_links"] = links
    return body


async def show_rule(req: NetworkRequest) -> dict[str, Any]:
    async with req.services.db.read() as conn:
        rule = await _visible_rule(req, conn, req.path["rule_id"])
        default_ids = await db.default_group_ids(conn)
    return {"security_group_rule": listing.only_fields(rule_view(rule, default_ids), req.query)}


async def create_rule(req: NetworkRequest) -> dict[str, Any]:
    values = a.parse_body(await req.body(), "security_group_rule", _RULE_ATTRS, create=True)
    values.pop("remote_address_group_id", None)
    project_id = req.project_of(values)
    async with req.services.db.write() as conn:
        group = await visible_group(req, conn, values["security_group_id"])
        req.enforce("create_security_group_rule", _target(group))
        if values["remote_group_id"] is not None:
            await visible_group(req, conn, values["remote_group_id"])
        rule = {"id": str(uuid.uuid4()), **new_standard(group["project_id"] if req.ctx.is_admin and
                                                       project_id == req.ctx.project_id else project_id), **values}
        _check_rule(rule)
        await quotas.check(req, conn, "security_group_rule", rule["project_id"])
        for other in await db.find(conn, "security_group_rule", security_group_id=group["id"]):
            if _key(other) == _key(rule):
                raise errors.conflict("SecurityGroupRuleExists", f"Security group rule already exists. Rule id is "
                                                                 f"{other['id']}.")
        await db.insert_record(conn, "security_group_rule", rule)
        default_ids = await db.default_group_ids(conn)
    await _groups_changed(req, [group["id"]])
    return {"security_group_rule": rule_view(rule, default_ids)}


async def delete_rule(req: NetworkRequest) -> None:
    async with req.services.db.write() as conn:
        rule = await _visible_rule(req, conn, req.path["rule_id"])
        req.enforce("delete_security_group_rule", _target(rule))
        await db.delete_record(conn, "security_group_rule", rule["id"])
    await _groups_changed(req, [rule["security_group_id"]])


async def _groups_changed(req: NetworkRequest, group_ids: list[str]) -> None:
    if req.services.notifier is not None:
        await req.services.notifier.security_groups_changed(group_ids)
