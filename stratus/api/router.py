"""Routes as one table: path, method, handler, version range. Builds the path table and the 404/405s."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from stratus import exception
from stratus.api import microversion, validation
from stratus.api.errors import Fault, client_error, fault_response
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest
from stratus.context import generate_request_id
from stratus.db.engine import DB_UNAVAILABLE, is_disconnect

if TYPE_CHECKING:
    from stratus.api.services import ApiServices

LOG = logging.getLogger(__name__)
_UNEXPECTED = ("Unexpected API Error. Please report this at the Stratus issue tracker and attach the API log if "
               "possible.")
Handler = Callable[[ApiRequest], Awaitable[Response]]
#: what a path of the table runs: the request and the path's parameters
Endpoint = Callable[[Request, dict[str, str]], Awaitable[Response]]


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


#: the body types Nova's compute API reads (nova/api/openstack/wsgi.py _SUPPORTED_CONTENT_TYPES)
SUPPORTED_CONTENT_TYPES = ("application/json", "application/vnd.openstack.compute+json")


def check_content_type(header: str | None) -> None:
    """Nova's ``get_content_type``, asked of every request: no Content-Type, an empty one or ``text/plain`` (what
    some servers default to) mean JSON; any other type than JSON is a 415, parameters (``; charset=``) aside."""
    if header is None:
        return
    content_type = header.split(";", 1)[0]
    if content_type and content_type != "text/plain" and content_type not in SUPPORTED_CONTENT_TYPES:
        raise Fault(415, "Unsupported Content-Type")


def check_url_text(path: str, query: Iterable[tuple[str, str]]) -> None:
    """No NUL in the path or the query (percent-decoded): no database column holds one (PostgreSQL's text refuses
    it outright), so no id or filter with one names anything; refused before any lookup."""
    if "\x00" in path or any("\x00" in key or "\x00" in value for key, value in query):
        raise Fault(400, "Malformed request URL: it contains a NUL character.")


def check_url_project(url_project_id: str | None, context_project_id: str | None) -> None:
    """Nova's check of ``/v2.1/{project_id}/...``: the URL's project must be the token's, for admins too."""
    if url_project_id and url_project_id != context_project_id:
        raise Fault(400, f"Malformed request URL: URL's project_id '{validation.short(url_project_id)}' doesn't "
                         f"match Context's project_id '{context_project_id}'")


def header_dict(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """A request's headers by (lower-case) name, the first of a repeated one, as Starlette's ``Headers.get`` finds
    them: read once, instead of a pass over the headers (and a KeyError for an absent one) for each look-up."""
    out: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1")
        if key not in out:
            out[key] = value.decode("latin-1")
    return out


#: the headers every response of the table gets (a response's raw header names are lower-case bytes)
_STAMPED = frozenset({b"openstack-api-version", b"x-openstack-nova-api-version", b"vary", b"x-openstack-request-id",
                      b"x-compute-request-id"})


def _dispatcher(path_routes: list[Route], services: ApiServices) -> Endpoint:
    by_method: dict[str, list[Route]] = defaultdict(list)
    for route in path_routes:
        by_method[route.method].append(route)

    async def endpoint(request: Request, path: dict[str, str]) -> Response:
        version = microversion.MIN_VERSION
        request_id = ""
        try:
            headers = header_dict(request.scope["headers"])
            version = microversion.from_headers(headers)
            candidates = by_method.get(request.method)
            if candidates is None:
                raise Fault(405, "The method specified is not allowed for this resource.")
            route = next((r for r in candidates if r.matches(version)), None)
            if route is None:
                raise Fault(404, "The resource could not be found.")
            context = services.auth.authenticate(headers)
            request_id = context.request_id
            check_content_type(headers.get("content-type"))
            check_url_text(request.scope["path"], request.query_params.multi_items())
            url_project_id = request.scope.get("stratus.url_project_id")
            check_url_project(url_project_id, context.project_id)
            api_request = ApiRequest(raw=request, context=context, version=version, services=services,
                                     path=path, url_project_id=url_project_id)
            response = await route.handler(api_request)
        except Fault as fault:
            response = fault_response(fault.code, fault.message, fault.headers)
        except exception.StratusException as exc:
            # a 4xx of a service the request called (the image service refusing a snapshot's properties, say) is
            # the caller's error, translated here once for every handler
            code = client_error(exc.code)
            if code is None:
                LOG.exception("unexpected API error on %s %s", request.method, request.url.path)
                response = fault_response(500, _UNEXPECTED)
            else:
                response = fault_response(code, exc.message)
        except Exception as exc:
            if is_disconnect(exc):  # a 503 the client may retry, instead of Nova's 500 (see docs/multinode.md)
                LOG.error("database unavailable for %s %s: %s", request.method, request.url.path, exc)
                response = fault_response(503, DB_UNAVAILABLE)
            else:
                LOG.exception("unexpected API error on %s %s", request.method, request.url.path)
                response = fault_response(500, _UNEXPECTED)
        # Nova's request id, the one instance actions record, in both of its headers (clients log it; tempest
        # waits on servers with it)
        request_id = request_id or generate_request_id()
        raw = response.raw_headers
        if any(name in _STAMPED for name, _ in raw):  # a handler set one: replaced, as a header update does
            response.headers.update(microversion.response_headers(version))
            response.headers["x-openstack-request-id"] = request_id
            response.headers["x-compute-request-id"] = request_id
        else:  # the usual case, without a pass over the headers for each
            encoded = request_id.encode("latin-1")
            raw.extend(microversion.raw_response_headers(version))
            raw.append((b"x-openstack-request-id", encoded))
            raw.append((b"x-compute-request-id", encoded))
        return response

    return endpoint


#: the methods every path of the table answers (Starlette's ``Route`` adds HEAD to GET); any other is a 405
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
#: a placeholder of a path template, ``{server_id}``: one non-empty segment
_PLACEHOLDER = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)}")


