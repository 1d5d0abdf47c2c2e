"""The embedded identity service's version documents (Keystone v3 discovery) on port 5000.

Clients discover the identity API before they use it (openstackclient checks it is v3 even for commands
that then make no identity call), so the all-in-one answers discovery as Keystone does. Tokens, projects
and the catalog arrive with the embedded Keystone; until then ``noauth2`` tokens are used.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stratus.api.errors import fault_response
from stratus.api.request import json_response

UPDATED = "2022-09-07T00:00:00Z"
MEDIA_TYPES = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]


def _v3(request: Request) -> dict[str, object]:
    base = str(request.base_url).rstrip("/")
    return {"id": "v3.14", "status": "stable", "updated": UPDATED, "links": [{"rel": "self", "href": f"{base}/v3/"}],
            "media-types": MEDIA_TYPES}


async def versions(request: Request) -> Response:
    return json_response({"versions": {"values": [_v3(request)]}}, status=300)


async def v3(request: Request) -> Response:
    return json_response({"version": _v3(request)})


async def not_yet(request: Request) -> Response:
    return fault_response(501, "The embedded identity service answers version discovery only; use noauth2 "
                               "tokens ('user:project') with the compute and image APIs.")


def create_app() -> Starlette:
    return Starlette(routes=[Route("/", versions), Route("/v3", v3), Route("/v3/", v3),
                             Route("/v3/{rest:path}", not_yet, methods=["GET", "POST", "HEAD", "DELETE"])])
