"""Glance multi-store on the embedded image service, with two file stores (the RBD store is the same code
path against real Ceph in tests/integration/test_rbd.py): uploads into a named store, the stores document,
copy-image imports, locations, and deletes that remove every copy."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus import conf as conf_mod
from stratus.db.engine import Database
from stratus.identity.auth import NoAuth2
from stratus.image.api import create_app
from stratus.image.embedded import ImageStore
from stratus.image.rbd import parse_location
from stratus.image.stores import stores_from_conf

OCTETS = {"Content-Type": "application/octet-stream"}
DATA = b"multi-store image data " * 4096


def _conf(tmp_path: Path, **image_store: Any) -> Any:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "image_store": {"enabled_backends": ["fast:file", "slow:file"],
                                                    "default_backend": "fast", "show_multiple_locations": True,
                                                    "show_image_direct_url": True, **image_store}})
    return conf


@pytest.fixture
def multi(db: Database, tmp_path: Path) -> ImageStore:
    return ImageStore(_conf(tmp_path), db)


@pytest.fixture
async def api(multi: ImageStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(multi, NoAuth2()))
    async with httpx.AsyncClient(transport=transport, base_url="http://images.test",
                                 headers={"X-Auth-Token": "alice:alice", "Accept": "application/json"}) as client:
        yield client


async def _image(api: httpx.AsyncClient, store: str | None = None) -> str:
    created = await api.post("/v2/images", json={"name": "m", "disk_format": "raw", "container_format": "bare"})
    assert created.status_code == 201, created.text
    image_id = str(created.json()["id"])
    headers = {**OCTETS, **({"X-Image-Meta-Store": store} if store else {})}
    put = await api.put(f"/v2/images/{image_id}/file", content=DATA, headers=headers)
    assert put.status_code == 204, put.text
    return image_id


async def _settled(api: httpx.AsyncClient, image_id: str) -> dict[str, Any]:
    for _ in range(200):
        image: dict[str, Any] = (await api.get(f"/v2/images/{image_id}")).json()
        if not image.get("os_glance_importing_to_stores"):
            return image
        await asyncio.sleep(0.01)
    raise AssertionError(f"copy of {image_id} did not finish")


async def test_stores_and_import_methods_documents(api: httpx.AsyncClient) -> None:
    stores = (await api.get("/v2/info/stores")).json()["stores"]
    assert [(s["id"], s.get("default", False)) for s in stores] == [("fast", True), ("slow", False)]
    assert (await api.get("/v2/info/import")).json()["import-methods"]["value"] == ["copy-image"]


async def test_upload_into_a_named_store_then_copy_to_the_other(api: httpx.AsyncClient, tmp_path: Path) -> None:
    image_id = await _image(api, "slow")
    image = (await api.get(f"/v2/images/{image_id}")).json()
    assert image["stores"] == "slow"
    (loc,) = image["locations"]
    assert loc["metadata"] == {"store": "slow"} and loc["url"].startswith(f"file://{tmp_path}/images/slow/")
    assert image["direct_url"] == loc["url"]

    resp = await api.post(f"/v2/images/{image_id}/import", json={"method": {"name": "copy-image"},
                                                                 "stores": ["fast"]})
    assert resp.status_code == 202, resp.text
    image = await _settled(api, image_id)
    assert image["stores"] == "slow,fast"
    assert not image["os_glance_failed_import"]
    assert [x["metadata"]["store"] for x in image["locations"]] == ["slow", "fast"]
    files = sorted((tmp_path / "images").rglob(f"{image_id}.*"))
    assert len(files) == 2 and all(f.read_bytes() == DATA for f in files)
    body = (await api.get(f"/v2/images/{image_id}/file")).content
    assert hashlib.sha512(body).hexdigest() == image["os_hash_value"]

    again = await api.post(f"/v2/images/{image_id}/import", json={"method": {"name": "copy-image"},
                                                                  "stores": ["fast"]})
    assert again.status_code == 409, again.text
    assert (await api.delete(f"/v2/images/{image_id}")).status_code == 204
    assert not list((tmp_path / "images").rglob(f"{image_id}.*"))  # every copy removed


async def test_all_stores_copy_and_unknown_store(api: httpx.AsyncClient) -> None:
    image_id = await _image(api)  # the default store
    assert (await api.get(f"/v2/images/{image_id}")).json()["stores"] == "fast"
    resp = await api.post(f"/v2/images/{image_id}/import", json={"method": {"name": "copy-image"},
                                                                 "all_stores": True})
    assert resp.status_code == 202, resp.text
    assert (await _settled(api, image_id))["stores"] == "fast,slow"
    unknown = await api.post(f"/v2/images/{image_id}/import", json={"method": {"name": "copy-image"},
                                                                    "stores": ["nowhere"]})
    assert unknown.status_code == 400 and "nowhere" in unknown.json()["message"]


@pytest.mark.parametrize(("body", "code"), [
    ({"method": {"name": "web-download"}, "stores": ["slow"]}, 400),
    ({"method": {"name": "copy-image"}}, 400),
    ({"method": {"name": "copy-image"}, "stores": "slow"}, 400),
    ({"method": {"name": "copy-image"}, "stores": ["slow"], "all_stores_must_succeed": "yes"}, 400),
    ({"method": "copy-image"}, 400),
])
async def test_bad_import_requests(api: httpx.AsyncClient, body: dict[str, Any], code: int) -> None:
    image_id = await _image(api)
    resp = await api.post(f"/v2/images/{image_id}/import", json=body)
    assert resp.status_code == code, resp.text
    image = (await api.get(f"/v2/images/{image_id}")).json()
    assert image["stores"] == "fast" and not image.get("os_glance_importing_to_stores")  # nothing changed


async def test_copy_of_a_queued_image_is_refused(api: httpx.AsyncClient) -> None:
    created = await api.post("/v2/images", json={"name": "q", "disk_format": "raw", "container_format": "bare"})
    image_id = created.json()["id"]
    resp = await api.post(f"/v2/images/{image_id}/import", json={"method": {"name": "copy-image"},
                                                                 "stores": ["slow"]})
    assert resp.status_code == 409, resp.text


async def test_upload_to_an_unknown_store_is_a_400_and_leaves_the_image_queued(api: httpx.AsyncClient) -> None:
    created = await api.post("/v2/images", json={"name": "q", "disk_format": "raw", "container_format": "bare"})
    image_id = created.json()["id"]
    put = await api.put(f"/v2/images/{image_id}/file", content=b"x", headers={**OCTETS, "X-Image-Meta-Store": "no"})
    assert put.status_code == 400
    assert (await api.get(f"/v2/images/{image_id}")).json()["status"] == "queued"


async def test_stores_and_locations_are_reserved(api: httpx.AsyncClient) -> None:
    created = await api.post("/v2/images", json={"name": "q", "stores": "fast"})
    assert created.status_code == 403


def test_store_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NAME:TYPE"):
        stores_from_conf(_conf(tmp_path, enabled_backends=["fast:swift"]))
    with pytest.raises(ValueError, match="taken"):
        stores_from_conf(_conf(tmp_path, enabled_backends=["libvirt:file"]))
    with pytest.raises(ValueError, match="default_backend"):
        stores_from_conf(_conf(tmp_path, default_backend="other"))
    stores, default = stores_from_conf(conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}}))
    assert list(stores) == ["file"] and default == "file"


def test_rbd_locations_parse_as_glance_writes_them() -> None:
    loc = parse_location("rbd://fsid-1/images/abc/snap")
    assert loc is not None and (loc.fsid, loc.pool, loc.image, loc.snapshot) == ("fsid-1", "images", "abc", "snap")
    assert loc.url == "rbd://fsid-1/images/abc/snap"
    assert parse_location("rbd://fsid/pool/image") is not None
    for bad in ("file:///x", "rbd://fsid/pool", "rbd:///pool/image/snap", "http://x/y/z/w"):
        assert parse_location(bad) is None


async def test_a_copy_image_import_is_a_task_of_the_image(api: httpx.AsyncClient) -> None:
    """Glance's ``GET /v2/images/{id}/tasks``: none for an uploaded image, the import's ``api_image_import``
    task (processing, then success) after a copy-image; the image must be the caller's to see."""
    image_id = await _image(api, "slow")
    assert (await api.get(f"/v2/images/{image_id}/tasks")).json() == {"tasks": []}
    resp = await api.post(f"/v2/images/{image_id}/import", json={"method": {"name": "copy-image"},
                                                                 "stores": ["fast"]})
    assert resp.status_code == 202, resp.text
    for _ in range(200):
        (task,) = (await api.get(f"/v2/images/{image_id}/tasks")).json()["tasks"]
        if task["status"] != "processing":
            break
        await asyncio.sleep(0.01)
    assert (task["type"], task["status"], task["image_id"], task["owner"], task["user_id"]) == (
        "api_image_import", "success", image_id, "alice", "alice")
    assert task["input"]["import_req"]["method"] == {"name": "copy-image"} and task["input"]["backend"] == ["fast"]
    assert task["expires_at"] > task["created_at"] and task["deleted"] is False and task["message"] == ""
    assert (await api.get("/v2/images/00000000-0000-0000-0000-000000000000/tasks")).status_code == 404
    other = await api.get(f"/v2/images/{image_id}/tasks", headers={"X-Auth-Token": "bob:bob"})
    assert other.status_code == 404  # a private image of another project
