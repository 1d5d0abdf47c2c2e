"""Request body and query validation with JSON Schema, reporting errors the way Nova words them.

The validator is Nova's: Draft 4 with ``minimum`` and ``maximum`` applied to numeric strings too (Nova's
``_SchemaValidator``), so the schema states every bound and a handler only converts what passed. Two rules hold
for every request, whatever the handler:

- **Integers have a range.** A field's bound is Nova's where Nova has one (``MAX_INT``, the database's integer,
  for what is stored: quotas, flavor sizes); Nova's unbounded integers (``positive_integer``,
  ``non_negative_integer``) and every other integer of a body or a query, a free-form scheduler hint alike, must
  fit the 64-bit range that the databases, the messaging and the JSON encoder carry. ``validate`` checks the whole
  body against it after the schema, and ``integer`` converts a query value with the same bounds, so a 100-digit
  value is a 400 worded as Nova's validator words a maximum, never an overflow deep inside.
- **No NUL.** No string of a request (body, path or query) carries a NUL character: PostgreSQL's text cannot
  store one (the image service refuses them for the same reason); Nova, on MySQL, takes them where its schemas
  do not forbid control characters.
- **Echoed values are short.** A message quotes at most ``ECHO_LIMIT`` characters of any value it names.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from stratus.api import schema_compile
from stratus.api.errors import Fault

#: nova/db/constants.py MAX_INT: the database's integer columns (Nova bounds stored integers with it)
MAX_INT = 0x7FFFFFFF
#: the 64-bit range of SQLite, PostgreSQL's bigint, the messaging's JSON (orjson): every integer stays within it
MIN_INT64 = -(2**63)
MAX_INT64 = 2**63 - 1
#: characters of a value a message quotes; the rest is cut (a 100 KB value must not come back as a 100 KB error)
ECHO_LIMIT = 200

_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("regex")
def _is_regex(instance: object) -> bool:
    """Nova's ``regex`` format: a pattern Python can compile; the empty string matches nothing useful, so no."""
    if not isinstance(instance, str):
        return True
    if not instance:
        return False
    try:
        re.compile(instance)
    except (re.error, OverflowError, RecursionError):
        return False
    return True


@_FORMATS.checks("base64")
def _is_base64(instance: object) -> bool:
    """Nova's ``base64`` format (injected file contents): what ``base64.decodebytes`` accepts, which skips
    characters outside the alphabet and fails on bad padding."""
    if not isinstance(instance, str):
        return True
    try:
        base64.decodebytes(instance.encode())
    except (binascii.Error, ValueError):
        return False
    return True


# Reusable schema pieces, after Nova's nova/api/validation/parameter_types.py.
name = {"type": "string", "minLength": 1, "maxLength": 255,
        "pattern": r"^(?![\s])[^\x00-\x1f\x7f]*(?<![\s])$"}
name_with_leading_trailing_spaces = {"type": "string", "minLength": 1, "maxLength": 255,
                                     "pattern": r"^[^\x00-\x1f\x7f]*$"}
description = {"type": ["string", "null"], "minLength": 0, "maxLength": 255,
               "pattern": r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"}
metadata = {
    "type": "object",
    "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255}},
    "additionalProperties": False,
}
positive_integer = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1, "maximum": MAX_INT64,
                    "minLength": 1}
non_negative_integer = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0, "maximum": MAX_INT64,
                        "minLength": 1}
#: Nova's ``user_id`` (what its key pair bodies promise): letters, digits and hyphens, 1 to 255
user_id = {"type": "string", "pattern": "^[a-zA-Z0-9-]*$", "minLength": 1, "maxLength": 255}
# A device tag (Nova's ``tag``), and the tags one server may carry (Nova's instance.MAX_TAG_COUNT).
tag = {"type": "string", "minLength": 1, "maxLength": 60, "pattern": "^[^,/]*$"}
#: A server tag: Nova's ``tag`` without control characters either. A server tag is a path segment, travels in a
#: ``Location`` header and in comma-separated filters, none of which can carry a NUL, CR or LF.
server_tag = {"type": "string", "minLength": 1, "maxLength": 60, "pattern": "^[^,/\x00-\x1f\x7f]*$"}
MAX_TAGS = 50
tags = {"type": "array", "items": server_tag, "maxItems": MAX_TAGS}
# Trusted image certificate ids (2.63): null, or 1 to 50 unique non-empty strings.
trusted_certs = {"type": ["array", "null"], "minItems": 1, "maxItems": 50, "uniqueItems": True,
                 "items": {"type": "string", "minLength": 1}}
