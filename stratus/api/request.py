"""What a handler sees: the caller, the negotiated version, path and query, the body, and the services."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.context import RequestContext

if TYPE_CHECKING:
    from stratus.api.services import ApiServices


@dataclasses.dataclass(slots=True)
class ApiRequest:
    raw: Request
    context: RequestContext
    version: APIVersion
    services: ApiServices
    path: dict[str, str]
    url_project_id: str | None
    #: ``link_prefix``'s answer, once asked
    _prefixes: tuple[str, str] | None = None

    @property
    def query(self) -> QueryParams:
        return self.raw.query_params

    def at_least(self, version: APIVersion) -> bool:
        return self.version >= version

    async def json(self) -> Any:
        """The JSON body; an empty or malformed one is a 400, as in Nova."""
        data = await self.raw.body()
        if not data:
            raise Fault(400, "The request body is empty or malformed.")
        return parse_json(data)

    def link_prefix(self) -> tuple[str, str]:
        """(self, bookmark) URL prefixes for resource links, the way Nova builds them."""
        if self._prefixes is None:
            conf_prefix = self.services.conf.api.compute_link_prefix
            base = (conf_prefix or base_url(self.raw)).rstrip("/")
            project = f"/{self.url_project_id}" if self.url_project_id else ""
            self._prefixes = f"{base}/v2.1{project}", f"{base}{project}"
        return self._prefixes


#: Starlette's base URL of a request by what it is made of (scheme, server, Host header, root path): a URL object
#: parsed for each request costs more than the rest of building a server's links
_BASE_URLS: dict[tuple[Any, ...], str] = {}
_BASE_URLS_MAX = 256


def base_url(request: Request) -> str:
    """``str(request.base_url)``, found again for the next request with the same scheme, server, Host header and
    root path (all that Starlette builds it from)."""
    scope = request.scope
    host = None
    for key, value in scope["headers"]:
        if key == b"host":
            host = value
            break
    server = scope.get("server")
    key = (scope.get("scheme", "http"), tuple(server) if server is not None else None, host,
           scope.get("app_root_path", scope.get("root_path", "")))
    found = _BASE_URLS.get(key)
    if found is None:
        found = str(request.base_url)
        if len(_BASE_URLS) >= _BASE_URLS_MAX:
            _BASE_URLS.clear()
        _BASE_URLS[key] = found
    return found


#: a run of digits that may be an integer literal past orjson's 64-bit range
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
#: how deep a body's arrays and objects may nest. Nova's deepest body is a few levels; what walks a body (the
#: standard library's parser, the validator and the reprs in its messages, the range rule) recurses once a level
#: or more, so a body near orjson's own limit (1024) would end in a RecursionError, a 500
MAX_DEPTH = 64


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests arrays and objects more than ``MAX_DEPTH`` levels, found without recursing."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(data: bytes) -> Any:
    """A JSON body as Nova's parser reads it: integers exact at any size (``validation``'s range rule then answers
    for them with Nova's wording, and keeps them from the database, the messaging and orjson).

    orjson checks the text (UTF-8, no lone surrogate, no NaN or Infinity: 400) and parses it; only a body with a
    long run of digits is parsed again by the standard library, because orjson turns an integer past 64 bits into
    a float (an integer of more digits than Python converts, 4300, is a 400 as well). Arrays and objects nested
    deeper than ``MAX_DEPTH`` are a 400, checked before the standard library's parser could recurse that deep."""
    try:
        value = orjson.loads(data)
        if _too_deep(value):
            raise Fault(400, f"Malformed request body: arrays and objects nested more than {MAX_DEPTH} levels deep")
        if _LONG_DIGITS.search(data):
            value = json.loads(data)
    except ValueError:  # orjson.JSONDecodeError is one
        raise Fault(400, "Malformed request body") from None
    return value


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


#: what may stay as it is in a URL carried by a header: printable ASCII URL characters (and escapes already made)
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"


def location(url: str) -> dict[str, str]:
    """A ``Location`` header for ``url``: any character a header cannot carry (non-ASCII, controls, spaces) is
    percent-encoded, so a path segment the user chose (a tag, a project id) can never break the response."""
    return {"Location": quote(url, safe=_URL_SAFE)}


def empty_response(status: int = 204, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status_code=status, headers=headers)