@dataclasses.dataclass(frozen=True, slots=True)
class PathEntry:
    """One path of the table: what runs it, the methods it answers and its placeholders' names, in order."""

    template: str
    endpoint: Any  # an Endpoint, or a version document's ``handler(request)`` (``with_params`` False)
    methods: frozenset[str]
    names: tuple[str, ...]
    with_params: bool = True


class PathTable:
    """The paths of the API, matched as Starlette's router matched them, in one or two lookups instead of a walk.

    Starlette tried each route's ``^template$`` regex in turn and took the first that matched. Here a literal path
    of the table before its first template (``build`` puts them all there) is one dict lookup; any other path is
    one match of a regex made of the templates it could match, in the same order: those with as many slashes (a
    placeholder, ``[^/]+``, never takes one) and the same first segment after the version (or a placeholder
    there). An alternation takes its first alternative that matches, with the same ``[^/]+`` and the same ``$``
    (which also matches before a final newline), so every path finds the entry, and the parameters, it found
    before. One regex of all 115 templates took 20 µs a match.
    """

    def __init__(self, entries: list[PathEntry]) -> None:
        self._literal: dict[str, PathEntry] = {}
        alternatives: list[tuple[int, str, str | None, PathEntry]] = []  # slashes, regex, first segment, entry
        templated = False  # a literal after a template is only found by the regexes: the template may match it
        for entry in entries:
            templated = templated or bool(entry.names)
            if not templated:
                self._literal.setdefault(entry.template, entry)
            regex, last = "", 0
            for found in _PLACEHOLDER.finditer(entry.template):
                regex += re.escape(entry.template[last:found.start()]) + "([^/]+)"
                last = found.end()
            regex += re.escape(entry.template[last:])
            segment = _first_segment(entry.template)
            alternatives.append((entry.template.count("/"), regex, None if "{" in segment else segment, entry))
        keys = {(slashes, segment) for slashes, _, segment, _ in alternatives}
        self._groups = {key: _Group([(regex, entry) for slashes, regex, segment, entry in alternatives
                                     if slashes == key[0] and segment in (key[1], None)]) for key in keys}

    def lookup(self, path: str) -> tuple[PathEntry, dict[str, str]] | None:
        """The entry of ``path`` and its parameters; None: no path of the table (a 404)."""
        entry = self._literal.get(path)
        if entry is not None:
            return entry, {}
        slashes = path.count("/")
        group = self._groups.get((slashes, _first_segment(path))) or self._groups.get((slashes, None))
        return None if group is None else group.match(path)


def _first_segment(path: str) -> str:
    """The segment after the version (``servers`` of ``/v2.1/servers/x``); a last segment without the final newline
    that ``$`` matches before (``/v2.1/servers\n`` is ``/v2.1/servers``)."""
    parts = path.split("/", 3)
    if len(parts) < 3:
        return ""
    segment = parts[2]
    return segment[:-1] if len(parts) == 3 and segment.endswith("\n") else segment


class _Group:
    """Templates in the table's order as one regex: the first that matches, and its parameters."""

    def __init__(self, alternatives: list[tuple[str, PathEntry]]) -> None:
        self._by_name: dict[str, tuple[PathEntry, int]] = {}
        parts, group = [], 0
        for index, (regex, entry) in enumerate(alternatives):
            parts.append(f"(?P<_r{index}>{regex})")
            group += 1
            self._by_name[f"_r{index}"] = (entry, group)
            group += len(entry.names)
        self._regex = re.compile("^(?:" + "|".join(parts) + ")$")

    def match(self, path: str) -> tuple[PathEntry, dict[str, str]] | None:
        found = self._regex.match(path)
        if found is None:
            return None
        entry, group = self._by_name[found.lastgroup]  # type: ignore[index]
        names = entry.names
        if not names:  # a literal with a final newline (which ``$`` matches before)
            return entry, {}
        if len(names) == 1:
            return entry, {names[0]: found.group(group + 1)}
        return entry, dict(zip(names, found.group(*range(group + 1, group + 1 + len(names))), strict=True))


def build(routes: list[Route], services: ApiServices, prefix: str = "/v2.1") -> list[PathEntry]:
    """The table's paths, one entry each, in the order they are matched."""
    by_path: dict[str, list[Route]] = defaultdict(list)
    for route in routes:
        by_path[route.path].append(route)
    # the first path that matches is taken: fewer placeholders first, so a literal path (``/os-networks/add``,
    # ``/servers/detail``) is never shadowed by a template that also matches it (``/os-networks/{network_id}``)
    ordered = sorted(by_path.items(), key=lambda item: item[0].count("{"))
    return [PathEntry(prefix + path, _dispatcher(rs, services), METHODS, tuple(_PLACEHOLDER.findall(path)))
            for path, rs in ordered]
