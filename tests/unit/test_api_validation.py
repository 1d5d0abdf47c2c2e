"""The compute API's request rules, in process: the integer range rule, Nova's validator semantics and wording,
regex query parameters, bounded echoes, JSON parsing, header-safe Locations, Content-Type and the URL's project."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import QueryParams

from stratus.api import validation
from stratus.api.errors import MAX_MESSAGE, Fault, client_error, fault_body
from stratus.api.microversion import APIVersion
from stratus.api.quota_sets import update_schema
from stratus.api.request import MAX_DEPTH, location, parse_json
from stratus.api.router import check_content_type, check_url_project, check_url_text
from stratus.api.server_groups import CREATE_SCHEMA_V264
from stratus.api.servers_create import create_schema

BIG = 2**70  # past 64 bits: orjson, SQLite and PostgreSQL's bigint carry none of these


def message(schema: dict[str, Any], body: Any) -> str:
    with pytest.raises(Fault) as caught:
        validation.validate(schema, body)
    assert caught.value.code == 400
    return caught.value.message


def group(rules: dict[str, Any]) -> dict[str, Any]:
    return {"server_group": {"name": "g", "policy": "anti-affinity", "rules": rules}}


def test_json_keeps_integers_exact_at_any_size() -> None:
    assert parse_json(b'{"a": %d, "b": 1.5, "c": "%s"}' % (BIG, b"9" * 30)) == {"a": BIG, "b": 1.5, "c": "9" * 30}
    assert type(parse_json(b"[12345678901234567890123]")[0]) is int
    for bad in (b'{"a": NaN}', b"[Infinity]", b"[1e400]", b'"\\ud800"', b'"\xff"', b"[" + b"9" * 5000 + b"]"):
        with pytest.raises(Fault) as caught:
            parse_json(bad)
        assert (caught.value.code, caught.value.message) == (400, "Malformed request body"), bad


def test_json_nested_too_deep_is_a_400_not_a_recursion_error() -> None:
    """A body nested near orjson's limit (1024) once reached the standard library's parser (with a long integer),
    the validator's reprs or the range rule, each recursing past Python's limit: a 500."""
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    for bad in (b"[" * 1000 + b"1" * 20 + b"]" * 1000, b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
                b'{"a": ' * 600 + b"1" + b"}" * 600):
        with pytest.raises(Fault) as caught:
            parse_json(bad)
        assert (caught.value.code, caught.value.message) == (
            400, f"Malformed request body: arrays and objects nested more than {MAX_DEPTH} levels deep"), bad[:10]


@pytest.mark.parametrize("value", [BIG, str(BIG), "9" * 5000])
def test_unbounded_nova_integers_stay_within_64_bits(value: Any) -> None:
    text = message(CREATE_SCHEMA_V264, group({"max_server_per_host": value}))
    assert text.startswith("Invalid input for field/attribute max_server_per_host. Value: ")
    assert text.endswith(" is greater than the maximum of 9223372036854775807")
    validation.validate(CREATE_SCHEMA_V264, group({"max_server_per_host": str(2**63 - 1)}))


def test_bounds_apply_to_numeric_strings_as_novas_validator() -> None:
    assert message(CREATE_SCHEMA_V264, group({"max_server_per_host": "0"})) == (
        "Invalid input for field/attribute max_server_per_host. Value: 0. 0 is less than the minimum of 1")
    quota = update_schema("quota_set", ())
    for value in (BIG, str(BIG)):  # Nova's own bound (the database's integer) where Nova has one
        assert message(quota, {"quota_set": {"cores": value}}) == (
            f"Invalid input for field/attribute cores. Value: {BIG}. {BIG} is greater than the maximum of 2147483647")
    assert message(quota, {"quota_set": {"cores": "-2"}}).endswith("-2 is less than the minimum of -1")


def test_every_other_integer_of_a_body_is_within_64_bits() -> None:
    schema = create_schema(APIVersion.parse("2.64"))
    body = {"server": {"name": "s", "flavorRef": "1", "networks": "none"}, "os:scheduler_hints": {"mine": [1, BIG]}}
    assert message(schema, body) == (f"Invalid input for field/attribute 1. Value: {BIG}. {BIG} is greater than "
                                     "the maximum of 9223372036854775807")
    body["os:scheduler_hints"] = {"mine": [1, -(2**63)]}
    validation.validate(schema, body)


def test_no_string_of_a_body_carries_a_nul() -> None:
    schema = create_schema(APIVersion.parse("2.64"))
    server = {"name": "s", "flavorRef": "1", "networks": "none"}
    for hints, field in (({"mine": "a\x00b"}, "mine"), ({"x": ["ok", "a\x00b"]}, "1"),
                         ({"a\x00b": 1}, "os:scheduler_hints")):
        assert message(schema, {"server": server, "os:scheduler_hints": hints}) == (
            f"Invalid input for field/attribute {field}. Value: a\x00b. 'a\\x00b' contains a NUL character")
    meta = {"server": {**server, "metadata": {"k": "a\x00b"}}}  # Nova's metadata schema takes it; PostgreSQL not
    assert message(schema, meta).endswith("'a\\x00b' contains a NUL character")


def test_no_nul_in_the_url() -> None:
    check_url_text("/v2.1/servers/abc", [("name", "^web$")])
    for path, query in (("/v2.1/servers/a\x00b", []), ("/v2.1/servers", [("host", "h\x00")]),
                        ("/v2.1/servers", [("a\x00", "1")])):
        with pytest.raises(Fault) as caught:
            check_url_text(path, query)
        assert (caught.value.code, caught.value.message) == (400, "Malformed request URL: it contains a NUL "
                                                                  "character.")


def test_query_integers() -> None:
    assert validation.integer("12", "limit", minimum=0, where="query parameters") == 12
    with pytest.raises(Fault) as caught:
        validation.integer(str(BIG), "offset", minimum=0, where="query parameters")
    assert caught.value.message == (f"Invalid input for query parameters offset. Value: {BIG}. {BIG} is greater "
                                    "than the maximum of 9223372036854775807")


@pytest.mark.parametrize("pattern", ["(", "[", "*", "a{2,1}", ""])
def test_regex_query_parameters(pattern: str) -> None:
    with pytest.raises(Fault) as caught:
        validation.validate_query(QueryParams({"name": pattern}), {"name": validation.query_regex})
    assert caught.value.message == (f"Invalid input for query parameters name. Value: {pattern}. {pattern!r} is not "
                                    "a 'regex'")
    validation.validate_query(QueryParams({"name": "^web-[0-9]+$"}), {"name": validation.query_regex})


def test_messages_quote_values_shortly() -> None:
    long = "x" * 100_000
    text = message(CREATE_SCHEMA_V264, {"server_group": {"name": long, "policy": "affinity"}})
    assert len(text) < 600 and text.endswith("... is too long")
    text = message(CREATE_SCHEMA_V264, {"server_group": {"name": "g", "policy": "affinity", long: 1}})
    assert len(text) < 700 and "Additional properties are not allowed ('xxx" in text
    # and no fault carries more, whatever a handler put in it
    assert len(fault_body(404, f"Instance {long} could not be found.")["itemNotFound"]["message"]) == MAX_MESSAGE + 3


def test_whole_body_errors_are_the_message_alone() -> None:
    assert message(CREATE_SCHEMA_V264, {}) == "'server_group' is a required property"


def test_server_tags_refuse_control_characters() -> None:
    for tag in ("a\nb", "a\rb", "a\x00b", "a/b", "a,b", "", "t" * 61):
        assert validation.error_message(validation.server_tag, tag) is not None, tag
    assert validation.error_message(validation.server_tag, "€ and spaces") is None


def test_location_is_header_safe() -> None:
    assert location("http://h:8774/v2.1/servers/u/tags/%E2%82%AC") == {
        "Location": "http://h:8774/v2.1/servers/u/tags/%E2%82%AC"}
    header = location("http://h/v2.1/€ x/servers/u")["Location"]
    assert header == "http://h/v2.1/%E2%82%AC%20x/servers/u"
    header.encode("ascii")


@pytest.mark.parametrize("header", [None, "", "text/plain", "application/json", "application/json; charset=UTF-8",
                                    "application/vnd.openstack.compute+json"])
def test_content_types_nova_reads(header: str | None) -> None:
    check_content_type(header)


@pytest.mark.parametrize("header", ["application/xml", "text/html", "application/x-www-form-urlencoded",
                                    "Application/JSON"])
def test_other_content_types_are_415(header: str) -> None:
    with pytest.raises(Fault) as caught:
        check_content_type(header)
    assert (caught.value.code, caught.value.message) == (415, "Unsupported Content-Type")


def test_url_project_must_be_the_tokens() -> None:
    check_url_project(None, "p")
    check_url_project("p", "p")
    with pytest.raises(Fault) as caught:
        check_url_project("q", "p")
    assert (caught.value.code, caught.value.message) == (
        400, "Malformed request URL: URL's project_id 'q' doesn't match Context's project_id 'p'")


def test_client_errors_of_called_services() -> None:
    assert [client_error(c) for c in (400, 401, 403, 404, 409, 410, 413, 500, 503)] == [
        400, 403, 403, 404, 409, 400, 413, None, None]


def test_a_schema_object_keeps_its_validator_and_another_gets_its_own() -> None:
    """Validators are kept by the schema object's identity (a boot's body costs less to validate than its schema
    to serialise): the same object finds its validator again, another schema is not judged by it."""
    loose = {"type": "object"}
    strict = {"type": "object", "required": ["x"]}
    assert validation._validator_of(loose) is validation._validator_of(loose)
    validation.validate(loose, {})
    with pytest.raises(Fault):
        validation.validate(strict, {})
    assert create_schema(APIVersion.parse("2.64")) is create_schema(APIVersion.parse("2.64"))


@pytest.mark.parametrize("text", ["::", "::1", "::ffff", "::1:0", "::ffff:0:1", "::fffe:1.2.3.4", "::0.1.0.0",
                                  "::255.255.255.255", "1::ffff:1.2.3.4", "2001:DB8::A",
                                  "0000:0000:0000:0000:0000:babe:220.12.22.2"])
def test_ipv6_is_stored_as_nova_prints_it(text: str) -> None:
    """Nova's IPAddress column type prints netaddr's form (tempest compares accessIPv6 with it)."""
    import netaddr

    from stratus.api.validation import normalized_ipv6

    assert normalized_ipv6(text) == str(netaddr.IPAddress(text))
