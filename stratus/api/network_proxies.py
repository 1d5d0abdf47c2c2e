"""Nova's deprecated proxies to the Networking service, served up to 2.35 and 404 from 2.36 as in Nova:
``/os-networks`` and ``/os-tenant-networks`` (list, show), ``/os-security-groups`` (list, show, create, update, delete),
``/os-security-group-rules`` (create, delete), ``/os-floating-ip-pools`` and ``/os-floating-ips`` (list, show,
allocate from a pool, release). Each call goes to the Networking service with the caller's token, so its policy
and visibility decide; the bodies are Nova's.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from starlette.responses import Response

from stratus.api import server_networks
from stratus.api.errors import Fault
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.identity import policy
from stratus.network.neutron import API as NetworkAPI
from stratus.network.neutron_client import NeutronClientError

MAX = "2.35"
_NETWORK_FIELDS = ("id", "cidr", "netmask", "gateway", "broadcast", "dns1", "dns2", "cidr_v6", "gateway_v6", "label",
                   "netmask_v6")
_NETWORK_ADMIN_FIELDS = ("created_at", "updated_at", "deleted_at", "deleted", "injected", "bridge", "vlan",
                         "vpn_public_address", "vpn_public_port", "vpn_private_address", "dhcp_start", "project_id",
                         "host", "bridge_interface", "multi_host", "priority", "rxtx_base", "mtu", "dhcp_server",
                         "enable_dhcp", "share_address")


def _network_api(req: ApiRequest) -> NetworkAPI:
    if req.services.network is None:
        raise Fault(404, "The resource could not be found.")
    return req.services.network


def _authorize(req: ApiRequest, rule: str) -> dict[str, Any]:
    ctx = req.context
    policy.authorize(ctx, rule, {"project_id": ctx.project_id})
    return ctx.to_dict()


def _raise(exc: NeutronClientError, not_found: str) -> Fault:
    if exc.status == 404:
        return Fault(404, not_found)
    if exc.status == 409:
        return Fault(409, exc.message)
    if exc.status in (401, 403):
        return Fault(403, exc.message)
    return Fault(400, exc.message)


async def _show(req: ApiRequest, ctx: dict[str, Any], resource: str, item_id: str, not_found: str
                ) -> dict[str, Any]:
    """One item of the Networking service as the caller sees it; its 404 is Nova's ``not_found``."""
    try:
        item: dict[str, Any] = await _network_api(req).client.show(ctx, resource, item_id)
    except NeutronClientError as exc:
        raise _raise(exc, not_found) from None
    return item


async def _delete(req: ApiRequest, rule: str, resource: str, item_id: str, not_found: str,
                  in_use: int = 409) -> Response:
    """A proxied delete: 202 as Nova's; a 404 is Nova's ``not_found``, a 409 (in use) Nova's ``in_use`` code."""
    ctx = _authorize(req, rule)
    try:
        await _network_api(req).client.delete(ctx, resource, item_id)
    except NeutronClientError as exc:
        if exc.status == 409:
            raise Fault(in_use, exc.message) from None
        raise _raise(exc, not_found) from None
    return empty_response(202)


# --- os-networks -------------------------------------------------------------------------------------------
def _network_view(req: ApiRequest, net: dict[str, Any]) -> dict[str, Any]:
    """Nova's network_dict of a Neutron network: its id and name (label); the nova-network fields null."""
    fields = _NETWORK_FIELDS + (_NETWORK_ADMIN_FIELDS if req.context.is_admin else ())
    out: dict[str, Any] = dict.fromkeys(fields)
    out["id"], out["label"] = net["id"], net.get("name")
    return out


async def networks_index(req: ApiRequest) -> Response:
    ctx = _authorize(req, "os_compute_api:os-networks:list")
    nets = await _network_api(req).client.list(ctx, "networks")
    return json_response({"networks": [_network_view(req, n) for n in nets]})


async def networks_show(req: ApiRequest) -> Response:
    ctx = _authorize(req, "os_compute_api:os-networks:view")
    net = await _show(req, ctx, "networks", req.path["network_id"], "Network not found")
    return json_response({"network": _network_view(req, net)})


