"""Placeholder for the embedded Glance v2 API."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def _versions(request: Request) -> JSONResponse:
    return JSONResponse({"versions": []})


def create_app(store: Any, auth: Any) -> Starlette:
    return Starlette(routes=[Route("/versions", _versions)])
