"""One error type for the API and one formatter that writes Nova's fault body.

``{"badRequest": {"code": 400, "message": "..."}}``: the key names the kind, as Nova's wsgi faults do.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    406: "notAcceptable",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}


class Fault(Exception):
    """An API error: the status code, a message for the user, and optional extra headers."""

    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> Fault:
    return Fault(400, message)


def not_found(message: str) -> Fault:
    return Fault(404, message)


def forbidden(message: str) -> Fault:
    return Fault(403, message)


def conflict(message: str) -> Fault:
    return Fault(409, message)


def fault_body(code: int, message: str) -> dict[str, Any]:
    name = FAULT_NAMES.get(code, "computeFault")
    return {name: {"code": code, "message": message}}


def fault_response(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(fault_body(code, message)), status_code=code, headers=headers,
                    media_type="application/json")
