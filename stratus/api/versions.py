"""The version documents at ``/``, ``/v2.1/`` and ``/v2/``: unauthenticated, as in Nova, for client discovery.

Nova lists the legacy v2.0 API first (``DEPRECATED``, no microversions), then v2.1 (``CURRENT``). Stratus serves
v2.0's version document at ``/v2/`` so that the list's links can all be followed, as clients and tempest do; the
compute API itself is served under ``/v2.1`` only (a ``/v2/`` resource is 404).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from stratus.api import microversion
from stratus.api.request import json_response

UPDATED = "2013-07-23T11:33:21Z"
UPDATED_V20 = "2025-07-04T12:00:00Z"


def _v20(base: str) -> dict[str, Any]:
    return {"id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "", "updated": UPDATED_V20,
            "links": [{"rel": "self", "href": f"{base}/v2/"}]}


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
    base = _base(request)
    return json_response({"versions": [_v20(base), _version(base)]})


def _detail(body: dict[str, Any], media_version: str) -> dict[str, Any]:
    body["links"].append({"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"})
    body["media-types"] = [{"base": "application/json",
                            "type": f"application/vnd.openstack.compute+json;version={media_version}"}]
    return {"version": body}


async def v21(request: Request) -> Response:
    return json_response(_detail(_version(_base(request)), "2.1"))


async def v20(request: Request) -> Response:
    return json_response(_detail(_v20(_base(request)), "2"))
