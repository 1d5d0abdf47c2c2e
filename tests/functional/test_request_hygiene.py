"""What every request of the compute API (and the identity API's body limit) goes through, on a running all-in-one:
the body size limit, Content-Type, the URL's project id, and clients that go away mid-body."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Cloud
from tests.functional.helpers import fault

LIMIT = 114688  # [oslo_middleware] max_request_body_size's default
TOO_LARGE = {"code": "413 Request Entity Too Large", "title": "Request Entity Too Large"}


def groups(cloud: Cloud) -> int:
    with sqlite3.connect(cloud.state_path / "stratus.sqlite") as db:
        return int(db.execute("select count(*) from instance_groups").fetchone()[0])


def group_body(name_size: int) -> bytes:
    return json.dumps({"server_group": {"name": "n" * name_size, "policies": ["affinity"]}}).encode()


def test_bodies_past_the_limit_are_413_and_store_nothing(cloud: Cloud) -> None:
    before = groups(cloud)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    with cloud.client(token="big:proj-big") as c:
        resp = c.post("/os-server-groups", content=group_body(LIMIT), headers=headers)
        assert resp.status_code == 413, resp.text
        assert resp.json() == {"message": f"Request is too large. Larger than max_request_body_size ({LIMIT})."
                                          "<br /><br />\n\n\n", **TOO_LARGE}

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it comes
            body = group_body(LIMIT)
            for i in range(0, len(body), 16384):
                yield body[i:i + 16384]

        resp = c.post("/os-server-groups", content=chunks(), headers=headers)
        assert resp.status_code == 413, resp.text
        assert resp.json() == {"message": f"Request is too large. Larger than {LIMIT}.<br /><br />\n\n\n", **TOO_LARGE}
        assert resp.headers["Connection"] == "close"
    assert groups(cloud) == before
    # the identity API has the same limit
    resp = httpx.post(cloud.identity_url + "/auth/tokens", content=b"{" + b" " * LIMIT + b"}", headers=headers)
    assert resp.status_code == 413 and resp.json()["title"] == "Request Entity Too Large"


def test_a_body_within_the_limit_is_read_and_errors_echo_it_briefly(cloud: Cloud) -> None:
    with cloud.client(token="big:proj-big") as c:
        resp = c.post("/os-server-groups", content=group_body(LIMIT - 100))
        message = fault(resp, 400, "badRequest")
        assert message.startswith("Invalid input for field/attribute name. Value: nnnn") and message.endswith(
            "... is too long")
        assert len(resp.content) < 1000  # not the 112 KiB it was sent


@pytest.mark.parametrize("content_type", ["application/xml", "text/html", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_is_415(cloud: Cloud, content_type: str) -> None:
    before = groups(cloud)
    with cloud.client(token="ct:proj-ct") as c:
        headers = {"Content-Type": content_type}
        resp = c.post("/os-server-groups", content=group_body(4), headers=headers)
        assert fault(resp, 415, "badMediaType") == "Unsupported Content-Type"
        fault(c.get("/flavors", headers=headers), 415, "badMediaType")  # Nova asks it of every request
    assert groups(cloud) == before


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "text/plain"}, {"Content-Type": ""},
                                     {"Content-Type": "application/json; charset=UTF-8"},
                                     {"Content-Type": "application/vnd.openstack.compute+json"}])
def test_json_bodies_nova_reads(cloud: Cloud, headers: dict[str, str]) -> None:
    with cloud.client(token="ct:proj-ct") as c:
        resp = c.post("/os-server-groups", content=group_body(4), headers=headers)
        assert resp.status_code == 200, resp.text
        assert c.delete(f"/os-server-groups/{resp.json()['server_group']['id']}").status_code == 204


def test_the_urls_project_must_be_the_tokens(cloud: Cloud) -> None:
    with cloud.client(token="pat:proj-pat") as c, cloud.client() as admin:
        assert c.get("/proj-pat/servers/detail").status_code == 200
        for client, project in ((c, "proj-pat"), (admin, "admin")):  # admins too, as in Nova
            for path in ("/proj-other/servers/detail", "/proj-other/flavors", "/proj-other/os-server-groups"):
                assert fault(client.get(path), 400, "badRequest") == (
                    f"Malformed request URL: URL's project_id 'proj-other' doesn't match Context's project_id "
                    f"'{project}'")


def test_a_client_gone_mid_body_is_no_error_of_the_server(cloud: Cloud) -> None:
    url = urlsplit(cloud.compute_url)
    mark = cloud.log_path.stat().st_size
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(b"POST /v2.1/os-server-groups HTTP/1.1\r\nHost: stratus\r\nX-Auth-Token: gone:proj-gone\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"server_group\": ")
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while "went away before sending the whole body" not in (log := cloud.log_path.read_bytes()[mark:].decode()):
        assert time.monotonic() < deadline, log
        time.sleep(0.05)
    line = next(x for x in log.splitlines() if "went away before sending the whole body" in x)
    assert " INFO stratus.sizelimit POST /v2.1/os-server-groups: " in line
    assert "Traceback" not in log and " ERROR " not in log, log


DEEP = "[" * 1000 + "]" * 1000


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/os-server-groups", "[" * 1000 + "1" * 20 + "]" * 1000),  # the parser, for a long integer
    ("POST", "/os-server-groups", '{"server_group": ' + DEEP + "}"),  # the validator's message (its repr)
    ("POST", "/servers", '{"server": {"name": "x", "flavorRef": "1", "networks": "none"}, '
                         '"os:scheduler_hints": {"a": ' + DEEP + "}}"),  # the range rule, over free-form hints
    ("PUT", "/os-services/1", DEEP),
])
def test_bodies_nested_too_deep_are_400(cloud: Cloud, method: str, path: str, body: str) -> None:
    """Found by tests/functional/test_api_fuzz.py: 1000 levels of arrays were a RecursionError, a 500."""
    before = groups(cloud)
    with cloud.client(token="admin:admin", version="2.64") as c:
        resp = c.request(method, path, content=body)
        assert fault(resp, 400, "badRequest") == ("Malformed request body: arrays and objects nested more than 64 "
                                                  "levels deep")
        assert not [s for s in c.get("/servers", params={"all_tenants": 1}).json()["servers"] if s["name"] == "x"]
    assert groups(cloud) == before
