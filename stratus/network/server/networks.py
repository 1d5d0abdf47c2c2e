"""Networks: ``/v2.0/networks``, with the ``external-net``, ``provider``, ``net-mtu``, ``port-security``,
``network_availability_zone`` and standard attributes. A project network gets a segment of
``[network_server] tenant_network_types`` (a VXLAN VNI or a VLAN id) allocated here, unique in the database."""

from __future__ import annotations

import itertools
import random
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

VXLAN_OVERHEAD = 50
SEGMENT_RETRIES = 20
NETWORK_TYPES = ("vxlan", "vlan", "flat", "local")
_PROVIDER = ("provider:network_type", "provider:physical_network", "provider:segmentation_id")
_ATTRS: dict[str, a.Attr] = {
    "name": a.NAME, "description": a.DESCRIPTION,
    "admin_state_up": a.Attr(a.boolean, default=True),
    "shared": a.Attr(a.boolean, default=False),
    "router:external": a.Attr(a.boolean, default=False),
    "is_default": a.Attr(a.boolean, default=False),
    "mtu": a.Attr(a.integer(68, 65535)),
    "port_security_enabled": a.Attr(a.boolean, default=True),
    "availability_zone_hints": a.Attr(a.list_of(a.string(255), 100), put=False, default=list),
    "provider:network_type": a.Attr(a.one_of(*NETWORK_TYPES), put=False),
    "provider:physical_network": a.Attr(a.string(64), put=False),
    "provider:segmentation_id": a.Attr(a.integer(0, 2**24 - 1), put=False),
    "tenant_id": a.PROJECT, "project_id": a.PROJECT,
}
VIEW_ATTRIBUTES = {*_ATTRS, *STANDARD_ATTRIBUTES, "id", "status", "subnets", "availability_zones",
                   "ipv4_address_scope", "ipv6_address_scope", "l2_adjacency"}
CONVERTERS: dict[str, listing.Converter] = {
    "admin_state_up": a.boolean, "shared": a.boolean, "router:external": a.boolean, "is_default": a.boolean,
    "port_security_enabled": a.boolean, "mtu": a.integer(0, 2**31), "provider:segmentation_id": a.integer(0, 2**31),
}


def view(record: dict[str, Any], subnet_ids: list[str], zones: list[str]) -> dict[str, Any]:
    return {"id": record["id"], "name": record["name"], **standard_view(record),
            "admin_state_up": record["admin_state_up"], "mtu": record["mtu"], "status": record["status"],
            "subnets": subnet_ids, "shared": record["shared"], "router:external": record["external"],
            "is_default": record["is_default"], "port_security_enabled": record.get("port_security_enabled", True),
            "availability_zone_hints": list(record.get("availability_zone_hints") or []),
            "availability_zones": list(record.get("availability_zone_hints") or zones),
            "ipv4_address_scope": None, "ipv6_address_scope": None, "l2_adjacency": True,
            "provider:network_type": record["network_type"],
            "provider:physical_network": record["physical_network"] or None,
            "provider:segmentation_id": record["segmentation_id"]}


def target(record: dict[str, Any]) -> dict[str, Any]:
    return {"project_id": record["project_id"], "tenant_id": record["project_id"], "shared": record["shared"],
            "router:external": record["external"], "network:project_id": record["project_id"],
            "network:shared": record["shared"]}


async def visible(req: NetworkRequest, conn: Connection, network_id: str, for_update: bool = False
                  ) -> dict[str, Any]:
    """The network, or 404 when it does not exist or the caller may not see it."""
    record = await db.get(conn, "network", network_id, for_update=for_update)
    if record is None or not req.services.policy.visible(req.ctx, "network", target(record)):
        raise errors.not_found("Network", "net_id", network_id)
    return record


def _subnets_wanted(req: NetworkRequest) -> bool:
    """Whether a list needs its networks' subnets: not when ``fields`` leaves them out and nothing filters or
    sorts by them (Nova's lists ask for a few fields: their subnets are not read for that)."""
    fields = [f for f in req.query.getlist("fields") if f]
    return not fields or "subnets" in fields or "subnets" in req.query or "subnets" in req.query.getlist("sort_key")


async def _views(req: NetworkRequest, conn: Connection, records: list[dict[str, Any]], subnets_wanted: bool = True
                 ) -> list[dict[str, Any]]:
    by_network = await db.subnet_ids(conn, [r["id"] for r in records]) if subnets_wanted else {}
    zones = req.services.zones
    policy = req.services.policy
    return [policy.hide(req.ctx, "network", view(r, by_network.get(r["id"], []), zones), target(r))
            for r in records]


#: the attributes whose filters narrow the records before their views are made (``listing.pushdown``): Nova
#: asks by ``id``
FILTER_COLUMNS = {"id": "id", "name": "name", "project_id": "project_id", "status": "status"}


