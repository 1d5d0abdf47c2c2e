"""The Networking API's routes and request handling: authenticate (the deployment's authenticator, as the other
APIs), run the handler, answer JSON with Neutron's status codes (201 on create, 204 on delete) and every failure
as ``{"NeutronError": {...}}``. Routes are one table; Starlette answers unknown paths and methods."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from stratus import sizelimit
from stratus.api.errors import Fault
from stratus.context import generate_request_id
from stratus.db.engine import DB_UNAVAILABLE, is_disconnect
from stratus.identity.auth import Authenticator
from stratus.network import in_process
from stratus.network.server import (
    agents,
    auto_allocate,
    errors,
    extensions,
    floatingips,
    ip_availability,
    networks,
    ports,
    quotas,
    routers,
    security_groups,
    subnets,
    tags,
)
from stratus.network.server.resource import NetworkRequest, NetworkServices

LOG = logging.getLogger(__name__)
Handler = Callable[[NetworkRequest], Awaitable[dict[str, Any] | None]]
Endpoint = Callable[[Request], Awaitable[Response]]
BULK_MAX = 1000
RESOURCES = [("network", "networks"), ("subnet", "subnets"), ("port", "ports"),
             ("security_group", "security-groups"), ("security_group_rule", "security-group-rules"),
             ("router", "routers"), ("floatingip", "floatingips"), ("agent", "agents"), ("quota", "quotas")]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def error_response(error: errors.NeutronError) -> Response:
    return json_response(error.body(), error.code, error.headers)


class NetworkApi:
    def __init__(self, services: NetworkServices, auth: Authenticator, extra_routes: dict[str, dict[str, Handler]]
                 | None = None) -> None:
        self.services = services
        self.auth = auth

    def endpoint(self, handler: Handler, status: int = 200) -> Endpoint:
        async def run(request: Request) -> Response:
            request_id = ""  # the caller's context's (one made only for a request refused before it has one)
            try:
                try:
                    ctx = self.auth.authenticate(request.headers)
                except Fault as fault:  # keystonemiddleware's own body, as in front of Neutron
                    return json_response({"error": {"code": fault.code, "title": "Unauthorized" if fault.code == 401
                                                    else "Forbidden", "message": fault.message}}, fault.code,
                                         fault.headers)
                request_id = ctx.request_id
                # the decoded path of the scope: what request.url.path holds, without building the whole URL
                if "\x00" in request.scope["path"] or \
                        any("\x00" in v for _, v in request.query_params.multi_items()):
                    raise errors.bad_request("NUL characters are not allowed in the URL.")
                body = await handler(NetworkRequest(request, ctx, self.services))
                response = Response(status_code=204 if status == 200 else status) if body is None \
                    else json_response(body, status)
            except errors.NeutronError as exc:
                response = error_response(exc)
            except ClientDisconnect:
                LOG.info("%s %s: the client went away", request.method, request.url.path)
                response = error_response(errors.bad_request("The client closed the connection."))
            except Exception as exc:
                if is_disconnect(exc):
                    LOG.error("database unavailable for %s %s: %s", request.method, request.url.path, exc)
                    response = error_response(errors.NeutronError(503, "ServiceUnavailable", DB_UNAVAILABLE))
                else:
                    LOG.exception("%s %s failed unexpectedly", request.method, request.url.path)
                    response = error_response(errors.NeutronError(
                        500, "HTTPInternalServerError", "Request Failed: internal server error while processing "
                                                        "your request."))
            response.headers["x-openstack-request-id"] = request_id or generate_request_id()
            return response

        return run

    async def v2_root(self, req: NetworkRequest) -> dict[str, Any]:
        base = str(req.request.base_url).rstrip("/") + "/v2.0/"
        return {"resources": [{"name": name, "collection": collection,
                               "links": [{"href": base + collection, "rel": "self"}]}
                              for name, collection in RESOURCES]}

    async def list_extensions(self, req: NetworkRequest) -> dict[str, Any]:
        return {"extensions": extensions.extensions()}

    async def show_extension(self, req: NetworkRequest) -> dict[str, Any]:
        found = next((e for e in extensions.extensions() if e["alias"] == req.path["alias"]), None)
        if found is None:
            raise errors.NeutronError(404, "HTTPNotFound", f"Extension with alias {req.path['alias']} does not "
                                                           "exist")
        return {"extension": found}


async def _versions(request: Request) -> Response:
    href = str(request.base_url).rstrip("/") + "/v2.0/"
    return json_response({"versions": [{"id": "v2.0", "status": "CURRENT",
                                        "links": [{"href": href, "rel": "self"}]}]})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(errors.NeutronError(405, "HTTPMethodNotAllowed", "The server could not comply with "
                                                  "the request since it is either malformed or otherwise "
                                                  "incorrect.", dict(exc.headers or {})))
    return error_response(errors.RESOURCE_NOT_FOUND)


async def _internal_error(request: Request, exc: Exception) -> Response:
    LOG.error("%s %s failed: %r", request.method, request.url.path, exc)
    return error_response(errors.NeutronError(500, "HTTPInternalServerError", "Request Failed: internal server "
                                              "error while processing your request."))


def _dispatch(methods: dict[str, Endpoint]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return await methods["GET" if request.method == "HEAD" else request.method](request)
    return endpoint


def bulk(create: Handler, delete: Handler, singular: str, plural: str, key: str) -> Handler:
    """``create`` that also takes ``{plural: [...]}`` (Neutron's bulk create): all of them or, on the first
    refusal, none (those made are deleted again) and that refusal."""

    async def handler(req: NetworkRequest) -> dict[str, Any] | None:
        body = await req.body()
        if not (isinstance(body, dict) and plural in body and singular not in body):
            return await create(req)
        items = body[plural]
        if not isinstance(items, list) or not items:
            raise errors.bad_request("Resources required")
        if len(items) > BULK_MAX:
            raise errors.bad_request(f"Bulk creates take at most {BULK_MAX} {plural}")
        made: list[dict[str, Any]] = []
        try:
            for item in items:
                result = await create(req.derived({singular: item}))
                assert result is not None
                made.append(result[singular])
        except BaseException:
            for done in reversed(made):
                try:
                    await delete(req.derived(None, **{key: done["id"]}))
                except errors.NeutronError:
                    LOG.warning("bulk create: could not undo %s %s", singular, done["id"])
            raise
        return {plural: made}

    return handler


def routes_table(api: NetworkApi) -> dict[str, dict[str, Endpoint]]:
    e = api.endpoint

    def crud(collection: str, key: str, list_: Handler, create: Handler, show: Handler, update: Handler | None,
             delete: Handler) -> dict[str, dict[str, Endpoint]]:
        item = {"GET": e(show), "DELETE": e(delete, 204)}
        if update is not None:
            item["PUT"] = e(update)
        singular = next(name for name, plural in RESOURCES if plural == collection)
        plural = collection.replace("-", "_")
        return {f"/v2.0/{collection}": {"GET": e(list_), "POST": e(bulk(create, delete, singular, plural, key), 201)},
                f"/v2.0/{collection}/{{{key}}}": item}

    # no two paths match the same URL, so the order is only that of the tries: what each boot asks (Nova's ports,
    # networks, subnets and quota details) first
    return {
        **crud("ports", "port_id", ports.list_ports, ports.create_port, ports.show_port, ports.update_port,
               ports.delete_port),
        **crud("networks", "network_id", networks.list_networks, networks.create_network, networks.show_network,
               networks.update_network, networks.delete_network),
        **crud("subnets", "subnet_id", subnets.list_subnets, subnets.create_subnet, subnets.show_subnet,
               subnets.update_subnet, subnets.delete_subnet),
        "/v2.0/quotas/{project_id}/details": {"GET": e(quotas.show_details)},
        "/": {"GET": _versions},
        "/v2.0": {"GET": e(api.v2_root)},
        "/v2.0/": {"GET": e(api.v2_root)},
        "/v2.0/extensions": {"GET": e(api.list_extensions)},
        "/v2.0/extensions/{alias}": {"GET": e(api.show_extension)},
        **crud("security-groups", "security_group_id", security_groups.list_groups, security_groups.create_group,
               security_groups.show_group, security_groups.update_group, security_groups.delete_group),
        **crud("security-group-rules", "rule_id", security_groups.list_rules, security_groups.create_rule,
               security_groups.show_rule, None, security_groups.delete_rule),
        **crud("routers", "router_id", routers.list_routers, routers.create_router, routers.show_router,
               routers.update_router, routers.delete_router),
        "/v2.0/routers/{router_id}/add_router_interface": {"PUT": e(routers.add_interface)},
        "/v2.0/routers/{router_id}/remove_router_interface": {"PUT": e(routers.remove_interface)},
        **crud("floatingips", "floatingip_id", floatingips.list_floatingips, floatingips.create_floatingip,
               floatingips.show_floatingip, floatingips.update_floatingip, floatingips.delete_floatingip),
        "/v2.0/quotas": {"GET": e(quotas.list_quotas)},
        "/v2.0/quotas/{project_id}": {"GET": e(quotas.show_quota), "PUT": e(quotas.update_quota),
                                      "DELETE": e(quotas.delete_quota, 204)},
        "/v2.0/quotas/{project_id}/default": {"GET": e(quotas.show_defaults)},
        "/v2.0/auto-allocated-topology/{project_id}": {"GET": e(auto_allocate.get_topology),
                                                       "DELETE": e(auto_allocate.delete_topology, 204)},
        "/v2.0/{resources}/{resource_id}/tags": {"GET": e(tags.list_tags), "PUT": e(tags.replace_tags),
                                                 "DELETE": e(tags.remove_all, 204)},
        "/v2.0/{resources}/{resource_id}/tags/{tag}": {"GET": e(tags.check_tag, 204), "PUT": e(tags.add_tag, 201),
                                                       "DELETE": e(tags.remove_tag, 204)},
        "/v2.0/network-ip-availabilities": {"GET": e(ip_availability.list_availabilities)},
        "/v2.0/network-ip-availabilities/{network_id}": {"GET": e(ip_availability.show_availability)},
        "/v2.0/agents": {"GET": e(agents.list_agents)},
        "/v2.0/agents/{agent_id}": {"GET": e(agents.show_agent), "PUT": e(agents.update_agent),
                                    "DELETE": e(agents.delete_agent, 204)},
    }


def create_app(services: NetworkServices, auth: Authenticator) -> ASGIApp:
    """The Networking API; also registered, behind the same size limit and authentication as the HTTP server
    runs it, as the one this process serves on ``[network_server] listen``:``listen_port``, which Nova's side of
    the same process then asks in-process (``stratus.network.in_process``)."""
    table = routes_table(NetworkApi(services, auth))
    routes = [Route(path, _dispatch(methods), methods=list(methods)) for path, methods in table.items()]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _internal_error})
    options = services.options
    in_process.register(options.listen, options.listen_port, sizelimit.wrap(auth.wrap(app), services.conf))
    return app
