"""Routes as one table: path, method, handler, version range. Builds the Starlette routes and the 404/405s."""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from stratus import exception
from stratus.api import microversion
from stratus.api.errors import Fault, fault_response
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest
from stratus.context import generate_request_id

if TYPE_CHECKING:
    from stratus.api.services import ApiServices

LOG = logging.getLogger(__name__)
Handler = Callable[[ApiRequest], Awaitable[Response]]


@dataclasses.dataclass(frozen=True)
class Route:
    path: str
    method: str
    handler: Handler
    min_version: str = "2.1"
    max_version: str | None = None

    def matches(self, version: APIVersion) -> bool:
        if version < APIVersion.parse(self.min_version):
            return False
        return self.max_version is None or version <= APIVersion.parse(self.max_version)


def _dispatcher(path_routes: list[Route], services: ApiServices) -> Callable[[Request], Awaitable[Response]]:
    by_method: dict[str, list[Route]] = defaultdict(list)
    for route in path_routes:
        by_method[route.method].append(route)

    async def endpoint(request: Request) -> Response:
        version = microversion.MIN_VERSION
        request_id = ""
        try:
            version = microversion.from_headers(request.headers)
            candidates = by_method.get(request.method)
            if candidates is None:
                raise Fault(405, "The method specified is not allowed for this resource.")
            route = next((r for r in candidates if r.matches(version)), None)
            if route is None:
                raise Fault(404, "The resource could not be found.")
            context = services.auth.authenticate(request.headers)
            request_id = context.request_id
            api_request = ApiRequest(raw=request, context=context, version=version, services=services,
                                     path=dict(request.path_params),
                                     url_project_id=request.scope.get("stratus.url_project_id"))
            response = await route.handler(api_request)
        except Fault as fault:
            response = fault_response(fault.code, fault.message, fault.headers)
        except exception.NotFound as exc:
            response = fault_response(404, exc.message)
        except Exception:
            LOG.exception("unexpected API error on %s %s", request.method, request.url.path)
            response = fault_response(500, "Unexpected API Error. Please report this at "
                                           "the Stratus issue tracker and attach the API log if possible.")
        response.headers.update(microversion.response_headers(version))
        # Nova's request id, the one instance actions record, in both of its headers (clients log it; tempest
        # waits on servers with it)
        request_id = request_id or generate_request_id()
        response.headers["x-openstack-request-id"] = request_id
        response.headers["x-compute-request-id"] = request_id
        return response

    return endpoint


def build(routes: list[Route], services: ApiServices, prefix: str = "/v2.1") -> list[StarletteRoute]:
    by_path: dict[str, list[Route]] = defaultdict(list)
    for route in routes:
        by_path[route.path].append(route)
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return [StarletteRoute(prefix + path, _dispatcher(rs, services), methods=methods)
            for path, rs in by_path.items()]
