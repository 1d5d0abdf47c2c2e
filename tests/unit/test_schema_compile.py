"""The compiled validity test of a schema (stratus/api/schema_compile.py) answers as jsonschema's validator does,
for every schema the compute API validates with and for documents near valid ones; ``validate`` words every error
as jsonschema's best match from a fresh validator, however often its kept checker was used before."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stratus.api
from stratus.api import schema_compile, servers, servers_create, validation
from stratus.api.errors import Fault
from stratus.api.microversion import VERSIONS, APIVersion
from tests.unit.json_fuzz import ODD_TEXT, get, json_values, paths, replace, scalars

ALL_VERSIONS = [APIVersion.parse(v[0]) for v in VERSIONS]


def _module_schemas() -> list[dict[str, Any]]:
    """Every schema constant of the compute API's modules (a dict with a JSON Schema ``type``)."""
    found = []
    for info in pkgutil.iter_modules(stratus.api.__path__):
        module = importlib.import_module(f"stratus.api.{info.name}")
        for value in vars(module).values():
            if isinstance(value, dict) and value.get("type") in ("object", "array", "string", "integer"):
                found.append(value)
    return found


#: each distinct one once
SCHEMAS: list[dict[str, Any]] = list({json.dumps(s, sort_keys=True): s for s in (
    *(servers_create.create_schema(v) for v in ALL_VERSIONS), *(servers._update_schema(v) for v in ALL_VERSIONS),
    *_module_schemas())}.values())

UUID = "3d4b5a8e-1f2c-4d5e-8f9a-0b1c2d3e4f5a"
STRINGS = [*ODD_TEXT, UUID, UUID.upper(), "3d4b5a8e1f2c4d5e8f9a0b1c2d3e4f5a", "10.0.0.1", "10.0.0.256", "::1",
           "2001:db8::1", "fe80::1%eth0", "0", "1", "-1", "01", "1.5", "1e3", "2147483648", "9" * 20, "True", "true",
           "False", "false", "AUTO", "MANUAL", "none", "auto", "volume", "image", "local", "aGVsbG8=", "aGVsbG8",
           "a b", " a", "a ", "a,b", "a/b", "^[a-z]+$", "(", "host.example.com", "x" * 255, "x" * 63, "é" * 255]
texts = st.one_of(st.sampled_from(STRINGS), st.text(max_size=6))
odd = st.one_of(scalars, st.sampled_from([True, False, 0, 1, 1.0, -1, 0.5, 2**31, 2**63, -(2**63) - 1, None, [],
                                          {}, [1, 1], [True, 1], ["a", "a"], [{}], [[]]]), texts)


FORMATS = {"uuid": UUID, "ipv4": "10.0.0.1", "ipv6": "2001:db8::1", "base64": "aGVsbG8=", "regex": "^a+$"}


