"""Who is calling: the seam where request headers become a ``RequestContext``.

``NoAuth2`` reads the caller from the token text itself. ``TokenAuth`` validates Keystone tokens issued by the
embedded identity service against the token table; ``KeystoneAuth`` (``stratus.identity.keystone``) has a real
Keystone validate them through keystonemiddleware. Both need to wait (a query, a worker thread), while the routers
ask ``authenticate(headers)`` synchronously; so such an authenticator (``PerRequestAuth``) ``wrap``s an application
in a small pure-ASGI middleware that resolves the caller once per request (``identify_request``) and leaves the
answer in a context variable, which ``authenticate`` returns within that same request.
"""

from __future__ import annotations

import abc
import contextvars
import logging
import re
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from stratus.api.errors import Fault
from stratus.context import RequestContext, generate_request_id
from stratus.identity.tokens import TokenStore

LOG = logging.getLogger(__name__)


#: the only inbound request id taken (oslo.middleware's ``request_id.ID_FORMAT``): anything else, a long or
#: odd value included, would be written into instance actions and echoed in headers, so it gets a fresh one
_REQUEST_ID = re.compile(r"^req-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")


def _request_id(headers: Mapping[str, str]) -> str:
    request_id = headers.get("x-openstack-request-id") or ""
    return request_id if _REQUEST_ID.match(request_id) else generate_request_id()


class Authenticator(abc.ABC):
    @abc.abstractmethod
    def authenticate(self, headers: Mapping[str, str]) -> RequestContext:
        """The caller's context, or a 401 Fault."""

    async def identify(self, headers: Mapping[str, str]) -> RequestContext:
        """The same, for callers that can await (it may read the database)."""
        return self.authenticate(headers)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` ready for this authenticator (unchanged unless it needs a middleware)."""
        return app


class NoAuth2(Authenticator):
    """Nova's ``noauth2``: the token ``user:project`` names the caller; user ``admin`` is an admin.

    For tests, benchmarks and a private all-in-one; never for a cloud others can reach.
    """

    def authenticate(self, headers: Mapping[str, str]) -> RequestContext:
        token = headers.get("x-auth-token") or headers.get("x-auth-user")
        if not token:
            raise Fault(401, "Authentication required")
        user_id, _, project_id = token.partition(":")
        if not project_id:
            project_id = user_id
        is_admin = user_id == "admin"
        roles = ["admin", "manager", "member", "reader"] if is_admin else ["member", "reader"]
        return RequestContext(user_id=user_id, project_id=project_id, is_admin=is_admin, roles=roles,
                              request_id=_request_id(headers), auth_token=token)


_CALLER: contextvars.ContextVar[RequestContext | Fault | None] = contextvars.ContextVar("stratus_caller",
                                                                                       default=None)


class PerRequestAuth(Authenticator):
    """An authenticator that resolves the caller before the application runs (see the module's docstring)."""

    async def identify_request(self, scope: Scope) -> RequestContext:
        """The caller of this HTTP request (``identify`` on its headers unless the method and path matter too)."""
        return await self.identify(Headers(scope=scope))

    def authenticate(self, headers: Mapping[str, str]) -> RequestContext:
        found = _CALLER.get()
        if found is None:
            raise RuntimeError(f"{type(self).__name__}.authenticate called outside the application it wrapped")
        if isinstance(found, Fault):
            raise Fault(found.code, found.message, found.headers)
        return found

    def wrap(self, app: ASGIApp) -> ASGIApp:
        return _IdentifyCaller(app, self)


class TokenAuth(PerRequestAuth):
    """Keystone tokens of the embedded identity service (``[api] auth_strategy = embedded``).

    A valid project-scoped token gives the context: user, project, roles, and ``is_admin`` when the roles include
    ``admin``. Missing, unknown, expired or revoked tokens are a 401 with ``WWW-Authenticate: Keystone uri=…``,
    as keystonemiddleware answers; a token without a project is a 403. Valid tokens are cached briefly by the
    token store (``[identity] token_cache_time``).
    """

    def __init__(self, tokens: TokenStore, identity_uri: str) -> None:
        self.tokens = tokens
        self.challenge = {"WWW-Authenticate": f'Keystone uri="{identity_uri}"'}

    async def identify(self, headers: Mapping[str, str]) -> RequestContext:
        token_id = headers.get("x-auth-token")
        if not token_id:
            raise Fault(401, "The request you have made requires authentication.", self.challenge)
        token = await self.tokens.validate(token_id)
        if token is None:
            raise Fault(401, "The request you have made requires authentication.", self.challenge)
        if token.project_id is None:
            raise Fault(403, "A project-scoped token is required.")
        return RequestContext(user_id=token.user_id, project_id=token.project_id, is_admin=token.is_admin,
                              roles=token.role_names, request_id=_request_id(headers), auth_token=token_id)


class _IdentifyCaller:
    """Pure ASGI: resolve the caller of each HTTP request before the application runs."""

    def __init__(self, app: ASGIApp, auth: PerRequestAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        result: RequestContext | Fault
        try:
            result = await self.auth.identify_request(scope)
        except Fault as fault:
            result = fault
        except Exception:
            LOG.exception("token validation failed")
            result = Fault(503, "The token could not be validated; try again.")
        reset = _CALLER.set(result)
        try:
            await self.app(scope, receive, send)
        finally:
            _CALLER.reset(reset)
