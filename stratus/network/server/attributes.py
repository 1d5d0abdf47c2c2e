"""Validation of request bodies as Neutron's API layer does it: which attributes a resource has, which may be
given at create (POST) and at update (PUT), and each value's check, with neutron-lib's messages.

A check returns the value as stored, or raises the 400 (``Invalid input for <attr>. Reason: ...``).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stratus.network.server import errors

NAME_MAX = 255
DESCRIPTION_MAX = 255
DEVICE_ID_MAX = 255
TAG_MAX = 255
_MAC = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$")

Check = Callable[[str, Any], Any]


class Invalid(Exception):
    """A value's check failed: ``reason`` completes 'Invalid input for <attr>. Reason: ...'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def string(max_len: int) -> Check:
    def check(attr: str, value: Any) -> Any:
        if not isinstance(value, str):
            raise Invalid(f"'{value}' is not a valid string")
        if len(value) > max_len:
            raise Invalid(f"'{value}' exceeds maximum length of {max_len}")
        return value
    return check


def nullable(inner: Check) -> Check:
    def check(attr: str, value: Any) -> Any:
        return None if value is None else inner(attr, value)
    return check


def boolean(attr: str, value: Any) -> bool:
    """neutron-lib's convert_to_boolean: JSON booleans, and 'true'/'false', '1'/'0' as strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "false", "0"):
        return value.lower() in ("true", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise Invalid(f"'{value}' cannot be converted to boolean")


def integer(low: int, high: int) -> Check:
    def check(attr: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise Invalid(f"'{value}' is not an integer")
        try:
            number = int(value)
        except ValueError:
            raise Invalid(f"'{value}' is not an integer") from None
        if not low <= number <= high:
            raise Invalid(f"'{number}' is not in range {low} through {high}")
        return number
    return check


def uuid_check(attr: str, value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"'{value}' is not a valid UUID")
    try:
        uuid.UUID(value)
    except ValueError:
        raise Invalid(f"'{value}' is not a valid UUID") from None
    if len(value) not in (32, 36):
        raise Invalid(f"'{value}' is not a valid UUID")
    return value


def mac_check(attr: str, value: Any) -> str:
    if not isinstance(value, str) or not _MAC.match(value):
        raise Invalid(f"'{value}' is not a valid MAC address")
    octets = value.replace("-", ":").lower()
    if int(octets[:2], 16) & 1 or octets == "00:00:00:00:00:00":
        raise Invalid(f"'{value}' is not a valid MAC address")  # multicast or zero: never a port's
    return octets


def ip_check(attr: str, value: Any) -> str:
    if not isinstance(value, str) or "/" in value:
        raise Invalid(f"'{value}' is not a valid IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise Invalid(f"'{value}' is not a valid IP address") from None


def cidr_check(attr: str, value: Any) -> str:
    """A subnet CIDR (neutron-lib's validate_subnet), returned as its network (``10.0.0.5/24`` → ``10.0.0.0/24``,
    as Neutron stores it)."""
    try:
        if not isinstance(value, str) or "/" not in value or value != value.strip():
            raise ValueError(value)
        iface = ipaddress.ip_interface(value)
        if iface.version == 4 and str(iface) != value:
            raise ValueError(value)
    except ValueError:
        raise Invalid(f"'{value}' is not a valid IP subnet") from None
    return str(iface.network)


def route_cidr_check(value: Any) -> str:
    """A destination of a host route (neutron-lib's validate_route_cidr)."""
    try:
        if not isinstance(value, str) or "/" not in value:
            raise ValueError(value)
        return str(ipaddress.ip_network(value))
    except ValueError:
        raise Invalid(f"'{value}' is not a valid CIDR") from None


def list_of(inner: Check, max_items: int = 1000) -> Check:
    def check(attr: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise Invalid(f"'{value}' is not a list")
        if len(value) > max_items:
            raise Invalid(f"the list has more than {max_items} items")
        return [inner(attr, item) for item in value]
    return check


def one_of(*choices: Any) -> Check:
    def check(attr: str, value: Any) -> Any:
        if value not in choices:
            raise Invalid(f"'{value}' is not in {list(choices)}")
        return value
    return check


def dict_check(max_keys: int = 64) -> Check:
    def check(attr: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise Invalid(f"'{value}' is not a dictionary")
        if len(value) > max_keys:
            raise Invalid(f"the dictionary has more than {max_keys} keys")
        return value
    return check


@dataclass(frozen=True)
class Attr:
    """One attribute of a resource: its check, whether POST and PUT may set it, and its default at create."""

    check: Check
    post: bool = True
    put: bool = True
    default: Any = None
    required: bool = False
    filter: bool = True  # may be a query filter


def parse_body(body: Any, resource: str, attrs: Mapping[str, Attr], create: bool,
               read_only: Mapping[str, Any] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """The checked attributes of ``{resource: {...}}``; defaults filled in at create. Neutron's order of refusals:
    the resource key, unknown attributes, attributes the verb may not set, then each value."""
    if not isinstance(body, dict) or not isinstance(body.get(resource), dict):
        raise errors.bad_request(f"Unable to find '{resource}' in request body")
    given = body[resource]
    unknown = [k for k in given if k not in attrs and k not in read_only]
    if unknown:
        raise errors.bad_request(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    out: dict[str, Any] = {}
    for name, value in given.items():
        attr = attrs.get(name)
        if attr is None or not (attr.post if create else attr.put):
            if create:
                raise errors.bad_request(f"Attribute '{name}' not allowed in POST")
            raise errors.bad_request(f"Cannot update read-only attribute {name}")
        try:
            out[name] = attr.check(name, value)
        except Invalid as exc:
            raise errors.invalid_attribute(name, exc.reason) from None
    if create:
        for name, attr in attrs.items():
            if name in out or not attr.post:
                continue
            if attr.required:
                raise errors.bad_request(f"Failed to parse request. Required attribute '{name}' not specified")
            out[name] = attr.default() if callable(attr.default) else attr.default
    return out


NAME = Attr(string(NAME_MAX), default="")
DESCRIPTION = Attr(string(DESCRIPTION_MAX), default="")
PROJECT = Attr(string(255), put=False)
