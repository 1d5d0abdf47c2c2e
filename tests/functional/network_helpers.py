"""Helpers for the Networking API's functional tests: create through HTTP and check Neutron's error body."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def neutron_error(resp: httpx.Response, code: int, kind: str) -> str:
    """Assert ``{"NeutronError": {"type": kind, "message", "detail"}}`` with that status; returns the message."""
    assert resp.status_code == code, resp.text
    body = resp.json()
    assert list(body) == ["NeutronError"], body
    assert set(body["NeutronError"]) == {"type", "message", "detail"}, body
    assert body["NeutronError"]["type"] == kind, body
    return str(body["NeutronError"]["message"])


def create(client: httpx.Client, collection: str, key: str, **values: Any) -> dict[str, Any]:
    resp = client.post(f"/{collection}", json={key: values})
    assert resp.status_code == 201, resp.text
    return dict(resp.json()[key])


def network(client: httpx.Client, **values: Any) -> dict[str, Any]:
    return create(client, "networks", "network", name=values.pop("name", f"net-{uuid.uuid4().hex[:6]}"), **values)


def subnet(client: httpx.Client, network_id: str, cidr: str, **values: Any) -> dict[str, Any]:
    version = 6 if ":" in cidr else 4
    return create(client, "subnets", "subnet", network_id=network_id, cidr=cidr,
                  ip_version=values.pop("ip_version", version), **values)


def port(client: httpx.Client, network_id: str, **values: Any) -> dict[str, Any]:
    return create(client, "ports", "port", network_id=network_id, **values)
