"""A server's networking in the compute API, as Nova's: ``/servers/{id}/ips`` (from the info cache),
``os-interface`` (the server's ports, read from the Networking service; attach and detach carried out by the
server's host) and ``/servers/{id}/os-security-groups`` (``os-virtual-interfaces``, gone with nova-network, is
one of stratus/api/gone.py's 410s).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus import exception
from stratus.api import server_view, validation
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.api.servers import load_instance
from stratus.compute.rpcapi import ComputeAPI
from stratus.db import instances
from stratus.network import neutron
from stratus.network.neutron_client import NeutronClientError
from stratus.objects import states
from stratus.virt.driver import InterfaceNotSupported

V249 = APIVersion.parse("2.49")
V270 = APIVersion.parse("2.70")
#: the states os-interface attach and detach accept (Nova's check_instance_state)
_INTERFACE_STATES = (states.ACTIVE, states.PAUSED, states.STOPPED, states.SUSPENDED)


# --- /ips --------------------------------------------------------------------------------------------------
async def ips_index(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:ips:index")
    return json_response({"addresses": server_view.addresses(inst.get("network_info") or [], extended=False)})


async def ips_show(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:ips:show")
    label = req.path["network_label"]
    networks = server_view.addresses(inst.get("network_info") or [], extended=False)
    if label not in networks:
        raise Fault(404, "Instance is not a member of specified network")
    return json_response({label: networks[label]})


# --- os-interface --------------------------------------------------------------------------------------------
def _network(req: ApiRequest) -> neutron.API:
    if req.services.network is None:
        raise Fault(404, "The resource could not be found.")
    return req.services.network


def _attachment(req: ApiRequest, port: dict[str, Any], tags: dict[str, str | None] | None = None) -> dict[str, Any]:
    out = {"port_state": port.get("status"), "fixed_ips": [{"subnet_id": f.get("subnet_id"),
                                                            "ip_address": f.get("ip_address")}
                                                           for f in port.get("fixed_ips") or []],
           "port_id": port["id"], "net_id": port.get("network_id"), "mac_addr": port.get("mac_address")}
    if req.version >= V270:
        out["tag"] = (tags or {}).get(port["id"])
    return out


def _tags(inst: dict[str, Any]) -> dict[str, str | None]:
    """The device tag of each of the server's ports, as the info cache keeps them."""
    return {v["id"]: v.get("tag") for v in inst.get("network_info") or []}


async def interface_index(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-attach-interfaces:list")
    network = _network(req)
    ports = await network.client.list(req.context.to_dict(), "ports", device_id=inst["uuid"])
    return json_response({"interfaceAttachments": [_attachment(req, p, _tags(inst)) for p in ports]})


async def interface_show(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-attach-interfaces:show")
    network = _network(req)
    port_id = req.path["port_id"]
    try:
        port = await network.client.show(req.context.to_dict(), "ports", port_id)
    except NeutronClientError as exc:
        if exc.status == 404:
            raise Fault(404, f"Port id {port_id} could not be found.") from None
        raise
    if port.get("device_id") != inst["uuid"]:
        raise Fault(404, f"Instance {inst['uuid']} does not have a port with id {port_id}")
    return json_response({"interfaceAttachment": _attachment(req, port, _tags(inst))})


def _attach_schema(version: APIVersion) -> dict[str, Any]:
    props: dict[str, Any] = {
        "net_id": {"type": "string", "format": "uuid"},
        "port_id": {"type": "string", "format": "uuid"},
        "fixed_ips": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
            "type": "object", "properties": {"ip_address": {"type": "string", "oneOf": [{"format": "ipv4"},
                                                                                        {"format": "ipv6"}]}},
            "required": ["ip_address"], "additionalProperties": False}},
    }
    if version >= V249:
        props["tag"] = validation.tag
    return {"type": "object", "properties": {"interfaceAttachment": {
        "type": "object", "properties": props, "additionalProperties": False}}, "additionalProperties": False}


def _check_state(inst: dict[str, Any], action: str) -> None:
    if inst["vm_state"] not in _INTERFACE_STATES or inst["task_state"] is not None:
        attr, state = ("task_state", inst["task_state"]) if inst["task_state"] else ("vm_state", inst["vm_state"])
        raise Fault(409, f"Cannot '{action}' instance {inst['uuid']} while it is in {attr} {state}")
    if not inst.get("host"):
        raise Fault(409, f"Instance {inst['uuid']} is not ready")