async def list_networks(req: NetworkRequest) -> dict[str, Any]:
    async with req.services.db.read() as conn:
        equals = listing.pushdown(req.query, FILTER_COLUMNS)
        if req.ctx.is_admin:  # every network: the filters narrow the query itself
            records = await db.find(conn, "network", **equals)
        else:
            records = listing.narrowed(await db.visible_networks(conn, req.ctx.project_id), equals)
        records = [r for r in records if req.services.policy.visible(req.ctx, "network", target(r))]
        views = await _views(req, conn, records, _subnets_wanted(req))
    views = listing.filtered(views, req.query, VIEW_ATTRIBUTES, CONVERTERS)
    views, links = listing.page(req.full_url, "network", views, req.query, VIEW_ATTRIBUTES,
                                req.services.page_limit)
    body: dict[str, Any] = {"networks": [listing.only_fields(v, req.query) for v in views]}
    if links:
        body["networks_links"] = links
    return body


async def show_network(req: NetworkRequest) -> dict[str, Any]:
    async with req.services.db.read() as conn:
        record = await visible(req, conn, req.path["network_id"])
        found = (await _views(req, conn, [record]))[0]
    return {"network": listing.only_fields(found, req.query)}


def _segment(req: NetworkRequest, values: dict[str, Any]) -> tuple[str, str, int | None] | None:
    """The segment asked for (provider attributes, admins only), checked as ML2's type drivers do; None to have
    one allocated."""
    kind, physnet, seg_id = (values.pop(k, None) for k in _PROVIDER)
    if kind is None:
        if physnet is not None or seg_id is not None:
            raise errors.invalid_input("provider:network_type required")
        return None
    if kind == "vxlan":
        if physnet is not None:
            raise errors.invalid_input("provider:physical_network specified for VXLAN network")
        if seg_id is not None and not 1 <= seg_id <= 2**24 - 1:
            raise errors.invalid_input(f"{seg_id} is not a valid VXLAN VNI value")
        return kind, "", seg_id
    if kind == "vlan":
        if physnet is None:
            physnet = req.services.options.network_vlan_range.split(":")[0]
        if seg_id is not None and not 1 <= seg_id <= 4094:
            raise errors.invalid_input("provider:segmentation_id out of range (1 through 4094)")
        return kind, physnet, seg_id
    if seg_id is not None:
        raise errors.invalid_input(f"provider:segmentation_id specified for {kind} network")
    if kind == "flat":
        if physnet is None:
            raise errors.invalid_input("provider:physical_network required for flat provider network")
        allowed = req.services.options.flat_networks
        if "*" not in allowed and physnet not in allowed:
            raise errors.invalid_input(f"physical_network '{physnet}' unknown for flat provider network")
        return kind, physnet, None
    if physnet is not None:
        raise errors.invalid_input("provider:physical_network specified for local network")
    return kind, "", None


def vlan_range(text: str) -> tuple[str, int, int]:
    """``physnet:min:max`` of ``[network_server] network_vlan_range``."""
    physnet, low, high = text.rsplit(":", 2)
    return physnet, int(low), int(high)


async def allocate_segment(req: NetworkRequest, conn: Connection, kind: str, physnet: str) -> int:
    opts = req.services.options
    if kind == "vxlan":
        low, _, high = opts.vni_ranges.partition(":")
        first, last = int(low), int(high)
    else:
        physnet_conf, first, last = vlan_range(opts.network_vlan_range)
        if physnet != physnet_conf:
            raise errors.NeutronError(503, "NoNetworkAvailable", "Unable to create the network. No tenant network "
                                      "is available for allocation.")
    used = await db.segmentation_ids(conn, kind, physnet)
    # one of the lowest free ids at random, as Neutron's type drivers pick: creates racing on PostgreSQL rarely
    # pick the same one, and a loser (IntegrityError on the unique segment) runs again
    free_ids = list(itertools.islice((i for i in range(first, last + 1) if i not in used), 32))
    free = random.choice(free_ids) if free_ids else None
    if free is None:
        raise errors.NeutronError(503, "NoNetworkAvailable", "Unable to create the network. No tenant network is "
                                  "available for allocation.")
    return free


def _in_use(kind: str, physnet: str, seg_id: int | None) -> errors.NeutronError:
    if kind == "vlan":
        return errors.conflict("VlanIdInUse", f"Unable to create the network. The VLAN {seg_id} on physical "
                                              f"network {physnet} is in use.")
    if kind == "flat":
        return errors.conflict("FlatNetworkInUse", f"Unable to create the flat network. Physical network "
                                                   f"{physnet} is in use.")
    return errors.conflict("TunnelIdInUse", f"Unable to create the network. The tunnel ID {seg_id} is in use.")