def likely(schema: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Documents ``schema`` likely accepts (its enums, formats, patterns, bounds, required members)."""
    if not isinstance(schema, dict) or depth > 6:
        return json_values
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("oneOf", "anyOf"):
        if schema.get(key):
            return st.one_of([likely(sub, depth + 1) for sub in schema[key]])
    types = schema.get("type", [])
    types = types if isinstance(types, list) else [types]
    options: list[st.SearchStrategy[Any]] = []
    props = schema.get("properties", {})
    if "object" in types or props:
        required = [k for k in schema.get("required", []) if k in props]
        extra: dict[str, st.SearchStrategy[Any]] = {}
        for pattern, sub in schema.get("patternProperties", {}).items():
            extra[f"k{pattern[:0]}"] = likely(sub, depth + 1)
        if isinstance(schema.get("additionalProperties"), dict):
            extra["other"] = likely(schema["additionalProperties"], depth + 1)
        options.append(st.fixed_dictionaries({k: likely(props[k], depth + 1) for k in required},
                                             optional={**{k: likely(v, depth + 1) for k, v in props.items()
                                                          if k not in required}, **extra}))
    if "array" in types:
        low, high = schema.get("minItems", 0), min(schema.get("maxItems", 3), 3)
        options.append(st.lists(likely(schema.get("items", {}), depth + 1), min_size=min(low, high),
                                max_size=max(low, high)))
    if "string" in types:
        if schema.get("format") in FORMATS:
            options.append(st.just(FORMATS[schema["format"]]))
        elif "pattern" in schema:
            low, high = schema.get("minLength", 0), schema.get("maxLength", 1 << 20)
            fits = [t for t in STRINGS if re.search(schema["pattern"], t) and low <= len(t) <= high]
            options.append(st.sampled_from(fits or STRINGS))
        else:
            options.append(st.text(min_size=schema.get("minLength", 0),
                                   max_size=max(schema.get("minLength", 0), min(schema.get("maxLength", 8), 8))))
    if "integer" in types or "number" in types:
        low = schema.get("minimum", -3)
        options.append(st.integers(min_value=int(low), max_value=int(low) + 20))
    if "boolean" in types:
        options.append(st.booleans())
    if "null" in types:
        options.append(st.none())
    return st.one_of(options) if options else json_values


@st.composite
def near(draw: st.DrawFn, schema: Any) -> Any:
    """A document ``schema`` likely accepts, as it is or with one place (or a new member) changed to anything."""
    document = draw(likely(schema))
    if draw(st.booleans()):
        return document
    path = draw(st.sampled_from(paths(document)))
    holder = get(document, path)
    if isinstance(holder, dict) and draw(st.booleans()):
        return replace(document, path, {**holder, draw(texts): draw(odd)})
    return replace(document, path, draw(st.one_of(odd, json_values)))


def fresh_is_valid(schema: dict[str, Any], document: Any) -> bool:
    return bool(validation._NovaValidator(schema, format_checker=validation._FORMATS).is_valid(document))


def _pairs() -> list[tuple[dict[str, Any], Any, Any, st.SearchStrategy[Any]]]:
    out = []
    for schema in SCHEMAS:
        normal = json.loads(json.dumps(schema, sort_keys=True))  # what the validator is built from
        out.append((normal, schema_compile.compile_schema(normal, validation._KEYWORDS, validation._FORMATS,
                                                          validation._as_number),
                    validation._NovaValidator(normal, format_checker=validation._FORMATS), near(normal)))
    return out


PAIRS = _pairs()
SEEN = {"valid": 0, "invalid": 0}


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_the_compiled_test_answers_as_jsonschema(data: st.DataObject) -> None:
    schema, check, validator, documents = data.draw(st.sampled_from(PAIRS))
    document = data.draw(documents)
    try:
        compiled = check(document)
    except schema_compile.Unknown:
        return
    expected = bool(validator.is_valid(document))
    SEEN["valid" if expected else "invalid"] += 1
    assert compiled == expected, (schema, document)


def test_the_documents_were_both_valid_and_invalid() -> None:
    """The comparison above saw plenty of both (it runs first)."""
    assert min(SEEN.values()) > 150, SEEN


@pytest.mark.parametrize(("schema", "document", "valid"), [
    ({"type": "integer"}, True, False),  # a bool is not an integer in Draft 4, 1.0 neither
    ({"type": "integer"}, 1.0, False),
    ({"type": "number"}, False, False),
    ({"type": ["integer", "string"], "minimum": 1}, "0", False),  # Nova's: numeric strings compared as numbers
    ({"type": ["integer", "string"], "minimum": 1}, "abc", True),
    ({"type": ["integer", "string"], "maximum": 5, "exclusiveMaximum": True}, "5", False),
    ({"minimum": 0}, True, True),
    ({"enum": [True, "True"]}, 1, False),  # enum tells a bool from an integer
    ({"enum": [1]}, True, False),
    ({"enum": [1]}, 1.0, True),
    ({"enum": ["a"]}, ["a"], False),
    ({"pattern": "b"}, "abc", True),  # a search, not a match
    ({"pattern": "^b"}, 5, True),
    ({"type": "object", "properties": {"a": {}}, "patternProperties": {"^x": {"type": "integer"}},
      "additionalProperties": False}, {"a": 1, "xy": 2}, True),
    ({"type": "object", "properties": {"a": {}}, "patternProperties": {"^x": {"type": "integer"}},
      "additionalProperties": False}, {"a": 1, "xy": "2"}, False),
    ({"properties": {"a": {}}, "additionalProperties": False}, {"b": 1}, False),
    ({"properties": {"xa": {"type": "string"}}, "patternProperties": {"^x": {"type": "integer"}}}, {"xa": "s"},
     False),  # a property that matches a pattern as well is checked against both
    ({"additionalProperties": {"type": "string"}}, {"b": 1}, False),
    ({"oneOf": [{"type": "string"}, {"maxLength": 3}]}, "ab", False),  # valid under both
    ({"oneOf": [{"type": "string"}, {"maxLength": 3}]}, "abcd", True),
    ({"anyOf": [{"type": "string"}, {"type": "null"}]}, None, True),
    ({"not": {"type": "string"}}, "a", False),
    ({"type": "array", "uniqueItems": True}, [1, True], True),
    ({"type": "array", "uniqueItems": True}, [{"a": 1}, {"a": 1}], False),
    ({"items": {"type": "string"}, "minItems": 1, "maxItems": 2}, ["a", 1], False),
    ({"minProperties": 1, "maxProperties": 1}, {}, False),
    ({"format": "uuid"}, UUID, True),
    ({"format": "uuid"}, UUID.replace("-", ""), False),
    ({"format": "ipv4"}, "10.0.0.256", False),
    ({"format": "no-such-format"}, "x", True),
    ({"required": ["a"]}, [], True),
    ({"minLength": 2}, "é", False),
    ({"properties": {"a": False}}, {"a": 1}, False),  # a boolean subschema, as jsonschema's descend reads it
    ({"properties": {"a": True}}, {"a": 1}, True),
])
def test_each_keyword_as_jsonschema(schema: Any, document: Any, valid: bool) -> None:
    check = schema_compile.compile_schema(schema, validation._KEYWORDS, validation._FORMATS, validation._as_number)
    assert fresh_is_valid(schema, document) is valid
    assert check(document) is valid


@pytest.mark.parametrize("schema", [
    {"$ref": "#/definitions/x", "definitions": {"x": {"type": "string"}}},
    {"type": "any"},
    {"items": [{"type": "string"}]},
    {"multipleOf": 2},
    {"dependencies": {"a": ["b"]}},
])
def test_what_is_not_written_out_goes_to_jsonschema(schema: dict[str, Any]) -> None:
    check = schema_compile.compile_schema(schema, validation._KEYWORDS, validation._FORMATS, validation._as_number)
    with pytest.raises(schema_compile.Unknown):
        check([1])


def test_validate_with_a_kept_checker_words_errors_as_a_fresh_validator() -> None:
    """The create schema's checker, used for many bodies in a row, refuses each invalid one with the message a
    validator built for it alone gives (the best match, its field and value), and takes each valid one."""
    schema = servers_create.create_schema(APIVersion.parse("2.74"))
    template = {"server": {"name": "s", "imageRef": UUID, "flavorRef": "1", "networks": "none",
                           "metadata": {"a": "b"}, "min_count": 1, "host": "h1"}}
    bodies: list[Any] = [template]
    for path, bad in ((("name",), ""), (("name",), " x"), (("imageRef",), "abc"), (("flavorRef",), ""),
                      (("networks",), "some"), (("networks",), [{"uuid": UUID, "tag": "t"}]), (("min_count",), 0),
                      (("min_count",), "0"), (("min_count",), True), (("metadata",), {"a" * 256: "b"}),
                      (("metadata",), {"a": 1}), (("host",), "a b"), (("accessIPv4",), "::1"),
                      (("config_drive",), 1), (("user_data",), "x" * 65536), (("bogus",), 1)):
        server = {**template["server"], path[0]: bad}
        bodies += [{"server": server}, template]
    bodies += [{}, [], {"server": None}, {"server": {}}, {"server": template["server"], "extra": 1}]
    for body in bodies:
        fresh = jsonschema.exceptions.best_match(jsonschema.validators.extend(
            jsonschema.Draft4Validator, {"minimum": validation._minimum, "maximum": validation._maximum})(
                json.loads(json.dumps(schema, sort_keys=True)), format_checker=validation._FORMATS).iter_errors(body))
        if fresh is None:
            validation.validate(schema, body)
            continue
        with pytest.raises(Fault) as caught:
            validation.validate(schema, body)
        expected = validation._message(fresh) if not fresh.absolute_path else (
            f"Invalid input for field/attribute {validation.short(fresh.absolute_path[-1])}. "
            f"Value: {validation.short(fresh.instance)}. {validation._message(fresh)}")
        assert (caught.value.code, caught.value.message) == (400, expected), body
