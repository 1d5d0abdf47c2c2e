"""``/v2.0/network-ip-availabilities[/{network_id}]`` (admins, as Neutron's default policy): per network and
subnet, the addresses of the allocation pools (``total_ips``) and those held (``used_ips``)."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams

from stratus.db import network as db
from stratus.db.engine import Connection
from stratus.network.server import errors, ipam, listing
from stratus.network.server.resource import NetworkRequest

VIEW_ATTRIBUTES = {"network_id", "network_name", "tenant_id", "project_id", "total_ips", "used_ips", "ip_version",
                   "subnet_ip_availability"}


async def _views(conn: Connection, networks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    subnet_records = await db.find(conn, "subnet", network_id=[n["id"] for n in networks]) if networks else []
    used = await db.count_allocated(conn, [s["id"] for s in subnet_records]) if subnet_records else {}
    views = []
    for network in networks:
        mine = [{"subnet_id": s["id"], "subnet_name": s["name"], "cidr": s["cidr"], "ip_version": s["ip_version"],
                 "total_ips": ipam.pool_size(s["allocation_pools"]), "used_ips": used.get(s["id"], 0)}
                for s in subnet_records if s["network_id"] == network["id"]]
        views.append({"network_id": network["id"], "network_name": network["name"],
                      "tenant_id": network["project_id"], "project_id": network["project_id"],
                      "total_ips": sum(s["total_ips"] for s in mine), "used_ips": sum(s["used_ips"] for s in mine),
                      "subnet_ip_availability": mine})
    return views


def _authorize(req: NetworkRequest) -> None:
    if not req.services.policy.check(req.ctx, "get_network_ip_availability", {"project_id": req.ctx.project_id}):
        raise errors.policy_denied(["get_network_ip_availability"])


async def list_availabilities(req: NetworkRequest) -> dict[str, Any]:
    _authorize(req)
    params = req.query
    async with req.services.db.read() as conn:
        views = await _views(conn, await db.visible_networks(conn, None))
    if "ip_version" in params:  # a network matches when one of its subnets is of that version
        versions = set(params.getlist("ip_version"))
        views = [v for v in views if {str(s["ip_version"]) for s in v["subnet_ip_availability"]} & versions]
    views = listing.filtered(views, _without(params, "ip_version"), VIEW_ATTRIBUTES, {})
    return {"network_ip_availabilities": [listing.only_fields(v, params) for v in views]}


def _without(params: QueryParams, name: str) -> QueryParams:
    return QueryParams([(k, v) for k, v in params.multi_items() if k != name])


async def show_availability(req: NetworkRequest) -> dict[str, Any]:
    _authorize(req)
    async with req.services.db.read() as conn:
        network = await db.get(conn, "network", req.path["network_id"])
        if network is None:
            raise errors.not_found("Network", "net_id", req.path["network_id"])
        view = (await _views(conn, [network]))[0]
    return {"network_ip_availability": listing.only_fields(view, req.query)}