async def create_network(req: NetworkRequest) -> dict[str, Any]:
    body = await req.body()
    given = dict(body.get("network") or {}) if isinstance(body, dict) and isinstance(body.get("network"), dict) \
        else None
    values = a.parse_body(body, "network", _ATTRS, create=True)
    project_id = req.project_of(values)
    record_target = {"project_id": project_id, "tenant_id": project_id}
    req.enforce("create_network", record_target, [k for k in (given or {}) if k not in ("tenant_id", "project_id")])
    if values["is_default"] and not values["router:external"]:
        raise errors.invalid_input("Unable to set is_default on a network that is not external")
    asked = _segment(req, values)
    opts = req.services.options
    mtu = values.pop("mtu")  # once, outside the retries: a lost segment race runs the body again
    for attempt in range(SEGMENT_RETRIES):
        try:
            async with req.services.db.write() as conn:
                await quotas.check(req, conn, "network", project_id)
                if asked is None:
                    kind = opts.tenant_network_types[0] if opts.tenant_network_types else "local"
                    physnet = opts.network_vlan_range.split(":")[0] if kind == "vlan" else ""
                    seg_id: int | None = await allocate_segment(req, conn, kind, physnet) \
                        if kind in ("vxlan", "vlan") else None
                else:
                    kind, physnet, seg_id = asked
                    if seg_id is None and kind in ("vxlan", "vlan"):
                        seg_id = await allocate_segment(req, conn, kind, physnet)
                    if kind == "flat" and await db.find(conn, "network", network_type="flat",
                                                        physical_network=physnet):
                        raise _in_use(kind, physnet, None)
                if values["is_default"]:
                    await _check_default(conn, None)
                limit = opts.global_physnet_mtu - (VXLAN_OVERHEAD if kind == "vxlan" else 0)
                if mtu is not None and mtu > limit:
                    raise errors.invalid_input(f"Requested MTU is too big, maximum is {limit}")
                record = {"id": str(uuid.uuid4()), **new_standard(project_id), "name": values["name"],
                          "status": "ACTIVE", "admin_state_up": values["admin_state_up"], "shared": values["shared"],
                          "external": values["router:external"], "is_default": values["is_default"],
                          "mtu": limit if mtu is None else mtu, "network_type": kind, "physical_network": physnet,
                          "segmentation_id": seg_id, "description": values["description"],
                          "port_security_enabled": values["port_security_enabled"],
                          "availability_zone_hints": values["availability_zone_hints"]}
                await db.insert_record(conn, "network", record)
                return {"network": (await _views(req, conn, [record]))[0]}
        except IntegrityError:
            if asked is not None and asked[2] is not None:
                raise _in_use(*asked) from None
            if attempt == SEGMENT_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


async def _check_default(conn: Connection, network_id: str | None) -> None:
    for other in await db.find(conn, "network", is_default=True):
        if other["id"] != network_id:
            raise errors.conflict("DefaultExternalNetworkExists",
                                  f"A default external network already exists: {other['id']}.")


async def update_network(req: NetworkRequest) -> dict[str, Any]:
    body = await req.body()
    values = a.parse_body(body, "network", _ATTRS, create=False)
    async with req.services.db.write() as conn:
        record = await visible(req, conn, req.path["network_id"], for_update=True)
        req.enforce("update_network", target(record), list(values))
        mapping = {"router:external": "external"}
        if values.get("shared") is False and record["shared"]:
            others = {p["project_id"] for p in await db.find(conn, "port", network_id=record["id"])}
            if others - {record["project_id"]}:
                raise errors.conflict("InvalidSharedSetting", f"Unable to reconfigure sharing settings for network "
                                      f"{record['id']}. Multiple tenants are using it.")
        if values.get("is_default"):
            if not values.get("router:external", record["external"]):
                raise errors.invalid_input("Unable to set is_default on a network that is not external")
            await _check_default(conn, record["id"])
        limit = req.services.options.global_physnet_mtu - (VXLAN_OVERHEAD if record["network_type"] == "vxlan" else 0)
        if values.get("mtu") is not None and values["mtu"] > limit:
            raise errors.invalid_input(f"Requested MTU is too big, maximum is {limit}")
        for key, value in values.items():
            record[mapping.get(key, key)] = value
        touch(record)
        await db.update_record(conn, "network", record)
        found = (await _views(req, conn, [record]))[0]
    return {"network": found}


async def delete_network(req: NetworkRequest) -> None:
    async with req.services.db.write() as conn:
        record = await visible(req, conn, req.path["network_id"], for_update=True)
        req.enforce("delete_network", target(record))
        ports = await db.find(conn, "port", network_id=record["id"])
        # DHCP ports and unassociated floating IPs go with the network, as Neutron's auto-deleted owners
        if any(p["device_owner"] not in ("network:dhcp", "network:floatingip") for p in ports):
            raise errors.conflict("NetworkInUse", f"Unable to complete operation on network {record['id']}. There "
                                                  "are one or more ports still in use on the network.")
        await db.delete_record(conn, "network", record["id"])
    if req.services.notifier is not None:
        await req.services.notifier.network_deleted(record["id"], [p["id"] for p in ports])
