"""Helpers every resource module shares: paging parameters, ``next`` links, self/bookmark links."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from stratus.api import validation
from stratus.api.errors import Fault
from stratus.api.request import ApiRequest
from stratus.context import RequestContext


def visible_project(ctx: RequestContext) -> str | None:
    """The project whose objects a lookup by id may find for this caller: its own, or any (None) for admins, as
    Nova's project-only queries. Another project's server or server group is then not found at all (404, or a
    boot's 400), never a 403 that would tell it exists."""
    return None if ctx.is_admin else ctx.project_id


def query_int(req: ApiRequest, param: str) -> int | None:
    """A non-negative integer query parameter, worded as Nova's query schema rejects it, within the range every
    integer of a request must fit."""
    value = req.query.get(param)
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]+", value):
        raise Fault(400, f"Invalid input for query parameters {param}. Value: {validation.short(value)}. "
                         f"{validation.short_repr(value)} does not match '^[0-9]*$'")
    return validation.integer(value, param, minimum=0, where="query parameters")


def limit_and_marker(req: ApiRequest) -> tuple[int, str | None]:
    """Nova's ``get_limit_and_marker``: ``limit`` capped by ``[api] max_limit``; ``limit=0`` is an empty page."""
    max_limit = int(req.services.conf.api.max_limit)
    limit = query_int(req, "limit")
    return (max_limit if limit is None else min(limit, max_limit)), req.query.get("marker")


def collection_links(req: ApiRequest, collection: str, items: list[dict[str, Any]], limit: int,
                     id_key: str) -> list[dict[str, str]]:
    """A ``next`` link when the page is full, carrying the request's parameters and the last item as marker."""
    if not limit or len(items) != limit:
        return []
    params = [(k, v) for k, v in req.query.multi_items() if k != "marker"]
    params.append(("marker", str(items[-1][id_key])))
    self_prefix, _ = req.link_prefix()
    return [{"rel": "next", "href": f"{self_prefix}/{collection}?{urlencode(params)}"}]


def links(req: ApiRequest, collection: str, identifier: str) -> list[dict[str, str]]:
    self_prefix, bookmark_prefix = req.link_prefix()
    return [{"rel": "self", "href": f"{self_prefix}/{collection}/{identifier}"},
            {"rel": "bookmark", "href": f"{bookmark_prefix}/{collection}/{identifier}"}]


ActionHandler = Callable[[ApiRequest, dict[str, Any]], Awaitable[Response]]


async def dispatch_action(req: ApiRequest, handlers: Mapping[str, ActionHandler],
                          malformed: str = "Malformed request body") -> Response:
    """POST …/action: the body's single key names the action, with Nova's errors for anything else."""
    body = await req.json()
    if not isinstance(body, dict) or len(body) != 1:
        raise Fault(400, malformed)
    name = next(iter(body))
    handler = handlers.get(name)
    if handler is None:
        raise Fault(400, f"There is no such action: {name}")
    return await handler(req, body)


def reject_unexpected_query(req: ApiRequest, allowed: tuple[str, ...] | frozenset[str] | set[str]) -> None:
    """Nova's strict query schemas (additionalProperties false): 400 naming every unknown parameter."""
    unexpected = sorted({k for k in req.query.keys() if k not in allowed})  # sorted, as jsonschema words it
    if unexpected:
        names = ", ".join(repr(k) for k in unexpected)
        raise Fault(400, f"Additional properties are not allowed ({names} "
                         f"{'was' if len(unexpected) == 1 else 'were'} unexpected)")


def image_endpoint(req: ApiRequest) -> str:
    """Nova's ``generate_image_url``: the image service's endpoint (the first Glance, or the embedded store)."""
    conf = req.services.conf
    if conf.glance.api_servers:
        return str(conf.glance.api_servers[0]).rstrip("/")
    return f"http://{conf.image_store.listen}:{conf.image_store.listen_port}"
