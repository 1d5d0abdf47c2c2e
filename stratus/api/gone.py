"""The routes Nova removed but still answers, at every microversion, with 410 Gone (its controllers raise
``HTTPGone``): nova-network's APIs (fixed IPs, bulk floating IPs, floating IP DNS, network create, delete and
association, default security group rules, virtual interfaces, fping), cells v1, certificates, cloudpipe,
guest agents and the XenAPI-era consoles. A client still calling them learns the API is gone for good, not that
it mistyped a path (404).

The body is Nova's: webob's explanation under ``computeFault`` (Nova has no fault name for 410). Actions of the
action routes that never existed are Nova's 400 as for any action route.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.api.common import dispatch_action
from stratus.api.errors import Fault
from stratus.api.request import ApiRequest
from stratus.api.router import Route

GONE = "This resource is no longer available.  No forwarding address is given."

#: path -> methods, as nova/api/openstack/compute/routes.py maps them to the removed controllers
_GONE_ROUTES: dict[str, tuple[str, ...]] = {
    "/os-agents": ("GET", "POST"),
    "/os-agents/{id}": ("PUT", "DELETE"),
    "/os-cells": ("GET", "POST"),
    "/os-cells/capacities": ("GET",),
    "/os-cells/detail": ("GET",),
    "/os-cells/info": ("GET",),
    "/os-cells/sync_instances": ("POST",),
    "/os-cells/{id}": ("GET", "PUT", "DELETE"),
    "/os-cells/{id}/capacities": ("GET",),
    "/os-certificates": ("POST",),
    "/os-certificates/{id}": ("GET",),
    "/os-cloudpipe": ("GET", "POST"),
    "/os-cloudpipe/{id}": ("PUT",),
    "/os-fixed-ips/{id}": ("GET",),
    "/os-floating-ip-dns": ("GET",),
    "/os-floating-ip-dns/{id}": ("PUT", "DELETE"),
    "/os-floating-ip-dns/{domain_id}/entries/{id}": ("GET", "PUT", "DELETE"),
    "/os-floating-ips-bulk": ("GET", "POST"),
    "/os-floating-ips-bulk/{id}": ("GET", "PUT"),
    "/os-fping": ("GET",),
    "/os-fping/{id}": ("GET",),
    "/os-networks": ("POST",),
    "/os-networks/add": ("POST",),
    "/os-networks/{network_id}": ("DELETE",),
    "/os-security-group-default-rules": ("GET", "POST"),
    "/os-security-group-default-rules/{id}": ("GET", "DELETE"),
    "/os-tenant-networks": ("POST",),
    "/os-tenant-networks/{network_id}": ("DELETE",),
    "/servers/{server_id}/consoles": ("GET", "POST"),
    "/servers/{server_id}/consoles/{id}": ("GET", "DELETE"),
    "/servers/{server_id}/os-virtual-interfaces": ("GET",),
}
#: the action routes of removed controllers: these action names are gone, any other is no action at all
_GONE_ACTIONS: dict[str, tuple[str, ...]] = {
    "/os-fixed-ips/{id}/action": ("reserve", "unreserve"),
    "/os-networks/{id}/action": ("disassociate", "disassociate_host", "disassociate_project", "associate_host"),
}


#: GET of these paths is a 404 as for any unknown path rather than the 405 the path's gone methods would make of
#: it: the os-networks and os-tenant-networks proxies after their last version (2.35; stratus/api/network_proxies.py
#: serves them until then)
_NOT_SERVED = (("/os-networks", "2.36"), ("/os-networks/{network_id}", "2.36"), ("/os-tenant-networks", "2.36"),
               ("/os-tenant-networks/{network_id}", "2.36"))


async def gone(req: ApiRequest) -> Response:
    raise Fault(410, GONE)


async def not_served(req: ApiRequest) -> Response:
    raise Fault(404, "The resource could not be found.")


async def _gone_action(req: ApiRequest, body: dict[str, Any]) -> Response:
    raise Fault(410, GONE)


def _action_route(names: tuple[str, ...]) -> Any:
    handlers = dict.fromkeys(names, _gone_action)

    async def action(req: ApiRequest) -> Response:
        return await dispatch_action(req, handlers)

    return action


ROUTES: list[Route] = [
    *(Route(path, method, gone) for path, methods in _GONE_ROUTES.items() for method in methods),
    *(Route(path, "POST", _action_route(names)) for path, names in _GONE_ACTIONS.items()),
    *(Route(path, "GET", not_served, min_version=since) for path, since in _NOT_SERVED),
]
