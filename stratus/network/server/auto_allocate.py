"""``/v2.0/auto-allocated-topology/{project_id}`` (Nova's ``networks: auto``): the project's network, made at the
first GET with a subnet of ``[network_server] auto_allocate_cidr`` (where Neutron takes the default subnet pool)
and a router to the default external network (``is_default``); ``?fields=dry-run`` only checks that it could be;
DELETE takes it down. Built in one transaction, once per project however many first requests race."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from stratus.db import network as db
from stratus.db.engine import Connection
from stratus.network.server import errors, ipam, networks, ports, quotas, routers
from stratus.network.server.resource import NetworkRequest, new_standard

NETWORK_NAME = "auto_allocated_network"
ROUTER_NAME = "auto_allocated_router"
SUBNET_NAME = "auto_allocated_subnet_v4"


def _project(req: NetworkRequest) -> str:
    project_id = req.path["project_id"]
    if project_id == "None":
        project_id = req.ctx.project_id
    if not req.ctx.is_admin and project_id != req.ctx.project_id:
        raise errors.NeutronError(403, "NotAuthorized", "User is not authorized to perform this action.")
    return str(project_id)


def _body(network_id: str, project_id: str) -> dict[str, Any]:
    return {"auto_allocated_topology": {"id": network_id, "tenant_id": project_id, "project_id": project_id}}


async def _default_external(conn: Connection) -> dict[str, Any]:
    found = [n for n in await db.find(conn, "network", is_default=True) if n["external"]]
    if not found:
        raise errors.conflict("AutoAllocationFailure", "Deployment error: No default router:external network.")
    return found[0]


async def get_topology(req: NetworkRequest) -> dict[str, Any]:
    project_id = _project(req)
    fields = [f for f in req.query.getlist("fields") if f]
    if fields and fields != ["dry-run"]:
        raise routers.bad("auto_allocate", "Unrecognized field")
    async with req.services.db.read() as conn:
        if fields:
            await _default_external(conn)
            if not req.services.options.auto_allocate_cidr:
                raise errors.conflict("AutoAllocationFailure", "Deployment error: No default subnetpools defined.")
            return _body("dry-run=pass", project_id)
        found = await db.topology_of(conn, project_id)
    if found is not None:
        return _body(found["network_id"], project_id)
    try:
        async with req.services.db.write() as conn:
            found = await db.topology_of(conn, project_id)
            if found is not None:
                return _body(found["network_id"], project_id)
            network_id, router_id = await _build(req, conn, project_id)
            await db.save_topology(conn, project_id, network_id, router_id)
    except IntegrityError:
        async with req.services.db.read() as conn:
            found = await db.topology_of(conn, project_id)
        if found is None:
            raise
        return _body(found["network_id"], project_id)
    if req.services.notifier is not None:
        await req.services.notifier.network_changed(network_id)
        await req.services.notifier.router_changed(router_id)
    return _body(network_id, project_id)


async def _build(req: NetworkRequest, conn: Connection, project_id: str) -> tuple[str, str]:
    external = await _default_external(conn)
    opts = req.services.options
    for resource in ("network", "subnet", "router"):
        await quotas.check(req, conn, resource, project_id)
    kind = opts.tenant_network_types[0] if opts.tenant_network_types else "local"
    physnet = networks.vlan_range(opts.network_vlan_range)[0] if kind == "vlan" else ""
    seg_id = await networks.allocate_segment(req, conn, kind, physnet) if kind in ("vxlan", "vlan") else None
    network = {"id": str(uuid.uuid4()), **new_standard(project_id), "name": NETWORK_NAME, "status": "ACTIVE",
               "admin_state_up": True, "shared": False, "external": False, "is_default": False,
               "mtu": opts.global_physnet_mtu - (networks.VXLAN_OVERHEAD if kind == "vxlan" else 0),
               "network_type": kind, "physical_network": physnet, "segmentation_id": seg_id, "description": "",
               "port_security_enabled": True, "availability_zone_hints": []}
    await db.insert_record(conn, "network", network)
    net = ipam.network(opts.auto_allocate_cidr)
    gateway = ipam.default_gateway(net)
    subnet = {"id": str(uuid.uuid4()), **new_standard(project_id), "name": SUBNET_NAME,
              "network_id": network["id"], "ip_version": net.version, "cidr": str(net), "gateway_ip": gateway,
              "enable_dhcp": True, "ipv6_ra_mode": None, "ipv6_address_mode": None,
              "allocation_pools": ipam.default_pools(net, gateway), "dns_nameservers": [], "host_routes": [],
              "service_types": [], "description": ""}
    await db.insert_record(conn, "subnet", subnet)
    router = {"id": str(uuid.uuid4()), **new_standard(project_id), "name": ROUTER_NAME, "description": "",
              "status": "ACTIVE", "admin_state_up": True, "gw_port_id": None, "enable_snat": True, "routes": [],
              "availability_zone_hints": []}
    await db.insert_record(conn, "router", router)
    await routers.set_gateway(req, conn, router, {"network_id": external["id"]})
    await db.update_record(conn, "router", router)
    await ports.make_port(req.services.options, conn, network, project_id, router["id"], routers.INTERFACE,
                          [{"subnet_id": subnet["id"], "ip_address": gateway}])
    return network["id"], router["id"]


async def delete_topology(req: NetworkRequest) -> None:
    project_id = _project(req)
    async with req.services.db.write() as conn:
        found = await db.topology_of(conn, project_id)
        if found is None:
            return
        network_id, router_id = found["network_id"], found["router_id"]
        in_use = [p for p in await db.find(conn, "port", network_id=network_id)
                  if not p["device_owner"].startswith(("network:dhcp", "network:router_interface"))]
        if in_use:
            raise errors.conflict("NetworkInUse", f"Unable to complete operation on network {network_id}. There are "
                                                  "one or more ports still in use on the network.")
        if router_id is not None:
            for port in await db.find(conn, "port", device_id=router_id):
                await db.delete_record(conn, "port", port["id"])
            await db.delete_record(conn, "router", router_id)
        await db.delete_topology(conn, project_id)
        await db.delete_record(conn, "network", network_id)
    if req.services.notifier is not None:
        await req.services.notifier.network_deleted(network_id, [])
        if router_id is not None:
            await req.services.notifier.router_deleted(router_id)
