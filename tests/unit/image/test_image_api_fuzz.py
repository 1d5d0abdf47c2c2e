"""The image API's JSON routes driven with generated bad input (bodies and JSON patches mutated from valid ones,
wrong types, huge strings, NUL bytes, non-UTF-8, odd ids, tags and query strings): never a 500, always Glance's
error body without a traceback, and nothing stored changes when a request is refused."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from stratus.db import models
from stratus.image.embedded import ImageStore
from tests.unit.json_fuzz import bodies, texts

TABLES = [models.images, models.image_properties, models.image_tags, models.image_locations]
PATCH_TYPE = "application/openstack-images-v2.1-json-patch"
BUDGET_SECONDS = 20.0  # a safety net for slow machines (the module takes ~10 s): later examples send nothing
_STARTED: list[float] = []
IMAGE = {"name": "cirros", "disk_format": "raw", "container_format": "bare", "visibility": "private",
         "tags": ["a"], "min_ram": 0, "os_distro": "cirros"}
PATCH = [{"op": "replace", "path": "/name", "value": "renamed"}, {"op": "add", "path": "/os_distro", "value": "x"},
         {"op": "remove", "path": "/os_distro"}]
IMPORT = {"method": {"name": "copy-image"}, "stores": ["file"], "all_stores_must_succeed": True}
# (method, path, body template, content type); {id} is an image id, {tag} a tag
ROUTES: list[tuple[str, str, Any, str | None]] = [
    ("POST", "/v2/images", IMAGE, "application/json"),
    ("PATCH", "/v2/images/{id}", PATCH, PATCH_TYPE),
    ("POST", "/v2/images/{id}/import", IMPORT, "application/json"),
    ("GET", "/v2/images", None, None),
    ("GET", "/v2/images/{id}", None, None),
    ("DELETE", "/v2/images/{id}", None, None),
    ("PUT", "/v2/images/{id}/tags/{tag}", None, None),
    ("DELETE", "/v2/images/{id}/tags/{tag}", None, None),
    ("POST", "/v2/images/{id}/actions/deactivate", None, None),
    ("POST", "/v2/images/{id}/actions/reactivate", None, None),
    ("GET", "/v2/images/{id}/file", None, None),
    ("GET", "/v2/info/stores", None, None),
    ("GET", "/v2/schemas/image", None, None),
]
QUERY_KEYS = ["limit", "marker", "sort", "sort_key", "sort_dir", "visibility", "status", "name", "id", "tag",
              "member_status", "os_hidden", "protected", "size_min", "size_max", "created_at", "updated_at",
              "owner", "disk_format", "os_distro"]


async def _snapshot(store: ImageStore) -> list[list[tuple[Any, ...]]]:
    async with store.db.read() as conn:
        return [sorted(tuple(map(repr, row)) for row in await conn.execute(select(table))) for table in TABLES]


class Fuzz:
    def __init__(self, api: httpx.AsyncClient, store: ImageStore) -> None:
        self.api = api
        self.store = store
        self.ids: list[str] = []
        if not _STARTED:
            _STARTED.append(time.monotonic())
        self.deadline = _STARTED[0] + BUDGET_SECONDS

    async def known_ids(self) -> list[str]:
        if len(self.ids) < 2:
            for _ in range(2):
                created = await self.api.post("/v2/images", json={"disk_format": "raw", "container_format": "bare"})
                self.ids.append(created.json()["id"])
            await self.api.put(f"/v2/images/{self.ids[0]}/file", content=b"data",
                               headers={"Content-Type": "application/octet-stream"})
        return self.ids


@pytest.fixture
def fuzz(api: httpx.AsyncClient, store: ImageStore) -> Fuzz:
    return Fuzz(api, store)


@settings(max_examples=400, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
async def test_image_routes_never_fail_with_500(fuzz: Fuzz, data: st.DataObject) -> None:
    method, path, template, content_type = data.draw(st.sampled_from(ROUTES), label="route")
    ids = await fuzz.known_ids()
    known_id = st.integers(0, 3).map(lambda i: ids[i % len(ids)])
    image_id = data.draw(st.one_of(known_id, known_id, texts.map(lambda t: quote(t.encode("utf-8", "surrogatepass"),
                                                                                 safe="")),
                                   st.sampled_from(["%ff", "%00", "%ed%a0%80"])), label="id")
    tag = data.draw(st.one_of(texts.map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")),
                              st.sampled_from(["a", "%ff", "%00", "x" * 300])), label="tag")
    url = path.replace("{id}", image_id or "x").replace("{tag}", tag or "t")
    query = data.draw(st.dictionaries(st.sampled_from(QUERY_KEYS) | texts, texts, max_size=3), label="query")
    headers = {"Accept": "application/json",
               "X-Auth-Token": data.draw(st.sampled_from(["alice:alice"] * 3 + ["admin:admin", "bob:bob"]),
                                         label="token")}
    content: bytes | None = None
    if template is not None or data.draw(st.booleans(), label="stray body"):
        body = data.draw(bodies(template), label="body")
        content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
        headers["Content-Type"] = data.draw(st.sampled_from([content_type or "application/json"] * 4 +
                                                            ["text/plain", "application/json"]), label="type")
    if time.monotonic() > fuzz.deadline:
        return
    before = await _snapshot(fuzz.store)
    resp = await fuzz.api.request(method, url, params=query, content=content, headers=headers)
    assert resp.status_code < 500, (method, url, query, content, resp.text)
    assert "Traceback" not in resp.text
    if resp.status_code >= 400:
        error = resp.json()
        assert error["code"] == f"{resp.status_code} {error['title']}" and error["message"], resp.text
        assert await _snapshot(fuzz.store) == before, (method, url, content, resp.text)


async def test_deeply_nested_json_is_400(api: httpx.AsyncClient) -> None:
    deep = b"[" * 1000 + b"]" * 1000  # deeper than Python's recursion limit, within orjson's
    image = (await api.post("/v2/images", json={})).json()
    for method, path, content_type, body in [
            ("POST", "/v2/images", "application/json", b'{"name": "x", "os_distro": ' + deep + b"}"),
            ("PATCH", f"/v2/images/{image['id']}", PATCH_TYPE,
             b'[{"op": "add", "path": "/x", "value": ' + deep + b"}]"),
            ("POST", f"/v2/images/{image['id']}/import", "application/json", b'{"stores": ' + deep + b"}")]:
        resp = await api.request(method, path, content=body, headers={"Content-Type": content_type,
                                                                      "Accept": "application/json"})
        assert resp.status_code == 400 and resp.json()["message"] == "Request body nests more than 32 levels."
