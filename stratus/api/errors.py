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


#: the longest message a fault carries: values quoted in messages are shortened where they are quoted, and no
#: message, whatever it quotes, comes back longer than this
MAX_MESSAGE = 2048


def client_error(code: int) -> int | None:
    """The compute API's status for a 4xx of a service it called (the image service, say): 400, 404 and 403 as
    Nova's image client translates them, 401 as 403 too (the service refused the call, not the user's
    credentials); a 409 or 413 keeps its code (Nova lets those out as a 500); any other 4xx is 400. None for
    anything else: an error of this cloud, a 500."""
    if not 400 <= code < 500:
        return None
    if code == 401:
        return 403
    return code if code in FAULT_NAMES else 400


def fault_body(code: int, message: str) -> dict[str, Any]:
    name = FAULT_NAMES.get(code, "computeFault")
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "..."
    return {name: {"code": code, "message": message}}


def fault_response(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(fault_body(code, message)), status_code=code, headers=headers,
                    media_type="application/json")
