"""What a handler's request gives: link prefixes built as Nova builds them, from Starlette's base URL found again
for the next request from the same place, never another request's."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from stratus import conf as conf_mod
from stratus.api import request as request_mod
from stratus.api.request import ApiRequest


def _scope(host: bytes | None, server: Any = ("127.0.0.1", 8774), scheme: str = "http", root: str = "",
           ) -> dict[str, Any]:
    headers = [(b"accept", b"*/*")] + ([(b"host", host)] if host is not None else [])
    return {"type": "http", "scheme": scheme, "server": server, "method": "GET", "root_path": root,
            "path": "/v2.1/servers", "query_string": b"a=1", "headers": headers}


SCOPES = [
    _scope(b"127.0.0.1:8774"), _scope(b"compute.example.com"), _scope(b"compute.example.com:8443", scheme="https"),
    _scope(None), _scope(None, server=("::1", 8774)), _scope(None, server=("10.0.0.1", 80)), _scope(None, server=None),
    _scope(b"[::1]:8774"), _scope(b"bad host:x"), _scope(b"h", root="/compute"), _scope(b"h", root="/compute/"),
    _scope(None, server=["10.0.0.2", 8774]),
]


@pytest.mark.parametrize("scope", SCOPES)
def test_the_base_url_is_starlettes(scope: dict[str, Any]) -> None:
    for _ in range(2):  # built, then found again
        assert request_mod.base_url(Request(scope)) == str(Request(scope).base_url)


def test_each_place_gets_its_own_base_url() -> None:
    seen = {request_mod.base_url(Request(s)) for s in SCOPES}
    assert seen == {str(Request(s).base_url) for s in SCOPES}


def test_link_prefixes_with_the_project_and_the_configured_prefix() -> None:
    class Services:
        conf = conf_mod.load()

    def prefixes(scope: dict[str, Any], project: str | None) -> tuple[str, str]:
        req = ApiRequest(raw=Request(scope), context=None, version=None, services=Services,  # type: ignore[arg-type]
                         path={}, url_project_id=project)
        assert req.link_prefix() is req.link_prefix()  # asked once per request
        return req.link_prefix()

    assert prefixes(_scope(b"c:8774"), None) == ("http://c:8774/v2.1", "http://c:8774")
    assert prefixes(_scope(b"c:8774"), "p1") == ("http://c:8774/v2.1/p1", "http://c:8774/p1")
    Services.conf.set_override("compute_link_prefix", "https://api.example.com/compute/", group="api")
    try:
        assert prefixes(_scope(b"c:8774"), None) == ("https://api.example.com/compute/v2.1",
                                                     "https://api.example.com/compute")
    finally:
        Services.conf.clear_override("compute_link_prefix", group="api")
