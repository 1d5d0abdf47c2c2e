"""The compute API's ASGI application: version documents, the routes table, Nova's error bodies."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from stratus import sizelimit
from stratus.api import router, routes, versions
from stratus.api.errors import fault_response
from stratus.api.services import ApiServices
from stratus.identity.policy import Policy


class ProjectIdInPath:
    """Accept ``/v2.1/{project_id}/...`` as well as ``/v2.1/...`` (the project id is optional since 2.18).

    Pure ASGI: the project segment is removed before routing and kept in the scope for building links.
    """

    def __init__(self, app: ASGIApp, top_level: set[str]) -> None:
        self.app = app
        self.top_level = top_level

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            parts = scope["path"].split("/", 3)  # '', 'v2.1', segment, rest
            if len(parts) == 4 and parts[1] == "v2.1" and parts[2] and parts[3] and parts[2] not in self.top_level:
                scope = dict(scope)
                scope["stratus.url_project_id"] = parts[2]
                scope["path"] = "/v2.1/" + parts[3]
                scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return fault_response(404, "The resource could not be found.")
    return fault_response(exc.status_code, str(exc.detail))


def create_app(services: ApiServices) -> ASGIApp:
    table = routes.ROUTES
    app = Starlette(
        routes=[
            StarletteRoute("/", versions.root, methods=["GET"]),
            StarletteRoute("/v2.1", versions.v21, methods=["GET"]),
            StarletteRoute("/v2.1/", versions.v21, methods=["GET"]),
            StarletteRoute("/v2", versions.v20, methods=["GET"]),
            StarletteRoute("/v2/", versions.v20, methods=["GET"]),
            *router.build(table, services),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    # Nova's router matches paths exactly: ``/os-simple-tenant-usage/`` (an empty id) or ``DELETE /images/`` is a
    # 404, not a redirect to the collection (Starlette's default) that a client would follow into another resource
    app.router.redirect_slashes = False
    top_level = {r.path.split("/")[1] for r in table}
    # Nova's rules, with the operator's policy file of this configuration, for every request of this app; bodies
    # past [oslo_middleware] max_request_body_size refused before anything reads them
    return sizelimit.wrap(Policy(services.conf).wrap(ProjectIdInPath(app, top_level)), services.conf)
