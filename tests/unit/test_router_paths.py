"""The compute API's path table finds, for every path, the entry and parameters Starlette's router found: the first
route (in the table's order) whose ``^template$`` regex matches, trailing slashes, empty segments and a final
newline included."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.routing import compile_path

from stratus.api import router, routes

_PLACEHOLDER = re.compile(r"{[a-zA-Z_][a-zA-Z0-9_]*}")


def _entries() -> list[router.PathEntry]:
    versions = [router.PathEntry(p, None, frozenset({"GET", "HEAD"}), (), with_params=False)
                for p in ("/", "/v2.1", "/v2.1/", "/v2", "/v2/")]
    return [*versions, *router.build(routes.ROUTES, None)]  # type: ignore[arg-type]  # no request is served


def _starlette(regexes: list[re.Pattern[str]], path: str) -> tuple[int, dict[str, Any]] | None:
    """What Starlette's router took: the first route whose regex matches, and its path parameters."""
    for index, regex in enumerate(regexes):
        found = regex.match(path)
        if found:
            return index, found.groupdict()
    return None


def _probes(entries: list[router.PathEntry]) -> list[str]:
    values = ["abc", "detail", "action", "1", "a b", "x.y", "ü", "%2F", "a\nb"]
    paths = {"", "/", "//", "/v2.1//servers", "/v2.1/servers//action", "/v3", "/v2.1/no-such/thing"}
    for entry in entries:
        for value in values:
            path = _PLACEHOLDER.sub(value, entry.template)
            paths.update({path, path + "/", path + "\n", path + "/\n", path + "/extra", path[:-1], path + "x"})
            head, _, tail = path.partition("/v2.1/")
            paths.update({head + "/v2.1/" + tail.replace("/", "\n/", 1), head + "/v2.1\n/" + tail})
        paths.add(_PLACEHOLDER.sub("", entry.template))  # an empty segment
    return sorted(paths)


def _synthetic() -> list[router.PathEntry]:
    """Templates with a placeholder right after the version, which the table has none of today."""
    templates = ["/v2.1/b/x", "/v2.1/{a}/x", "/v2.1/b/{c}", "/v2.1/{a}", "/v2.1/b", "/v2.1/os-{d}/y", "/v2.1/{a}/{e}/z"]
    return [router.PathEntry(t, None, router.METHODS, tuple(n.strip("{}") for n in _PLACEHOLDER.findall(t)))
            for t in templates]


@pytest.mark.parametrize("make", [_entries, _synthetic])
def test_every_probe_finds_what_starlette_found(make: Any) -> None:
    entries = make()
    table = router.PathTable(entries)
    regexes = [compile_path(entry.template)[0] for entry in entries]  # Starlette's, as its Route compiles them
    probes = _probes(entries)
    assert len(probes) > (4000 if make is _entries else 50)
    for path in probes:
        expected = _starlette(regexes, path)
        found = table.lookup(path)
        got = None if found is None else (entries.index(found[0]), found[1])
        assert got == expected, path


@pytest.mark.parametrize(("path", "template", "params"), [
    ("/v2.1/servers/detail", "/v2.1/servers/detail", {}),  # the literal, not the template of a server
    ("/v2.1/servers/abc", "/v2.1/servers/{server_id}", {"server_id": "abc"}),
    ("/v2.1/servers/abc\n", "/v2.1/servers/{server_id}", {"server_id": "abc\n"}),  # the greedy placeholder
    ("/v2.1/servers\n", "/v2.1/servers", {}),  # ``$`` before a final newline
    ("/v2.1/servers/abc/action", "/v2.1/servers/{server_id}/action", {"server_id": "abc"}),
])
def test_known_paths(path: str, template: str, params: dict[str, str]) -> None:
    found = router.PathTable(_entries()).lookup(path)
    assert found is not None and (found[0].template, found[1]) == (template, params)


@pytest.mark.parametrize("path", ["/v2.1/servers/", "/v2.1/servers/abc/", "/v2.1/servers//action", "/v2.1/x"])
def test_no_entry(path: str) -> None:
    assert router.PathTable(_entries()).lookup(path) is None


def test_header_dict_is_what_starlettes_headers_get() -> None:
    from starlette.datastructures import Headers

    raw = [(b"x-auth-token", b"a:b"), (b"openstack-api-version", b"compute 2.5"), (b"x-auth-token", b"c:d"),
           (b"x-latin", "é".encode("latin-1"))]
    headers = router.header_dict(raw)
    starlette = Headers(raw=raw)
    for name in ("x-auth-token", "openstack-api-version", "x-latin", "content-type"):
        assert headers.get(name) == starlette.get(name)
