"""The one validation layer of the identity API: request bodies and query strings checked against the schemas each
route declares (``stratus.identity.schema``), with Keystone's answers.

- A body is read only up to ``[oslo_middleware] max_request_body_size`` bytes (oslo.middleware's limit, which
  Keystone runs behind; the middleware in front of the app reads the same option): past it, 413
  ``Request is too large. …``.
- It must be JSON (no ``Content-Type``, or a JSON one) and decode to an object; else Keystone's 400 ``Expecting to
  find valid JSON in request body. …`` (``… application/json in Content-Type header. …``).
- Then the route's JSON schema (draft 4, as Keystone's validator): the first error as Keystone writes it,
  ``Invalid input for field 'a/b': <what is wrong>``; a value that is a secret or is long is not echoed back.
- No string anywhere (values, keys, query values, path parts) may hold a NUL: PostgreSQL cannot store one, so it is
  refused here rather than failing in the database; nor may a body nest deeper than ``MAX_DEPTH`` levels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import orjson
from jsonschema import exceptions as jsonschema_exc
from starlette.datastructures import QueryParams
from starlette.requests import Request

from stratus.identity.errors import IdentityError, bad_request

MAX_DEPTH = 32  # levels of nesting a body may have
_SECRET_FIELDS = frozenset({"password", "original_password", "secret"})
_ECHO_LIMIT = 64  # longest value repeated in an error message
_NOT_JSON = ("Expecting to find valid JSON in request body. The server could not comply with the request since it "
             "is either malformed or otherwise incorrect. The client is assumed to be in error.")
_NOT_JSON_TYPE = ("Expecting to find application/json in Content-Type header. The server could not comply with the "
                  "request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")


@dataclasses.dataclass(frozen=True)
class Body:
    """A route's body schema. ``root``: the member whose contents the schema describes (``auth`` for tokens, as
    Keystone validates the token request: error paths are then relative to it, and it must be there)."""

    schema: dict[str, Any]
    root: str | None = None


def _id_or_name(validator: Any, wanted: Any, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    """Keystone's check after the schema: a reference (user, project, domain) names an id or a name."""
    if wanted and isinstance(instance, dict) and "id" not in instance and "name" not in instance:
        yield jsonschema.ValidationError("id or name must be present.")


_Validator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"idOrName": _id_or_name})


_COMPILED: dict[int, tuple[dict[str, Any], Any]] = {}


def _compile(schema: dict[str, Any]) -> Any:
    """The validator of ``schema``, built once (schemas are module constants, never changed)."""
    hit = _COMPILED.get(id(schema))
    if hit is None or hit[0] is not schema:
        hit = _COMPILED[id(schema)] = (schema, _Validator(schema))
    return hit[1]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _ECHO_LIMIT else text[:_ECHO_LIMIT] + "…"


def _message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message without the offending value when it is a secret or long (Keystone's validator repeats
    the value; its own TODO says it should not for confidential or long ones)."""
    message = error.message
    last = error.path[-1] if error.path else None
    instance = repr(error.instance)
    if last in _SECRET_FIELDS and isinstance(error.instance, str):
        return message.replace(instance, "'***'", 1)
    if len(instance) > _ECHO_LIMIT:
        message = message.replace(instance, _short(error.instance), 1)
    return message if len(message) <= 4 * _ECHO_LIMIT else message[:4 * _ECHO_LIMIT] + "…"


def check(schema: dict[str, Any], value: Any) -> None:
    """400 with Keystone's wording unless ``value`` matches ``schema``."""
    _refuse_nul_and_depth(value)  # first: the schema validator recurses
    error = jsonschema_exc.best_match(_compile(schema).iter_errors(value))
    if error is None:
        return
    path = "/".join(str(p) for p in error.absolute_path)
    if error.validator == "idOrName":  # Keystone writes these few without quotes
        raise bad_request(f"Invalid input for field {path}: {error.message}")
    raise bad_request(f"Invalid input for field '{path}': {_message(error)}" if path else _message(error))


def _refuse_nul_and_depth(value: Any) -> None:
    """400 if any string in ``value`` (keys included) holds a NUL, or it nests deeper than ``MAX_DEPTH`` (the
    database's JSON encoder stops at 254 levels). Iterative: orjson accepts 1024 levels, more than Python's
    recursion limit."""
    pending: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                where = "/".join(path)
                raise bad_request(f"Invalid input for field '{where}': NUL characters are not allowed." if where
                                  else "Invalid input: NUL characters are not allowed.")
        elif len(path) > MAX_DEPTH:
            raise bad_request(f"Invalid input for field '{'/'.join(path[:3])}/…': more than {MAX_DEPTH} levels of "
                              "nesting.")
        elif isinstance(item, dict):
            for key, member in item.items():
                pending += [(key, path), (member, (*path, key))]
        elif isinstance(item, list):
            pending += [(member, (*path, str(index))) for index, member in enumerate(item)]


def validate_body(spec: Body, body: Any) -> Any:
    """``body`` checked against ``spec``; returns it."""
    if spec.root is None:
        check(spec.schema, body)
        return body
    if spec.root not in body:
        raise bad_request(f"'{spec.root}' is a required property")
    check(spec.schema, body[spec.root])
    return body


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON object, read at most ``limit`` bytes far (Keystone's 413/400 otherwise)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type != "application/json" and not (
            media_type.startswith("application/") and media_type.endswith("+json")):
        raise bad_request(_NOT_JSON_TYPE)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise _too_large(limit)
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise bad_request(_NOT_JSON) from None
    if not isinstance(body, dict):
        raise bad_request(_NOT_JSON)
    return body


def _too_large(limit: int) -> IdentityError:
    return IdentityError(413, f"Request is too large. Larger than max_request_body_size ({limit}).")


def check_query(schema: Mapping[str, dict[str, Any]], query: QueryParams) -> None:
    """Each query parameter the route knows against its schema (the first value, as Keystone reads them); unknown
    parameters pass, as in Keystone, but no value may hold a NUL."""
    for name, value in query.multi_items():
        if "\x00" in name or "\x00" in value:
            raise bad_request("NUL characters are not allowed in the URL.")
    for name, param in schema.items():
        if name in query:
            error = jsonschema_exc.best_match(_compile(param).iter_errors(query[name]))
            if error is not None:
                raise bad_request(f"Invalid input for field '{name}': {_message(error)}")


def check_path(params: Mapping[str, str]) -> None:
    if any("\x00" in v for v in params.values()):
        raise bad_request("NUL characters are not allowed in the URL.")
