"""The caller's X-OpenStack-Request-ID is taken only in oslo.middleware's format: instance actions store it
(255 characters) and every response echoes it, so a long or odd one gets a fresh id instead."""

from __future__ import annotations

import re

import pytest

from stratus.identity.auth import _request_id

FRESH = re.compile(r"^req-[0-9a-f-]{36}$")


def test_a_well_formed_request_id_is_kept() -> None:
    given = "req-0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
    assert _request_id({"x-openstack-request-id": given}) == given


@pytest.mark.parametrize("given", ["req-" + "a" * 300, "req-x", "req-0B1C2D3E-4F50-4A6B-8C7D-9E0F1A2B3C4D",
                                   "req-0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d\r\nX-Evil: 1", "", "abc"])
def test_anything_else_gets_a_fresh_one(given: str) -> None:
    got = _request_id({"x-openstack-request-id": given})
    assert got != given and FRESH.match(got), got
