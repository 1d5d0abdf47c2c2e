"""The compute API's ASGI application: version documents, the path table, Nova's error bodies.

One ASGI callable serves every request: it takes the optional project id out of the path, makes the policy of
this configuration the current one, finds the path in the table (one lookup, stratus/api/router.py) and runs
its endpoint. It used to be Starlette's application (its error and exception middleware, its router walking a
hundred routes, each endpoint wrapped in its exception handling) behind two middlewares of ours: the same
answers, at a fraction of the work per request (``benchmarks/api_layer.py``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from stratus import sizelimit
from stratus.api import router, routes, versions
from stratus.api.errors import fault_response
from stratus.api.services import ApiServices
from stratus.identity import policy as policy_mod
from stratus.identity.policy import Policy

#: the methods of a version document (Starlette's ``Route`` answered HEAD wherever it answered GET)
_GET = frozenset({"GET", "HEAD"})


class ComputeApp:
    """The compute API (see the module's docstring)."""

    def __init__(self, services: ApiServices) -> None:
        table = routes.ROUTES
        self.policy = Policy(services.conf)
        self.paths = router.PathTable([
            router.PathEntry("/", versions.root, _GET, (), with_params=False),
            router.PathEntry("/v2.1", versions.v21, _GET, (), with_params=False),
            router.PathEntry("/v2.1/", versions.v21, _GET, (), with_params=False),
            router.PathEntry("/v2", versions.v20, _GET, (), with_params=False),
            router.PathEntry("/v2/", versions.v20, _GET, (), with_params=False),
            *router.build(table, services),
        ])
        #: the first segments of the table's paths: ``/v2.1/servers`` is never read as project ``servers``
        self.top_level = {r.path.split("/")[1] for r in table}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # uvicorn runs no lifespan here (lifespan="off"); nothing else is served
            return
        path = scope["path"]
        # ``/v2.1/{project_id}/...`` as well as ``/v2.1/...`` (the project id is optional since 2.18): the project
        # segment is removed before routing and kept in the scope for building links
        parts = path.split("/", 3)  # '', 'v2.1', segment, rest
        if len(parts) == 4 and parts[1] == "v2.1" and parts[2] and parts[3] and parts[2] not in self.top_level:
            scope = dict(scope)
            scope["stratus.url_project_id"] = parts[2]
            scope["path"] = path = "/v2.1/" + parts[3]
            scope["raw_path"] = path.encode()
        reset = self.policy.use()  # Nova's rules of this configuration for everything the request runs
        try:
            found = self.paths.lookup(path)
            if found is None:
                response = fault_response(404, "The resource could not be found.")
            elif scope["method"] not in found[0].methods:
                response = fault_response(405, "Method Not Allowed")
            else:
                entry, params = found
                scope["path_params"] = params
                request = Request(scope, receive, send)
                response = await (entry.endpoint(request, params) if entry.with_params else entry.endpoint(request))
            await response(scope, receive, send)
        finally:
            policy_mod.reset(reset)


def create_app(services: ApiServices) -> ASGIApp:
    # bodies past [oslo_middleware] max_request_body_size refused before anything reads them
    return sizelimit.wrap(ComputeApp(services), services.conf)
