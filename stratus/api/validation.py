"""Request body and query validation with JSON Schema, reporting errors the way Nova words them."""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema
from jsonschema import Draft4Validator

from stratus.api.errors import Fault

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
positive_integer = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1, "minLength": 1}
non_negative_integer = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0, "minLength": 1}
# A server or device tag, and the tags one server may carry (Nova's instance.MAX_TAG_COUNT).
tag = {"type": "string", "minLength": 1, "maxLength": 60, "pattern": "^[^,/]*$"}
MAX_TAGS = 50
tags = {"type": "array", "items": tag, "maxItems": MAX_TAGS}
# Trusted image certificate ids (2.63): null, or 1 to 50 unique non-empty strings.
trusted_certs = {"type": ["array", "null"], "minItems": 1, "maxItems": 50, "uniqueItems": True,
                 "items": {"type": "string", "minLength": 1}}


@functools.lru_cache(maxsize=512)
def _validator(schema_json: str) -> Draft4Validator:
    return Draft4Validator(json.loads(schema_json), format_checker=jsonschema.FormatChecker())


def validate(schema: dict[str, Any], body: Any) -> None:
    """Raise a 400 Fault naming the first invalid field, as Nova's validator does."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is None:
        return
    if error.validator == "required":
        raise Fault(400, f"Invalid input for field/attribute {_path(error)}. Value: {_short(error.instance)}. "
                         f"{error.message}")
    if error.validator == "additionalProperties":
        raise Fault(400, f"Additional properties are not allowed ({_unexpected(error)} was unexpected)")
    path = _path(error) or "body"
    raise Fault(400, f"Invalid input for field/attribute {path}. Value: {_short(error.instance)}. "
                     f"{error.message}")


def _path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return "/".join(parts) if parts else (str(error.schema_path[-1]) if error.schema_path else "")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _unexpected(error: jsonschema.ValidationError) -> str:
    allowed = set(error.schema.get("properties", {}))
    extra = sorted(k for k in error.instance if k not in allowed) if isinstance(error.instance, dict) else []
    return ", ".join(repr(k) for k in extra) or "a property"


def bool_from_string(value: Any, param: str) -> bool:
    """Nova's strict boolean parsing for query strings and bodies."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "t", "true", "on", "y", "yes"):
        return True
    if text in ("0", "f", "false", "off", "n", "no"):
        return False
    raise Fault(400, f"Invalid value '{value}' for {param}: must be a boolean.")
