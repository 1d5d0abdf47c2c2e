"""Flavor bodies per microversion: description from 2.55, extra_specs from 2.61 only where policy allows."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

from stratus.api import flavors
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest
from stratus.context import RequestContext
from stratus.identity import policy

FLAVOR: dict[str, Any] = {
    "id": 1, "flavorid": "1", "name": "m1.tiny", "memory_mb": 512, "vcpus": 1, "root_gb": 1, "ephemeral_gb": 0,
    "swap": 0, "rxtx_factor": 1.0, "is_public": True, "disabled": False, "description": "small",
    "extra_specs": {"hw:cpu_policy": "dedicated"},
}


def _request(version: str, roles: tuple[str, ...] = ("reader",)) -> ApiRequest:
    raw = Request({"type": "http", "scheme": "http", "server": ("compute", 8774), "path": "/v2.1/flavors/1",
                   "root_path": "", "headers": [], "query_string": b""})
    services: Any = SimpleNamespace(conf=SimpleNamespace(api=SimpleNamespace(compute_link_prefix=None)))
    return ApiRequest(raw=raw, context=RequestContext(user_id="u", project_id="p", roles=list(roles)),
                      version=APIVersion.parse(version), services=services, path={}, url_project_id=None)


@pytest.mark.parametrize(("version", "keys"), [
    ("2.54", set()),
    ("2.55", {"description"}),
    ("2.60", {"description"}),
    ("2.61", {"description", "extra_specs"}),
])
def test_show_view_per_version(version: str, keys: set[str]) -> None:
    body = flavors.show_view(_request(version), FLAVOR)
    assert {"description", "extra_specs"} & body.keys() == keys
    if "extra_specs" in keys:
        assert body["extra_specs"] == {"hw:cpu_policy": "dedicated"}


def test_extra_specs_left_out_when_policy_refuses_the_index() -> None:
    """A caller without even the reader role on the project: the extra specs index rule refuses it."""
    assert not policy.check(_request("2.61", roles=()).context, "os_compute_api:os-flavor-extra-specs:index")
    body = flavors.show_view(_request("2.61", roles=()), FLAVOR)
    assert "extra_specs" not in body and body["description"] == "small"
