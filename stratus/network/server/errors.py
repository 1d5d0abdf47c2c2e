"""Neutron's errors: an HTTP status, the exception's name as ``type`` and its message, written as
``{"NeutronError": {"type", "message", "detail"}}`` (neutron-lib's wording for each)."""

from __future__ import annotations

from typing import Any


class NeutronError(Exception):
    """One Neutron exception: ``type`` is neutron-lib's class name, ``message`` its text."""

    def __init__(self, code: int, type_: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.type = type_
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"NeutronError": {"type": self.type, "message": self.message, "detail": ""}}


def bad_request(message: str) -> NeutronError:
    """What Neutron's API layer answers to a body or query it cannot accept (webob's HTTPBadRequest)."""
    return NeutronError(400, "HTTPBadRequest", message)


def invalid_input(message: str) -> NeutronError:
    return NeutronError(400, "InvalidInput", f"Invalid input for operation: {message}.")


def invalid_attribute(attr: str, reason: str) -> NeutronError:
    return bad_request(f"Invalid input for {attr}. Reason: {reason}.")


def not_found(kind: str, key: str, value: str) -> NeutronError:
    """``NetworkNotFound`` etc.: 'Network <id> could not be found.'"""
    return NeutronError(404, f"{kind}NotFound", f"{kind} {value} could not be found.")


def conflict(type_: str, message: str) -> NeutronError:
    return NeutronError(409, type_, message)


def policy_denied(rules: list[str]) -> NeutronError:
    """oslo.policy's wording, for the rules that failed ('rule:update_network:shared is disallowed by policy')."""
    text = " and ".join(f"rule:{r}" for r in rules)
    return NeutronError(403, "PolicyNotAuthorized", f"({text}) is disallowed by policy" if len(rules) > 1
                        else f"{text} is disallowed by policy")


RESOURCE_NOT_FOUND = NeutronError(404, "HTTPNotFound", "The resource could not be found.")
