"""The service catalog: identity, compute, image and network, each with public, internal and admin endpoints in one
region, built from the configuration (read-only: there is no catalog to edit); and the ``/v3/services``,
``/v3/endpoints`` and ``/v3/regions`` lists over it.

Endpoint URLs use ``[identity] public_endpoint_host`` when set, else each API's listen address; an API listening on
every address (0.0.0.0, ::) is named by this machine's address on its default route, so the URL is reachable.
The image endpoint is the first of ``[glance] api_servers`` when a real Glance is configured.
"""

from __future__ import annotations

import dataclasses
import socket
import uuid
from typing import Any

from oslo_config import cfg
from starlette.responses import Response

from stratus.identity.common import IdentityRequest, json_response
from stratus.identity.errors import not_found

INTERFACES = ("public", "internal", "admin")
_NAMESPACE = uuid.UUID("0b5a6a53-6c39-4d67-a7a4-0ff3d0c53a1e")  # stable ids for the services and endpoints


@dataclasses.dataclass(frozen=True)
class Endpoint:
    id: str
    service_id: str
    interface: str
    region: str
    url: str


@dataclasses.dataclass(frozen=True)
class Service:
    id: str
    type: str
    name: str
    description: str
    endpoints: tuple[Endpoint, ...]


def _default_route_address() -> str:
    """This machine's address on its default route (no packet is sent), or loopback without one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the route
            return str(sock.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def endpoint_host(conf: cfg.ConfigOpts, listen: str) -> str:
    host = conf.identity.public_endpoint_host or listen
    if host in ("0.0.0.0", "::", ""):
        host = _default_route_address()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _service(region: str, kind: str, name: str, description: str, url: str) -> Service:
    service_id = uuid.uuid5(_NAMESPACE, f"service:{kind}").hex
    endpoints = tuple(Endpoint(uuid.uuid5(_NAMESPACE, f"endpoint:{kind}:{interface}:{region}").hex, service_id,
                               interface, region, url) for interface in INTERFACES)
    return Service(service_id, kind, name, description, endpoints)


def build(conf: cfg.ConfigOpts) -> list[Service]:
    region = conf.identity.region_name
    identity = f"http://{endpoint_host(conf, conf.identity.listen)}:{conf.identity.listen_port}/v3"
    compute = f"http://{endpoint_host(conf, conf.osapi_compute_listen)}:{conf.osapi_compute_listen_port}/v2.1"
    image = (conf.glance.api_servers[0].rstrip("/") if conf.glance.api_servers else
             f"http://{endpoint_host(conf, conf.image_store.listen)}:{conf.image_store.listen_port}")
    network = f"http://{endpoint_host(conf, conf.network_server.listen)}:{conf.network_server.listen_port}"
    return [_service(region, "identity", "keystone", "Identity (embedded Keystone v3 subset)", identity),
            _service(region, "compute", "nova", "Compute", compute),
            _service(region, "image", "glance", "Image", image),
            _service(region, "network", "neutron", "Networking (embedded Neutron v2.0 subset)", network)]


def identity_url(services: list[Service]) -> str:
    """The public identity endpoint (``…/v3``)."""
    return next(e.url for s in services if s.type == "identity" for e in s.endpoints if e.interface == "public")


def token_catalog(services: list[Service]) -> list[dict[str, Any]]:
    """The ``catalog`` of a token body."""
    return [{"id": s.id, "type": s.type, "name": s.name,
             "endpoints": [{"id": e.id, "interface": e.interface, "region": e.region, "region_id": e.region,
                            "url": e.url} for e in s.endpoints]} for s in services]


# --- /v3/services, /v3/endpoints, /v3/regions ---------------------------------------------------------------------
def _service_view(req: IdentityRequest, s: Service) -> dict[str, Any]:
    return {"id": s.id, "type": s.type, "name": s.name, "description": s.description, "enabled": True,
            "links": req.link("services", s.id)}


def _endpoint_view(req: IdentityRequest, e: Endpoint) -> dict[str, Any]:
    return {"id": e.id, "service_id": e.service_id, "interface": e.interface, "region": e.region,
            "region_id": e.region, "url": e.url, "enabled": True, "links": req.link("endpoints", e.id)}


async def list_services(req: IdentityRequest) -> Response:
    req.authorize("identity:list_services")
    found = [s for s in req.services.catalog if req.query.get("type", s.type) == s.type
             and req.query.get("name", s.name) == s.name]
    return json_response({"services": [_service_view(req, s) for s in found], "links": req.collection_links()})


async def show_service(req: IdentityRequest) -> Response:
    req.authorize("identity:get_service")
    service = next((s for s in req.services.catalog if s.id == req.path["service_id"]), None)
    if service is None:
        raise not_found("service", req.path["service_id"])
    return json_response({"service": _service_view(req, service)})


async def list_endpoints(req: IdentityRequest) -> Response:
    req.authorize("identity:list_endpoints")
    q = req.query
    found = [e for s in req.services.catalog for e in s.endpoints
             if q.get("service_id", e.service_id) == e.service_id and q.get("interface", e.interface) == e.interface
             and q.get("region_id", e.region) == e.region]
    return json_response({"endpoints": [_endpoint_view(req, e) for e in found], "links": req.collection_links()})


async def show_endpoint(req: IdentityRequest) -> Response:
    req.authorize("identity:get_endpoint")
    endpoint = next((e for s in req.services.catalog for e in s.endpoints if e.id == req.path["endpoint_id"]), None)
    if endpoint is None:
        raise not_found("endpoint", req.path["endpoint_id"])
    return json_response({"endpoint": _endpoint_view(req, endpoint)})


def _region_view(req: IdentityRequest, region: str) -> dict[str, Any]:
    return {"id": region, "description": "", "parent_region_id": None, "links": req.link("regions", region)}


async def list_regions(req: IdentityRequest) -> Response:
    req.authorize("identity:list_regions")
    region = req.services.conf.identity.region_name
    return json_response({"regions": [_region_view(req, region)], "links": req.collection_links()})


async def show_region(req: IdentityRequest) -> Response:
    req.authorize("identity:get_region")
    if req.path["region_id"] != req.services.conf.identity.region_name:
        raise not_found("region", req.path["region_id"])
    return json_response({"region": _region_view(req, req.path["region_id"])})