async def interface_create(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(_attach_schema(req.version), body)
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-attach-interfaces:create")
    _network(req)
    request = body.get("interfaceAttachment") or {}
    net_id, port_id = request.get("net_id"), request.get("port_id")
    fixed_ip = (request.get("fixed_ips") or [{}])[0].get("ip_address")
    if net_id and port_id:
        raise Fault(400, "Must not input both network_id and port_id")
    if fixed_ip and not net_id:
        raise Fault(400, "Must input network_id when request IP address")
    if inst["locked"] and not req.context.is_admin:
        raise Fault(409, f"Instance {inst['uuid']} is locked")
    _check_state(inst, "attach_interface")
    try:
        vif = await ComputeAPI(req.services.transport).attach_interface(
            req.context.to_dict(), inst["host"], inst["uuid"], net_id, port_id, fixed_ip, request.get("tag"))
    except (neutron.PortNotFound, neutron.NetworkNotFound) as exc:
        raise Fault(404, exc.message) from None
    except (neutron.PortInUse, neutron.FixedIpAlreadyInUse) as exc:
        raise Fault(409, exc.message) from None
    except InterfaceNotSupported as exc:
        raise Fault(501, exc.message) from None
    except exception.InstanceNotFound:
        raise Fault(404, f"Instance {inst['uuid']} could not be found.") from None
    port = await _network(req).client.show(None, "ports", vif["id"])
    return json_response({"interfaceAttachment": _attachment(req, port, {vif["id"]: vif.get("tag")})})


async def interface_delete(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-attach-interfaces:delete")
    _network(req)
    if inst["locked"] and not req.context.is_admin:
        raise Fault(409, f"Instance {inst['uuid']} is locked")
    _check_state(inst, "detach_interface")
    port_id = req.path["port_id"]
    if not any(v["id"] == port_id for v in inst.get("network_info") or []):
        raise Fault(404, f"Port {port_id} is not attached")
    try:
        await ComputeAPI(req.services.transport).detach_interface(req.context.to_dict(), inst["host"],
                                                                  inst["uuid"], port_id)
    except InterfaceNotSupported as exc:
        raise Fault(501, exc.message) from None
    except exception.StratusException as exc:
        if exc.code == 404:
            raise Fault(404, exc.message) from None
        raise
    return empty_response(202)


# --- the server's security groups ------------------------------------------------------------------------
def security_group_view(group: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A Neutron security group as Nova's os-security-groups shows it (ingress rules only, as Nova does)."""
    rules = []
    for rule in group.get("security_group_rules") or []:
        if rule.get("direction") != "ingress":
            continue
        protocol = rule.get("protocol")
        from_port, to_port = rule.get("port_range_min"), rule.get("port_range_max")
        if protocol in ("tcp", "udp") and from_port is None:
            from_port, to_port = 1, 65535
        elif protocol == "icmp" and from_port is None:
            from_port, to_port = -1, -1
        remote = rule.get("remote_group_id")
        rules.append({
            "id": rule["id"], "parent_group_id": group["id"], "ip_protocol": protocol,
            "from_port": from_port, "to_port": to_port,
            "ip_range": {} if remote else {"cidr": rule.get("remote_ip_prefix")
                                           or ("0.0.0.0/0" if rule.get("ethertype", "IPv4") == "IPv4" else "::/0")},
            "group": {"name": names.get(remote, remote), "tenant_id": group.get("tenant_id")} if remote else {},
        })
    return {"id": group["id"], "name": group.get("name"), "description": group.get("description", ""),
            "tenant_id": group.get("tenant_id") or group.get("project_id"), "rules": rules}


async def server_security_groups(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-security-groups:list")
    network = req.services.network
    groups = await network.instance_security_groups(req.context.to_dict(), inst["uuid"]) if network else []
    names = {g["id"]: g.get("name") or "" for g in groups}
    return json_response({"security_groups": [security_group_view(g, names) for g in groups]})


_SG_ACTION = {"type": "object", "properties": {"name": {"type": "string", "minLength": 1}}, "required": ["name"]}


def _sg_action(key: str, rule: str, add: bool) -> Any:
    async def handler(req: ApiRequest, body: dict[str, Any]) -> Response:
        if not isinstance(body.get(key), dict) or not body[key].get("name"):
            raise Fault(400, "Missing parameter dict" if not isinstance(body.get(key), dict)
                        else "Security group name cannot be empty")
        name = str(body[key]["name"]).strip()
        if not name:
            raise Fault(400, "Security group name cannot be empty")
        inst = await load_instance(req, req.path["server_id"], rule)
        network = req.services.network
        if network is None:
            raise Fault(404, f"Security group {name} not found.")
        try:
            if add:
                await network.add_to_instance(req.context.to_dict(), inst, name)
            else:
                await network.remove_from_instance(req.context.to_dict(), inst, name)
            await _record_groups(req, inst)
        except neutron.SecurityGroupNotFound as exc:
            raise Fault(404, exc.message) from None
        except (neutron.SecurityGroupCannotApply, neutron.SecurityGroupExistsForInstance,
                neutron.SecurityGroupNotExistsForInstance) as exc:
            raise Fault(400, exc.message) from None
        return empty_response(202)

    return handler


async def _record_groups(req: ApiRequest, inst: dict[str, Any]) -> None:
    """The names the server views show (``security_groups``) as the ports now have them."""
    assert req.services.network is not None
    groups = await req.services.network.instance_security_groups(req.context.to_dict(), inst["uuid"])
    async with req.services.db.write() as conn:
        await instances.update_instance(conn, inst["uuid"], {"security_groups": sorted({g["name"] for g in groups})})


add_security_group = _sg_action("addSecurityGroup", "os_compute_api:os-security-groups:add", add=True)
remove_security_group = _sg_action("removeSecurityGroup", "os_compute_api:os-security-groups:remove", add=False)


ROUTES: list[Route] = [
    Route("/servers/{server_id}/ips", "GET", ips_index),
    Route("/servers/{server_id}/ips/{network_label}", "GET", ips_show),
    Route("/servers/{server_id}/os-interface", "GET", interface_index),
    Route("/servers/{server_id}/os-interface", "POST", interface_create),
    Route("/servers/{server_id}/os-interface/{port_id}", "GET", interface_show),
    Route("/servers/{server_id}/os-interface/{port_id}", "DELETE", interface_delete),
    Route("/servers/{server_id}/os-security-groups", "GET", server_security_groups),
]