# --- os-tenant-networks ------------------------------------------------------------------------------------
def _tenant_network_view(net: dict[str, Any]) -> dict[str, Any]:
    """Nova's tenant_networks ``network_dict``: a Neutron network has no ``cidr``, which Nova writes as the string
    of None."""
    return {"id": net["id"], "cidr": str(net.get("cidr")), "label": net.get("name")}


async def tenant_networks_index(req: ApiRequest) -> Response:
    ctx = _authorize(req, "os_compute_api:os-tenant-networks:list")
    nets = await _network_api(req).client.list(ctx, "networks")
    return json_response({"networks": [_tenant_network_view(n) for n in nets]})


async def tenant_networks_show(req: ApiRequest) -> Response:
    ctx = _authorize(req, "os_compute_api:os-tenant-networks:show")
    net = await _show(req, ctx, "networks", req.path["network_id"], "Network not found")
    return json_response({"network": _tenant_network_view(net)})


def _group_id(value: Any) -> str:
    """Nova's ``validate_id`` of its Neutron security group API: a group or rule id is a UUID, else a 400."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        raise Fault(400, "Security group id should be uuid") from None
    return str(value)


# --- os-security-groups ------------------------------------------------------------------------------------
def _group_names(groups: list[dict[str, Any]]) -> dict[str, str]:
    return {g["id"]: g.get("name") or "" for g in groups}


async def _names(req: ApiRequest, ctx: dict[str, Any], groups: list[dict[str, Any]]) -> dict[str, str]:
    """The names of the groups and of every group their rules name as remote (Nova shows the remote's name)."""
    names = _group_names(groups)
    missing = sorted({r["remote_group_id"] for g in groups for r in g.get("security_group_rules") or []
                      if r.get("remote_group_id") and r["remote_group_id"] not in names})
    if missing:
        names.update(_group_names(await _network_api(req).client.list(ctx, "security-groups", id=missing)))
    return names


def _check_group_body(body: dict[str, Any]) -> dict[str, str]:
    group = body.get("security_group") if isinstance(body, dict) else None
    if not isinstance(group, dict):
        raise Fault(400, "The request body is invalid: security_group is missing")
    for key in ("name", "description"):
        value = group.get(key)
        if not isinstance(value, str) or not value.strip():
            raise Fault(400, f"Security group {key} is not a string or unicode" if not isinstance(value, str)
                        else f"Security group {key} cannot be empty.")
        if len(value) > 255:
            raise Fault(400, f"Security group {key} should not be greater than 255 characters.")
    return {"name": group["name"], "description": group["description"]}  # kept as given, spaces and all


async def groups_index(req: ApiRequest) -> Response:
    ctx = _authorize(req, "os_compute_api:os-security-groups:get")
    filters: dict[str, Any] = {}
    all_tenants = "all_tenants" in req.query and req.context.is_admin
    if not all_tenants:
        filters["tenant_id"] = req.context.project_id
    groups = await _network_api(req).client.list(ctx, "security-groups", **filters)
    names = await _names(req, ctx, groups)
    return json_response({"security_groups": [server_networks.security_group_view(g, names) for g in groups]})


async def _group(req: ApiRequest, ctx: dict[str, Any], group_id: str) -> dict[str, Any]:
    _group_id(group_id)
    return await _show(req, ctx, "security-groups", group_id, f"Security group {group_id} not found.")


async def groups_show(req: ApiRequest) -> Response:
    ctx = _authorize(req, "os_compute_api:os-security-groups:show")
    group = await _group(req, ctx, req.path["group_id"])
    return json_response({"security_group": server_networks.security_group_view(group, await _names(req, ctx,
                                                                                                     [group]))})


async def groups_create(req: ApiRequest) -> Response:
    ctx = _authorize(req, "os_compute_api:os-security-groups:create")
    values = _check_group_body(await req.json())
    try:
        group = await _network_api(req).client.create(ctx, "security-groups", values)
    except NeutronClientError as exc:
        raise _raise(exc, "Security group not found.") from None
    return json_response({"security_group": server_networks.security_group_view(group, _group_names([group]))})


async def groups_update(req: ApiRequest) -> Response:
    ctx = _authorize(req, "os_compute_api:os-security-groups:update")
    values = _check_group_body(await req.json())
    group_id = req.path["group_id"]
    await _group(req, ctx, group_id)
    try:
        group = await _network_api(req).client.update(ctx, "security-groups", group_id, values)
    except NeutronClientError as exc:
        raise _raise(exc, f"Security group {group_id} not found.") from None
    return json_response({"security_group": server_networks.security_group_view(group, _group_names([group]))})


async def groups_delete(req: ApiRequest) -> Response:
    group_id = _group_id(req.path["group_id"])
    # in use by a port: Nova's Invalid, a 400
    return await _delete(req, "os_compute_api:os-security-groups:delete", "security-groups", group_id,
                         f"Security group {group_id} not found.", in_use=400)


# --- os-security-group-rules ---------------------------------------------------------------------------------
def _port(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Fault(400, f"Invalid port range {value}:{value}. {name} must be an integer.") from None


async def rules_create(req: ApiRequest) -> Response:
    ctx = _authorize(req, "os_compute_api:os-security-groups:rule:create")
    body = await req.json()
    rule = body.get("security_group_rule") if isinstance(body, dict) else None
    if not isinstance(rule, dict):
        raise Fault(400, "The request body is invalid: security_group_rule is missing")
    parent = rule.get("parent_group_id")
    parent_group = await _group(req, ctx, _group_id(parent))
    protocol = rule.get("ip_protocol")
    values: dict[str, Any] = {"security_group_id": parent_group["id"], "direction": "ingress",
                              "ethertype": "IPv4"}
    if protocol:
        values["protocol"] = str(protocol).lower()
        from_port, to_port = _port(rule.get("from_port"), "from_port"), _port(rule.get("to_port"), "to_port")
        if values["protocol"] == "icmp":
            if from_port is not None and from_port != -1:
                values["port_range_min"] = from_port
            if to_port is not None and to_port != -1:
                values["port_range_max"] = to_port
        else:
            values["port_range_min"], values["port_range_max"] = from_port, to_port
    if rule.get("group_id"):
        remote = await _group(req, ctx, str(rule["group_id"]))
        values["remote_group_id"] = remote["id"]
    elif rule.get("cidr"):
        try:
            version = ipaddress.ip_network(str(rule["cidr"]), strict=False).version
        except ValueError:
            raise Fault(400, f"Invalid cidr {rule['cidr']}.") from None
        values["remote_ip_prefix"] = rule["cidr"]  # as given, as Nova passes it
        values["ethertype"] = f"IPv{version}"
    try:
        created = await _network_api(req).client.create(ctx, "security-group-rules", values)
    except NeutronClientError as exc:
        if exc.status == 409:  # SecurityGroupRuleExists: Nova's 400
            raise Fault(400, exc.message) from None
        raise _raise(exc, f"Security group {parent} not found.") from None
    parent_group = {**parent_group, "security_group_rules": [created]}
    view = server_networks.security_group_view(parent_group, await _names(req, ctx, [parent_group]))
    return json_response({"security_group_rule": view["rules"][0]})


async def rules_delete(req: ApiRequest) -> Response:
    rule_id = _group_id(req.path["rule_id"])
    return await _delete(req, "os_compute_api:os-security-groups:rule:delete", "security-group-rules", rule_id,
                         f"Rule ({rule_id}) not found")


# --- os-floating-ip-pools and os-floating-ips ------------------------------------------------------------------
async def _pools(req: ApiRequest, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    return await _network_api(req).client.list(ctx, "networks", **{"router:external": "True"})


async def pools_index(req: ApiRequest) -> Response:
    ctx = _authorize(req, "os_compute_api:os-floating-ip-pools:list")
    return json_response({"floating_ip_pools": [{"name": n.get("name") or n["id"]} for n in await _pools(req, ctx)]})


async def _fip_view(req: ApiRequest, ctx: dict[str, Any], fip: dict[str, Any],
                    pools: dict[str, str] | None = None) -> dict[str, Any]:
    instance_id = None
    if fip.get("port_id"):
        try:
            instance_id = (await _network_api(req).client.show(None, "ports", fip["port_id"])).get("device_id")
        except NeutronClientError:
            instance_id = None
    if pools is None:
        pools = {n["id"]: n.get("name") or n["id"] for n in await _pools(req, ctx)}
    return {"id": fip["id"], "ip": fip["floating_ip_address"], "fixed_ip": fip.get("fixed_ip_address"),
            "instance_id": instance_id or None, "pool": pools.get(fip["floating_network_id"],
                                                                   fip["floating_network_id"])}


async def fips_index(req: ApiRequest) -> Response:
    ctx = _authorize(req, "os_compute_api:os-floating-ips:list")
    fips = await _network_api(req).client.list(ctx, "floatingips", tenant_id=req.context.project_id)
    pools = {n["id"]: n.get("name") or n["id"] for n in await _pools(req, ctx)}
    return json_response({"floating_ips": [await _fip_view(req, ctx, f, pools) for f in fips]})


async def fips_show(req: ApiRequest) -> Response:
    ctx = _authorize(req, "os_compute_api:os-floating-ips:show")
    fip_id = req.path["floating_ip_id"]
    fip = await _show(req, ctx, "floatingips", fip_id, f"Floating IP not found for ID {fip_id}")
    return json_response({"floating_ip": await _fip_view(req, ctx, fip)})


async def fips_create(req: ApiRequest) -> Response:
    ctx = _authorize(req, "os_compute_api:os-floating-ips:create")
    body = await req.json() if await req.raw.body() else {}
    pool = (body or {}).get("pool") if isinstance(body, dict) else None
    pools = await _pools(req, ctx)
    if pool:
        match = [n for n in pools if n["id"] == pool or n.get("name") == pool]
        if not match:
            raise Fault(404, "Floating IP pool not found.")
    elif len(pools) == 1:
        match = pools
    else:
        raise Fault(404, "Floating IP pool not found.")
    try:
        fip = await _network_api(req).client.create(ctx, "floatingips", {"floating_network_id": match[0]["id"]})
    except NeutronClientError as exc:
        if exc.status == 409 or exc.type in ("IpAddressGenerationFailure", "OverQuota"):
            raise Fault(400 if exc.type == "IpAddressGenerationFailure" else 403,
                        f"No more floating IPs in pool {match[0].get('name')}." if exc.type ==
                        "IpAddressGenerationFailure" else "Maximum number of floating IPs exceeded") from None
        raise _raise(exc, "Floating IP pool not found.") from None
    return json_response({"floating_ip": await _fip_view(req, ctx, fip)})


async def fips_delete(req: ApiRequest) -> Response:
    fip_id = req.path["floating_ip_id"]
    return await _delete(req, "os_compute_api:os-floating-ips:delete", "floatingips", fip_id,
                         f"Floating IP not found for ID {fip_id}")


ROUTES: list[Route] = [
    Route("/os-networks", "GET", networks_index, max_version=MAX),
    Route("/os-networks/{network_id}", "GET", networks_show, max_version=MAX),
    Route("/os-tenant-networks", "GET", tenant_networks_index, max_version=MAX),
    Route("/os-tenant-networks/{network_id}", "GET", tenant_networks_show, max_version=MAX),
    Route("/os-security-groups", "GET", groups_index, max_version=MAX),
    Route("/os-security-groups", "POST", groups_create, max_version=MAX),
    Route("/os-security-groups/{group_id}", "GET", groups_show, max_version=MAX),
    Route("/os-security-groups/{group_id}", "PUT", groups_update, max_version=MAX),
    Route("/os-security-groups/{group_id}", "DELETE", groups_delete, max_version=MAX),
    Route("/os-security-group-rules", "POST", rules_create, max_version=MAX),
    Route("/os-security-group-rules/{rule_id}", "DELETE", rules_delete, max_version=MAX),
    Route("/os-floating-ip-pools", "GET", pools_index, max_version=MAX),
    Route("/os-floating-ips", "GET", fips_index, max_version=MAX),
    Route("/os-floating-ips", "POST", fips_create, max_version=MAX),
    Route("/os-floating-ips/{floating_ip_id}", "GET", fips_show, max_version=MAX),
    Route("/os-floating-ips/{floating_ip_id}", "DELETE", fips_delete, max_version=MAX),
]
