"""The embedded identity API on port 5000: Keystone's version documents and a Keystone v3 subset (tokens, projects,
users, roles and grants, role assignments, domains, application credentials, the read-only catalog).

Routes are one table: path, method, handler, whether the route needs a token (``X-Auth-Token``), and what its
request may carry (``stratus.identity.schema``: the body schema, the known query parameters), which the one
validation layer (``stratus.identity.validation``) enforces. Every failure is Keystone's error body; a 401 carries
``WWW-Authenticate: Keystone uri=…`` as Keystone's does. With ``[api] auth_strategy`` other than ``embedded`` only
the version documents are served.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stratus.context import generate_request_id
from stratus.db.engine import DB_UNAVAILABLE, is_disconnect
from stratus.identity import app_credentials, auth_tokens, catalog, domains, projects, roles, schema, users, validation
from stratus.identity.common import IdentityRequest, IdentityServices, json_response
from stratus.identity.errors import IdentityError, error_response, unauthorized
from stratus.identity.validation import Body

LOG = logging.getLogger(__name__)
UPDATED = "2022-09-07T00:00:00Z"
MEDIA_TYPES = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]

Handler = Callable[[IdentityRequest], Awaitable[Response]]
PUBLIC, TOKEN = False, True  # whether a route needs a valid X-Auth-Token


@dataclasses.dataclass(frozen=True)
class Spec:
    """One method of one path: its handler, whether it needs a token, and what its request may carry (the body
    schema its handler reads through ``IdentityRequest.body``, the query parameters it knows)."""

    handler: Handler
    needs_token: bool
    body: Body | None = None
    query: Mapping[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


_USER_ROLE = "/users/{user_id}/roles"
_CREDENTIALS = "/v3/users/{user_id}/application_credentials"
ROUTES: list[tuple[str, str, Spec]] = [
    ("/v3/auth/tokens", "POST", Spec(auth_tokens.issue, PUBLIC, schema.TOKEN_ISSUE, schema.TOKEN_QUERY)),
    ("/v3/auth/tokens", "GET", Spec(auth_tokens.validate, TOKEN, query=schema.TOKEN_QUERY)),
    ("/v3/auth/tokens", "HEAD", Spec(auth_tokens.check, TOKEN, query=schema.TOKEN_QUERY)),
    ("/v3/auth/tokens", "DELETE", Spec(auth_tokens.revoke, TOKEN)),
    ("/v3/auth/projects", "GET", Spec(auth_tokens.auth_projects, TOKEN)),
    ("/v3/auth/domains", "GET", Spec(auth_tokens.auth_domains, TOKEN)),
    ("/v3/auth/catalog", "GET", Spec(auth_tokens.auth_catalog, TOKEN)),
    ("/v3/domains", "GET", Spec(domains.index, TOKEN, query=schema.DOMAINS_QUERY)),
    ("/v3/domains", "POST", Spec(domains.create, TOKEN, schema.DOMAIN_CREATE)),
    ("/v3/domains/{domain_id}", "GET", Spec(domains.show, TOKEN)),
    ("/v3/domains/{domain_id}", "PATCH", Spec(domains.update, TOKEN, schema.DOMAIN_UPDATE)),
    ("/v3/domains/{domain_id}", "DELETE", Spec(domains.delete, TOKEN)),
    ("/v3/projects", "GET", Spec(projects.index, TOKEN, query=schema.PROJECTS_QUERY)),
    ("/v3/projects", "POST", Spec(projects.create, TOKEN, schema.PROJECT_CREATE)),
    ("/v3/projects/{project_id}", "GET", Spec(projects.show, TOKEN)),
    ("/v3/projects/{project_id}", "PATCH", Spec(projects.update, TOKEN, schema.PROJECT_UPDATE)),
    ("/v3/projects/{project_id}", "DELETE", Spec(projects.delete, TOKEN)),
    ("/v3/users", "GET", Spec(users.index, TOKEN, query=schema.USERS_QUERY)),
    ("/v3/users", "POST", Spec(users.create, TOKEN, schema.USER_CREATE)),
    ("/v3/users/{user_id}", "GET", Spec(users.show, TOKEN)),
    ("/v3/users/{user_id}", "PATCH", Spec(users.update, TOKEN, schema.USER_UPDATE)),
    ("/v3/users/{user_id}", "DELETE", Spec(users.delete, TOKEN)),
    ("/v3/users/{user_id}/password", "POST", Spec(users.change_password, PUBLIC, schema.PASSWORD_CHANGE)),
    ("/v3/users/{user_id}/projects", "GET", Spec(users.list_projects, TOKEN)),
    (_CREDENTIALS, "GET", Spec(app_credentials.index, TOKEN, query=schema.NAME_QUERY)),
    (_CREDENTIALS, "POST", Spec(app_credentials.create, TOKEN, schema.APPLICATION_CREDENTIAL_CREATE)),
    (_CREDENTIALS + "/{credential_id}", "GET", Spec(app_credentials.show, TOKEN)),
    (_CREDENTIALS + "/{credential_id}", "DELETE", Spec(app_credentials.delete, TOKEN)),
    ("/v3/roles", "GET", Spec(roles.index, TOKEN, query=schema.ROLES_QUERY)),
    ("/v3/roles", "POST", Spec(roles.create, TOKEN, schema.ROLE_CREATE)),
    ("/v3/roles/{role_id}", "GET", Spec(roles.show, TOKEN)),
    ("/v3/roles/{role_id}", "DELETE", Spec(roles.delete, TOKEN)),
    ("/v3/projects/{project_id}" + _USER_ROLE, "GET", Spec(roles.list_grants, TOKEN)),
    ("/v3/projects/{project_id}" + _USER_ROLE + "/{role_id}", "PUT", Spec(roles.grant, TOKEN)),
    ("/v3/projects/{project_id}" + _USER_ROLE + "/{role_id}", "GET", Spec(roles.check_grant, TOKEN)),
    ("/v3/projects/{project_id}" + _USER_ROLE + "/{role_id}", "DELETE", Spec(roles.revoke_grant, TOKEN)),
    ("/v3/domains/{domain_id}" + _USER_ROLE, "GET", Spec(roles.list_grants, TOKEN)),
    ("/v3/domains/{domain_id}" + _USER_ROLE + "/{role_id}", "PUT", Spec(roles.grant, TOKEN)),
    ("/v3/domains/{domain_id}" + _USER_ROLE + "/{role_id}", "GET", Spec(roles.check_grant, TOKEN)),
    ("/v3/domains/{domain_id}" + _USER_ROLE + "/{role_id}", "DELETE", Spec(roles.revoke_grant, TOKEN)),
    ("/v3/role_assignments", "GET", Spec(roles.list_assignments, TOKEN, query=schema.ASSIGNMENTS_QUERY)),
    ("/v3/services", "GET", Spec(catalog.list_services, TOKEN, query=schema.SERVICES_QUERY)),
    ("/v3/services/{service_id}", "GET", Spec(catalog.show_service, TOKEN)),
    ("/v3/endpoints", "GET", Spec(catalog.list_endpoints, TOKEN, query=schema.ENDPOINTS_QUERY)),
    ("/v3/endpoints/{endpoint_id}", "GET", Spec(catalog.show_endpoint, TOKEN)),
    ("/v3/regions", "GET", Spec(catalog.list_regions, TOKEN)),
    ("/v3/regions/{region_id}", "GET", Spec(catalog.show_region, TOKEN)),
]


def _v3(request: Request) -> dict[str, object]:
    base = str(request.base_url).rstrip("/")
    return {"id": "v3.14", "status": "stable", "updated": UPDATED, "links": [{"rel": "self", "href": f"{base}/v3/"}],
            "media-types": MEDIA_TYPES}


async def versions(request: Request) -> Response:
    return json_response({"versions": {"values": [_v3(request)]}}, status=300)


async def v3(request: Request) -> Response:
    return json_response({"version": _v3(request)})


def _dispatcher(services: IdentityServices, methods: dict[str, Spec]) -> Callable[[Request], Awaitable[Response]]:
    """One path's handlers by method: authenticate the caller, check the path and query, run (the handler reads
    its body through the route's schema), and write every failure as Keystone does."""

    async def endpoint(request: Request) -> Response:
        method = request.method
        if method == "HEAD" and "HEAD" not in methods:
            method = "GET"  # Keystone answers HEAD wherever it answers GET
        try:
            if method not in methods:
                raise IdentityError(405, "The method specified is not allowed for this resource.")
            spec = methods[method]
            caller = None
            if spec.needs_token:
                token_id = request.headers.get("x-auth-token")
                caller = await services.tokens.validate(token_id) if token_id else None
                if caller is None:
                    raise unauthorized()
            validation.check_path(request.path_params)
            validation.check_query(spec.query, request.query_params)
            response = await spec.handler(IdentityRequest(request, services, caller, spec.body))
            if method not in ("GET", "HEAD") and spec.handler is not auth_tokens.issue:
                services.tokens.forget_cached()  # a change here may have revoked tokens in bulk
        except IdentityError as exc:
            challenge = {"WWW-Authenticate": f'Keystone uri="{str(request.base_url).rstrip("/")}"'}
            response = error_response(exc.code, exc.message, challenge if exc.code == 401 else None)
        except Exception as exc:
            if is_disconnect(exc):  # the database server is away: a 503 the client may retry, as compute's
                LOG.error("database unavailable for %s %s: %s", request.method, request.url.path, exc)
                response = error_response(503, DB_UNAVAILABLE)
            else:
                LOG.exception("unexpected identity API error on %s %s", request.method, request.url.path)
                response = error_response(500, "An unexpected error prevented the server from fulfilling your "
                                               "request.")
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
        by_path: dict[str, dict[str, Spec]] = defaultdict(dict)
        for path, method, spec in ROUTES:
            by_path[path][method] = spec
        every = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        routes += [Route(path, _dispatcher(services, methods), methods=every) for path, methods in by_path.items()]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
