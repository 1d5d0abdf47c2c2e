"""The version documents at ``/`` and ``/v2.1/``: unauthenticated, as in Nova, for client discovery."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from stratus.api import microversion
from stratus.api.request import json_response

UPDATED = "2013-07-23T11:33:21Z"


def _version(base: str) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": str(microversion.MAX_VERSION),
        "min_version": str(microversion.MIN_VERSION),
        "updated": UPDATED,
        "links": [{"rel": "self", "href": f"{base}/v2.1/"}],
    }


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def root(request: Request) -> Response:
    return json_response({"versions": [_version(_base(request))]})


async def v21(request: Request) -> Response:
    body = _version(_base(request))
    body["links"].append({"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"})
    body["media-types"] = [{"base": "application/json",
                            "type": "application/vnd.openstack.compute+json;version=2.1"}]
    return json_response({"version": body})
