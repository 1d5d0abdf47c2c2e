"""os-server-external-events' plain-Python check of a body: it passes only bodies the schema's validator accepts
(and ``check_body`` passes), so every body is accepted or refused exactly as by the validator alone."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stratus.api import server_external_events as events
from stratus.api import validation
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion

UUID = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
GOOD = {"events": [{"server_uuid": UUID, "name": "network-vif-plugged", "status": "completed",
                    "tag": "6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d"}]}


def _with(change: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD)
    change(body)
    return body


BODIES: list[Any] = [
    GOOD,
    {"events": [{"server_uuid": UUID, "name": "network-changed"}]},
    {"events": [{"server_uuid": UUID.upper(), "name": "network-vif-deleted", "status": "failed"}] * 3},
    {"events": [{"server_uuid": UUID, "name": "power-update", "tag": "POWER_ON"}]},  # 2.76+ only
    {"events": []}, {"events": {}}, {}, [], None, "events", {"events": [GOOD["events"][0]], "more": 1},
    _with(lambda b: b["events"][0].update(server_uuid="not-a-uuid")),
    _with(lambda b: b["events"][0].update(server_uuid="{" + UUID + "}")),
    _with(lambda b: b["events"][0].update(server_uuid=UUID.replace("-", ""))),
    _with(lambda b: b["events"][0].update(server_uuid=UUID + "\x00")),
    _with(lambda b: b["events"][0].update(server_uuid=7)),
    _with(lambda b: b["events"][0].pop("server_uuid")),
    _with(lambda b: b["events"][0].pop("name")),
    _with(lambda b: b["events"][0].update(name="network-vif-exploded")),
    _with(lambda b: b["events"][0].update(status=None)),
    _with(lambda b: b["events"][0].update(status="done")),
    _with(lambda b: b["events"][0].update(tag="x" * 255)),
    _with(lambda b: b["events"][0].update(tag="x" * 256)),
    _with(lambda b: b["events"][0].update(tag="a\x00b")),
    _with(lambda b: b["events"][0].update(tag=None)),
    _with(lambda b: b["events"][0].update(code=200)),
    _with(lambda b: b["events"].append("plugged")),
]


def _validator_says(schema: dict[str, Any], body: Any) -> str | None:
    try:
        validation.validate(schema, body)
    except Fault as fault:
        return fault.message
    return None


@pytest.mark.parametrize("version", ["2.1", "2.51", "2.76", "2.93"])
@pytest.mark.parametrize("index", range(len(BODIES)))
def test_the_plain_check_passes_only_what_the_validator_accepts(version: str, index: int) -> None:
    schema, names = events._schema(APIVersion.parse(version))
    body = BODIES[index]
    if events._plainly_valid(body, names):
        assert _validator_says(schema, body) is None


def test_what_neutron_sends_takes_the_plain_path() -> None:
    _schema, names = events._schema(APIVersion.parse("2.1"))
    assert events._plainly_valid(GOOD, names)
    assert events._plainly_valid(BODIES[2], names)
    assert not events._plainly_valid(BODIES[3], names)  # power-update: not before 2.76
    assert not events._plainly_valid(_with(lambda b: b["events"][0].update(tag="a\x00b")), names)
