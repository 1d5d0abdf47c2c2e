"""A real Keystone in front of the compute and image APIs (``[api] auth_strategy = keystone``), as Nova deploys it:
keystonemiddleware's ``auth_token`` with its ``[keystone_authtoken]`` options.

auth_token is WSGI middleware and these APIs are ASGI applications, so ``KeystoneAuth`` keeps one
``AuthProtocol`` per process around a tiny WSGI application that only records that it was reached, and runs it for
each request in a worker thread (its Keystone calls block) on a WSGI environ made from the request's method, path
and headers. What auth_token leaves in that environ (``X-Identity-Status``, ``X-User-Id``, ``X-Project-Id``,
``X-Roles``) becomes the caller's ``RequestContext``; a response of its own (401 with ``WWW-Authenticate: Keystone
uri=…``, 503 when Keystone cannot be reached) becomes a ``Fault`` with the same status and challenge. auth_token
caches the tokens it validated (``[keystone_authtoken] token_cache_time``, in memory unless ``memcached_servers``),
so a token seen again costs no round trip to Keystone.

auth_token registers its options, and those of the ``auth_type`` plugin it loads (``auth_url``, ``username``,
``password``, ``project_name``…), on the configuration it is given: this process's, so they come from the same INI
files as every other option.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

from oslo_config import cfg
from starlette.types import Scope

from stratus.api.errors import Fault
from stratus.context import RequestContext
from stratus.identity.auth import PerRequestAuth, _request_id

GROUP = "keystone_authtoken"
# Threads that may wait on Keystone at once; their own pool, so a slow Keystone cannot hold up the default
# executor (libvirt, image files) as well.
WORKERS = 8
_REACHED = "stratus.auth_token_passed"


def _passed(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The application behind auth_token: it only records that auth_token let the request through."""
    environ[_REACHED] = True
    start_response("204 No Content", [])
    return []


def _environ(method: str, path: str, query: bytes, headers: Iterable[tuple[bytes, bytes]],
             server: tuple[str, int] | None) -> dict[str, Any]:
    """A WSGI environ for auth_token: the request line and headers, no body (auth_token never reads it)."""
    host, port = server or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query.decode("latin-1"),
        "SERVER_NAME": host, "SERVER_PORT": str(port), "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + name
        value = raw_value.decode("latin-1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


class KeystoneAuth(PerRequestAuth):
    """Tokens of a real Keystone, validated by keystonemiddleware's ``auth_token`` (``[keystone_authtoken]``).

    A valid project-scoped token gives the context: user, project, roles, and ``is_admin`` when the roles include
    ``admin``. auth_token answers missing, invalid and expired tokens with a 401 carrying ``WWW-Authenticate:
    Keystone uri=<www_authenticate_uri>``, and an unreachable Keystone with a 503; a token without a project is a
    403, as with the embedded identity service.
    """

    def __init__(self, conf: cfg.ConfigOpts, workers: int = WORKERS) -> None:
        from keystonemiddleware import auth_token

        self.protocol = auth_token.AuthProtocol(_passed, {"oslo_config_config": conf})
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="keystone-auth")

    async def identify_request(self, scope: Scope) -> RequestContext:
        environ = _environ(scope["method"], scope["path"], scope.get("query_string", b""), scope["headers"],
                           scope.get("server"))
        return await self._identify(environ)

    async def identify(self, headers: Mapping[str, str]) -> RequestContext:
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        return await self._identify(_environ("GET", "/", b"", raw, None))

    async def _identify(self, environ: dict[str, Any]) -> RequestContext:
        loop = asyncio.get_running_loop()
        status, headers, body = await loop.run_in_executor(self._executor, self._run, environ)
        if not environ.get(_REACHED):
            raise _fault(status, headers, body)
        if environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":  # only with delay_auth_decision = true
            raise Fault(401, "The request you have made requires authentication.", dict(headers))
        project_id = environ.get("HTTP_X_PROJECT_ID")
        if not project_id:
            raise Fault(403, "A project-scoped token is required.")
        roles = [r.strip() for r in environ.get("HTTP_X_ROLES", "").split(",") if r.strip()]
        request_id = _request_id({"x-openstack-request-id": environ.get("HTTP_X_OPENSTACK_REQUEST_ID", "")})
        return RequestContext(user_id=environ["HTTP_X_USER_ID"], project_id=project_id, is_admin="admin" in roles,
                              roles=roles, request_id=request_id, auth_token=environ.get("HTTP_X_AUTH_TOKEN"))

    def _run(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """In a worker thread: auth_token on this environ; its status line, headers and body."""
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answer.update(status=status, headers=headers)

        body = b"".join(self.protocol(environ, start_response))
        headers = [(k, v) for k, v in answer["headers"] if k.lower() == "www-authenticate"]
        if environ.get(_REACHED) and environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
            headers = [("WWW-Authenticate", f'Keystone uri="{self.protocol.www_authenticate_uri}"')]
        return answer["status"], headers, body


def _fault(status: str, headers: list[tuple[str, str]], body: bytes) -> Fault:
    """auth_token's own answer as a Fault: its status, message (JSON body) and ``WWW-Authenticate``."""
    code = int(status.split(" ", 1)[0])
    try:
        message = str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = ("The identity service could not be reached to validate the token; try again." if code == 503
                   else HTTPStatus(code).phrase)
    return Fault(code, message, dict(headers))