#: Nova's ``hostname`` (a server's, 2.90) and ``fqdn`` (a compute host's, and a server's hostname from 2.94)
hostname = {"type": "string", "pattern": "^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$", "minLength": 2, "maxLength": 63}
fqdn = {"type": "string", "pattern": "^[a-zA-Z0-9-._]*$", "minLength": 1, "maxLength": 255}
#: A query parameter Nova declares ``common_query_regex_param``: a pattern ``re`` compiles.
query_regex = {"type": "string", "format": "regex"}


def _as_number(instance: Any) -> Any:
    """Nova's ``_number_from_str``: a numeric string as the int or float it spells, None if it spells none."""
    if not isinstance(instance, str):
        return instance
    try:
        return int(instance)
    except ValueError:
        try:
            return float(instance)
        except ValueError:
            return None


def _minimum(validator: Any, minimum: float, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    number = _as_number(instance)
    if not validator.is_type(number, "number"):
        return
    exclusive = schema.get("exclusiveMinimum", False)
    if number <= minimum if exclusive else number < minimum:
        relation = "less than or equal to" if exclusive else "less than"
        yield ValidationError(f"{short_repr(number)} is {relation} the minimum of {minimum!r}")


def _maximum(validator: Any, maximum: float, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    number = _as_number(instance)
    if not validator.is_type(number, "number"):
        return
    exclusive = schema.get("exclusiveMaximum", False)
    if number >= maximum if exclusive else number > maximum:
        relation = "greater than or equal to" if exclusive else "greater than"
        yield ValidationError(f"{short_repr(number)} is {relation} the maximum of {maximum!r}")


_NovaValidator = jsonschema.validators.extend(Draft4Validator, {"minimum": _minimum, "maximum": _maximum})


_KEYWORDS = frozenset(_NovaValidator.VALIDATORS)
assert _NovaValidator.VALIDATORS["minimum"] is _minimum and _NovaValidator.VALIDATORS["maximum"] is _maximum


class _Checker:
    """A schema's jsonschema validator (for the errors and their wording) and its compiled validity test (for the
    documents that are valid, see ``schema_compile``), which answers as the validator's ``is_valid``."""

    __slots__ = ("valid", "validator")

    def __init__(self, schema: Any) -> None:
        self.validator = _NovaValidator(schema, format_checker=_FORMATS)
        self.valid = schema_compile.compile_schema(schema, _KEYWORDS, _FORMATS, _as_number)

    def first_error(self, instance: Any) -> ValidationError | None:
        """jsonschema's best match among the errors, None if valid; the compiled test first, which finds a valid
        document valid at a fraction of the cost (an invalid or undecided one goes to jsonschema)."""
        try:
            if self.valid(instance):
                return None
        except (schema_compile.Unknown, RecursionError):
            pass
        return jsonschema.exceptions.best_match(self.validator.iter_errors(instance))


@functools.lru_cache(maxsize=512)
def _checker(schema_json: str) -> _Checker:
    return _Checker(json.loads(schema_json))


#: checkers by the identity of a schema object a handler passes again and again (a schema built once per
#: microversion): keying the cache by the schema's JSON costs more than validating a boot's body. The schema
#: is kept with its checker, so its id cannot be reused by another object while the entry lives.
_BY_IDENTITY: dict[int, tuple[dict[str, Any], _Checker]] = {}
_BY_IDENTITY_MAX = 512


def _checker_of(schema: dict[str, Any]) -> _Checker:
    entry = _BY_IDENTITY.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    checker = _checker(json.dumps(schema, sort_keys=True))
    if len(_BY_IDENTITY) >= _BY_IDENTITY_MAX:
        _BY_IDENTITY.clear()
    _BY_IDENTITY[id(schema)] = (schema, checker)
    return checker


def _validator_of(schema: dict[str, Any]) -> Any:
    return _checker_of(schema).validator


def validate(schema: dict[str, Any], body: Any) -> None:
    """Raise a 400 Fault for the first invalid field, worded as Nova's validator words it (the field is the last
    element of its path; an error of the whole body is jsonschema's message alone); then ``check_body``.

    ``schema`` must not change once passed here (its checker is kept by the object's identity)."""
    error = _checker_of(schema).first_error(body)
    if error is None:
        check_body(body)
        return
    if not error.absolute_path:
        raise Fault(400, _message(error))
    raise Fault(400, f"Invalid input for field/attribute {short(error.absolute_path[-1])}. "
                     f"Value: {short(error.instance)}. {_message(error)}")


def error_message(schema: dict[str, Any], value: Any) -> str | None:
    """jsonschema's message (its quote of the value shortened) for ``value`` against ``schema``, None if valid."""
    error = _checker(json.dumps(schema, sort_keys=True)).first_error(value)
    return None if error is None else _message(error)


def validate_query(req_query: Any, schemas: dict[str, dict[str, Any]]) -> None:
    """Each value of the named query parameters against its schema, worded as Nova's query validator."""
    present = set(req_query.keys())
    if not present:
        return
    for key, schema in schemas.items():
        if key not in present:  # most are absent: no validator to find for them
            continue
        checker = _checker_of(schema)
        for value in req_query.getlist(key):
            error = checker.first_error(value)
            if error is not None:
                raise Fault(400, f"Invalid input for query parameters {key}. Value: {short(value)}. "
                                 f"{_message(error)}")


def integer(value: Any, field: str, minimum: int = MIN_INT64, maximum: int = MAX_INT64,
            where: str = "field/attribute") -> int:
    """``value`` (an integer, or a string of one, as the schema let through) as an int within its range.

    The bounds apply to numeric strings as well, as Nova's validator converts them to check; the default range is
    the 64-bit one every integer must fit. ``where`` is "query parameters" for a query value."""
    try:
        number = value if type(value) is int else int(str(value), 10)
    except ValueError:
        raise Fault(400, f"Invalid input for {where} {field}. Value: {short(value)}. "
                         f"{short_repr(value)} is not of type 'integer'") from None
    if number < minimum:
        raise Fault(400, f"Invalid input for {where} {field}. Value: {short(value)}. "
                         f"{short(number)} is less than the minimum of {minimum}")
    if number > maximum:
        raise Fault(400, f"Invalid input for {where} {field}. Value: {short(value)}. "
                         f"{short(number)} is greater than the maximum of {maximum}")
    return number


def check_body(body: Any) -> None:
    """The rules for what no schema bounds (free-form values, such as scheduler hints, included): every integer
    within the 64-bit range, and no string (key or value) with a NUL, which PostgreSQL's text cannot store."""
    for field, value in _offending(body, "body"):
        if isinstance(value, str):
            raise Fault(400, f"Invalid input for field/attribute {short(field)}. Value: {short(value)}. "
                             f"{short_repr(value)} contains a NUL character")
        integer(value, field)


def _offending(value: Any, field: str) -> Iterator[tuple[str, Any]]:
    if type(value) is int:
        if not MIN_INT64 <= value <= MAX_INT64:
            yield field, value
    elif isinstance(value, str):
        if "\x00" in value:
            yield field, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield field, key
            yield from _offending(item, str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _offending(item, str(index))


def short(value: Any) -> str:
    """``value`` as a message quotes it: at most ``ECHO_LIMIT`` characters."""
    text = str(value)
    return text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + "..."


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + "..."


def _message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, with the value it quotes shortened (its repr can be as long as the value)."""
    message = str(error.message)
    quoted = repr(error.instance)
    if len(quoted) > ECHO_LIMIT and quoted in message:
        message = message.replace(quoted, short_repr(error.instance))
    # what else it quotes (the names of unexpected properties, say) is cut as well
    return message if len(message) <= 2 * ECHO_LIMIT else message[:2 * ECHO_LIMIT] + "..."


def bool_from_string(value: Any, param: str) -> bool:
    """Nova's strict boolean parsing for query strings and bodies."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "t", "true", "on", "y", "yes"):
        return True
    if text in ("0", "f", "false", "off", "n", "no"):
        return False
    raise Fault(400, f"Invalid value '{short(value)}' for {param}: must be a boolean.")


def normalized_ipv6(text: str | None) -> str | None:
    """An IPv6 address as Nova stores it (its ``IPAddress`` column type prints netaddr's form): compressed, and an
    IPv4-compatible (``::a.b.c.d``) or IPv4-mapped (``::ffff:a.b.c.d``) address with its IPv4 part dotted."""
    if not text:
        return text
    address = ipaddress.IPv6Address(text)
    value = int(address)
    if value >> 32 == 0 and value > 0xFFFF:
        return f"::{ipaddress.IPv4Address(value)}"
    if value >> 32 == 0xFFFF:
        return f"::ffff:{ipaddress.IPv4Address(value & 0xFFFFFFFF)}"
    return str(address)
