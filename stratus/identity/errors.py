"""Keystone's errors: one exception type and one formatter writing ``{"error": {"code", "message", "title"}}``."""

from __future__ import annotations

from http import HTTPStatus

import orjson
from starlette.responses import Response

AUTH_REQUIRED = "The request you have made requires authentication."


class IdentityError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def unauthorized(message: str = AUTH_REQUIRED) -> IdentityError:
    return IdentityError(401, message)


def forbidden(rule: str) -> IdentityError:
    return IdentityError(403, f"You are not authorized to perform the requested action: {rule}.")


def not_found(kind: str, ident: str) -> IdentityError:
    return IdentityError(404, f"Could not find {kind}: {ident}.")


def conflict(kind: str, detail: str) -> IdentityError:
    return IdentityError(409, f"Conflict occurred attempting to store {kind} - {detail}")


def bad_request(message: str) -> IdentityError:
    return IdentityError(400, message)


def error_response(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    try:
        title = HTTPStatus(code).phrase
    except ValueError:
        title = "Error"
    body = {"error": {"code": code, "message": message, "title": title}}
    return Response(orjson.dumps(body), status_code=code, headers=headers, media_type="application/json")
