"""The embedded identity API on port 5000: Keystone's version documents and a Keystone v3 subset (tokens, projects,
users, roles and grants, role assignments, domains, application credentials, the read-only catalog).

Routes are one table: path, method, handler, and whether the route needs a token (``X-Auth-Token``). Every
failure is Keystone's error body; a 401 carries ``WWW-Authenticate: Keystone uri=…`` as Keystone's does. With
``[api] auth_strategy`` other than ``embedded`` only the version documents are served.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stratus.context import generate_request_id
from stratus.identity import app_credentials, auth_tokens, catalog, domains, projects, roles, users
from stratus.identity.common import IdentityRequest, IdentityServices, json_response
from stratus.identity.errors import IdentityError, error_response, unauthorized

LOG = logging.getLogger(__name__)
UPDATED = "2022-09-07T00:00:00Z"
MEDIA_TYPES = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]

Handler = Callable[[IdentityRequest], Awaitable[Response]]
PUBLIC, TOKEN = False, True  # whether a route needs a valid X-Auth-Token

_USER_ROLE = "/users/{user_id}/roles"
ROUTES: list[tuple[str, str, Handler, bool]] = [
    ("/v3/auth/tokens", "POST", auth_tokens.issue, PUBLIC),
    ("/v3/auth/tokens", "GET", auth_tokens.validate, TOKEN),
    ("/v3/auth/tokens", "HEAD", auth_tokens.check, TOKEN),
    ("/v3/auth/tokens", "DELETE", auth_tokens.revoke, TOKEN),
    ("/v3/auth/projects", "GET", auth_tokens.auth_projects, TOKEN),
    ("/v3/auth/domains", "GET", auth_tokens.auth_domains, TOKEN),
    ("/v3/auth/catalog", "GET", auth_tokens.auth_catalog, TOKEN),
    ("/v3/domains", "GET", domains.index, TOKEN),
    ("/v3/domains", "POST", domains.create, TOKEN),
    ("/v3/domains/{domain_id}", "GET", domains.show, TOKEN),
    ("/v3/domains/{domain_id}", "PATCH", domains.update, TOKEN),
    ("/v3/domains/{domain_id}", "DELETE", domains.delete, TOKEN),
    ("/v3/projects", "GET", projects.index, TOKEN),
    ("/v3/projects", "POST", projects.create, TOKEN),
    ("/v3/projects/{project_id}", "GET", projects.show, TOKEN),
    ("/v3/projects/{project_id}", "PATCH", projects.update, TOKEN),
    ("/v3/projects/{project_id}", "DELETE", projects.delete, TOKEN),
    ("/v3/users", "GET", users.index, TOKEN),
    ("/v3/users", "POST", users.create, TOKEN),
    ("/v3/users/{user_id}", "GET", users.show, TOKEN),
    ("/v3/users/{user_id}", "PATCH", users.update, TOKEN),
    ("/v3/users/{user_id}", "DELETE", users.delete, TOKEN),
    ("/v3/users/{user_id}/password", "POST", users.change_password, PUBLIC),
    ("/v3/users/{user_id}/projects", "GET", users.list_projects, TOKEN),
    ("/v3/users/{user_id}/application_credentials", "GET", app_credentials.index, TOKEN),
    ("/v3/users/{user_id}/application_credentials", "POST", app_credentials.create, TOKEN),
    ("/v3/users/{user_id}/application_credentials/{credential_id}", "GET", app_credentials.show, TOKEN),
    ("/v3/users/{user_id}/application_credentials/{credential_id}", "DELETE", app_credentials.delete, TOKEN),
    ("/v3/roles", "GET", roles.index, TOKEN),
    ("/v3/roles", "POST", roles.create, TOKEN),
    ("/v3/roles/{role_id}", "GET", roles.show, TOKEN),
    ("/v3/roles/{role_id}", "DELETE", roles.delete, TOKEN),
    ("/v3/projects/{project_id}" + _USER_ROLE, "GET", roles.list_grants, TOKEN),
    ("/v3/projects/{project_id}" + _USER_ROLE + "/{role_id}", "PUT", roles.grant, TOKEN),
    ("/v3/projects/{project_id}" + _USER_ROLE + "/{role_id}", "GET", roles.check_grant, TOKEN),
    ("/v3/projects/{project_id}" + _USER_ROLE + "/{role_id}", "DELETE", roles.revoke_grant, TOKEN),
    ("/v3/domains/{domain_id}" + _USER_ROLE, "GET", roles.list_grants, TOKEN),
    ("/v3/domains/{domain_id}" + _USER_ROLE + "/{role_id}", "PUT", roles.grant, TOKEN),
    ("/v3/domains/{domain_id}" + _USER_ROLE + "/{role_id}", "GET", roles.check_grant, TOKEN),
    ("/v3/domains/{domain_id}" + _USER_ROLE + "/{role_id}", "DELETE", roles.revoke_grant, TOKEN),
    ("/v3/role_assignments", "GET", roles.list_assignments, TOKEN),
    ("/v3/services", "GET", catalog.list_services, TOKEN),
    ("/v3/services/{service_id}", "GET", catalog.show_service, TOKEN),
    ("/v3/endpoints", "GET", catalog.list_endpoints, TOKEN),
    ("/v3/endpoints/{endpoint_id}", "GET", catalog.show_endpoint, TOKEN),
    ("/v3/regions", "GET", catalog.list_regions, TOKEN),
    ("/v3/regions/{region_id}", "GET", catalog.show_region, TOKEN),
]


def _v3(request: Request) -> dict[str, object]:
    base = str(request.base_url).rstrip("/")
    return {"id": "v3.14", "status": "stable", "updated": UPDATED, "links": [{"rel": "self", "href": f"{base}/v3/"}],
            "media-types": MEDIA_TYPES}


async def versions(request: Request) -> Response:
    return json_response({"versions": {"values": [_v3(request)]}}, status=300)


async def v3(request: Request) -> Response:
    return json_response({"version": _v3(request)})


def _dispatcher(services: IdentityServices, methods: dict[str, tuple[Handler, bool]]
                ) -> Callable[[Request], Awaitable[Response]]:
    """One path's handlers by method: authenticate the caller, run, and write every failure as Keystone does."""

    async def endpoint(request: Request) -> Response:
        method = request.method
        if method == "HEAD" and "HEAD" not in methods:
            method = "GET"  # Keystone answers HEAD wherever it answers GET
        try:
            if method not in methods:
                raise IdentityError(405, "The method specified is not allowed for this resource.")
            handler, needs_token = methods[method]
            caller = None
            if needs_token:
                token_id = request.headers.get("x-auth-token")
                caller = await services.tokens.validate(token_id) if token_id else None
                if caller is None:
                    raise unauthorized()
            response = await handler(IdentityRequest(request, services, caller))
            if method not in ("GET", "HEAD") and handler is not auth_tokens.issue:
                services.tokens.forget_cached()  # a change here may have revoked tokens in bulk
        except IdentityError as exc:
            challenge = {"WWW-Authenticate": f'Keystone uri="{str(request.base_url).rstrip("/")}"'}
            response = error_response(exc.code, exc.message, challenge if exc.code == 401 else None)
        except Exception:
            LOG.exception("unexpected identity API error on %s %s", request.method, request.url.path)
            response = error_response(500, "An unexpected error prevented the server from fulfilling your request.")
        response.headers["x-openstack-request-id"] = generate_request_id()
        return response

    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(404, "The resource could not be found.")
    return error_response(exc.status_code, str(exc.detail))


async def _discovery_only(request: Request) -> Response:
    return error_response(501, "The embedded identity service is off ([api] auth_strategy is not 'embedded'); it "
                               "answers version discovery only.")


def create_app(services: IdentityServices | None = None) -> Starlette:
    """The identity application; without ``services`` (auth_strategy noauth2 or keystone), discovery only."""
    routes = [Route("/", versions), Route("/v3", v3), Route("/v3/", v3)]
    if services is None:
        routes.append(Route("/v3/{rest:path}", _discovery_only, methods=["GET", "POST", "PUT", "PATCH", "HEAD",
                                                                          "DELETE"]))
    else:
        by_path: dict[str, dict[str, tuple[Handler, bool]]] = defaultdict(dict)
        for path, method, handler, needs_token in ROUTES:
            by_path[path][method] = (handler, needs_token)
        every = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        routes += [Route(path, _dispatcher(services, methods), methods=every) for path, methods in by_path.items()]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
