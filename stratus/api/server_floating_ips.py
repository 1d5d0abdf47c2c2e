"""Server actions ``addFloatingIp`` and ``removeFloatingIp`` (to microversion 2.43, a 404 after as any action of
another version in Nova), Nova's proxies to the Networking service's floating IPs.

``addFloatingIp`` puts the floating IP on the server's port of ``fixed_address`` (which must be one of the
server's) or of its first IPv4 address: a floating IP already on another server moves (Nova's behaviour), one
the Networking service refuses (the port has a floating IP of that network already) is a 400.
``removeFloatingIp`` takes it off, a 409 if it is not this server's. Both answer 202 and refresh the server's
network info cache (the floating addresses of ``addresses``), and that of the server a moved IP left.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.responses import Response

from stratus.api import validation
from stratus.api.common import ActionHandler
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response
from stratus.api.servers import load_instance
from stratus.db import info_cache, instances
from stratus.network.neutron import API as NetworkAPI
from stratus.network.neutron_client import NeutronClientError

MAX = APIVersion.parse("2.43")
_IP = {"type": "string", "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
ADD_SCHEMA = {"type": "object",
              "properties": {"addFloatingIp": {"type": "object",
                                               "properties": {"address": _IP, "fixed_address": _IP},
                                               "required": ["address"], "additionalProperties": False}},
              "required": ["addFloatingIp"], "additionalProperties": False}
REMOVE_SCHEMA = {"type": "object",
                 "properties": {"removeFloatingIp": {"type": "object", "properties": {"address": _IP},
                                                     "required": ["address"], "additionalProperties": False}},
                 "required": ["removeFloatingIp"], "additionalProperties": False}


def _network(req: ApiRequest) -> NetworkAPI:
    if req.version > MAX or req.services.network is None:
        raise Fault(404, "The resource could not be found.")
    return req.services.network


async def _floating_ip(req: ApiRequest, network: NetworkAPI, address: str) -> dict[str, Any]:
    """The caller's floating IP of ``address`` (Nova's ``_get_floating_ip_by_address``)."""
    found = await network.client.list(req.context.to_dict(), "floatingips", floating_ip_address=address)
    if not found:
        raise Fault(404, "floating IP not found")
    if len(found) > 1:
        raise Fault(400, f"Multiple floating IPs are found for address {address}.")
    return found[0]


async def refresh_network_info(req: ApiRequest, network: NetworkAPI, instance_uuid: str) -> None:
    """The instance's info cache as its ports are now (Nova's ``refresh_cache``); a deleted instance is left."""
    async with req.services.db.read() as conn:
        inst = await instances.get_plain(conn, instance_uuid)
        cached = await info_cache.get(conn, instance_uuid) if inst is not None else []
    if inst is None or inst["deleted"]:
        return
    network_info = await network.get_instance_nw_info(req.context.to_dict(), inst, cached)
    async with req.services.db.write() as conn:
        await info_cache.save(conn, instance_uuid, network_info)


async def _add(req: ApiRequest, body: dict[str, Any]) -> Response:
    network = _network(req)
    validation.validate(ADD_SCHEMA, body)
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:os-floating-ips:add")
    args = body["addFloatingIp"]
    address = args["address"]
    if not inst.get("network_info"):
        raise Fault(400, "Instance network is not ready yet")
    fixed = [(vif["id"], ip["address"]) for vif in inst["network_info"]
             for subnet in (vif.get("network") or {}).get("subnets") or [] for ip in subnet.get("ips") or []]
    if not fixed:
        raise Fault(400, "No fixed IPs associated to instance")
    fixed_address = args.get("fixed_address")
    if fixed_address is not None:
        chosen = [(port, ip) for port, ip in fixed if ip == fixed_address]
        if not chosen:
            raise Fault(400, "Specified fixed address not assigned to instance")
    else:
        chosen = [(port, ip) for port, ip in fixed if ipaddress.ip_address(ip).version == 4]
        if not chosen:
            raise Fault(400, f"Unable to associate floating IP {address} to any fixed IPs for instance {server_id}. "
                             "Instance has no fixed IPv4 addresses to associate.")
    port_id, fixed_address = chosen[0]
    fip = await _floating_ip(req, network, address)
    try:
        await network.client.update(req.context.to_dict(), "floatingips", fip["id"],
                                    {"port_id": port_id, "fixed_ip_address": fixed_address})
    except NeutronClientError as exc:
        if exc.status == 404:
            raise Fault(404, "floating IP not found") from None
        if exc.status == 403:
            raise Fault(403, exc.message) from None
        raise Fault(400, exc.message if exc.status == 409 else
                    f"Unable to associate floating IP {address} to fixed IP {fixed_address} for instance "
                    f"{server_id}. Error: {exc.message}") from None
    await refresh_network_info(req, network, inst["uuid"])
    if fip.get("port_id") and fip["port_id"] != port_id:  # moved: the server it left shows it no more
        try:
            left = (await network.client.show(None, "ports", fip["port_id"])).get("device_id")
        except NeutronClientError:
            left = None
        if left and left != inst["uuid"]:
            await refresh_network_info(req, network, left)
    return empty_response(202)


async def _remove(req: ApiRequest, body: dict[str, Any]) -> Response:
    network = _network(req)
    validation.validate(REMOVE_SCHEMA, body)
    server_id = req.path["server_id"]
    address = body["removeFloatingIp"]["address"]
    inst = await load_instance(req, server_id, "os_compute_api:os-floating-ips:remove")
    fip = await _floating_ip(req, network, address)
    device = None
    if fip.get("port_id"):
        try:
            device = (await network.client.show(None, "ports", fip["port_id"])).get("device_id")
        except NeutronClientError:
            device = None
    if device != inst["uuid"]:
        raise Fault(409, f"Floating IP {address} is not associated with instance {server_id}.")
    try:
        await network.client.update(req.context.to_dict(), "floatingips", fip["id"], {"port_id": None})
    except NeutronClientError as exc:
        raise Fault(403 if exc.status == 403 else 404 if exc.status == 404 else 400, exc.message) from None
    await refresh_network_info(req, network, inst["uuid"])
    return empty_response(202)


ACTIONS: dict[str, ActionHandler] = {"addFloatingIp": _add, "removeFloatingIp": _remove}
