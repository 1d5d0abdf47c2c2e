"""What compute sees: the embedded client over the store, and the Glance client over our own Glance v2 API."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus import conf as conf_mod
from stratus import exception
from stratus.context import RequestContext
from stratus.identity.auth import NoAuth2
from stratus.image.api import create_app
from stratus.image.client import ImageClient
from stratus.image.embedded import (
    EmbeddedImageClient,
    ImageCorrupt,
    ImageForbidden,
    ImageStore,
    ImageUnavailable,
    client_for,
)
from stratus.image.glance import GlanceClient, ImageServiceUnavailable

from .conftest import ADMIN, ALICE, chunks, data_files

ALICE_CTX = RequestContext(user_id="alice", project_id="alice").to_dict() | {"auth_token": "alice:alice"}
BOB_CTX = RequestContext(user_id="bob", project_id="bob").to_dict() | {"auth_token": "bob:bob"}


class _SomeHostsDown(httpx.AsyncBaseTransport):
    """Our Glance API in process, except that hosts named ``down*`` refuse connections."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.hosts: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.hosts.append(request.url.host)
        if request.url.host.startswith("down"):
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


@pytest.fixture(params=["embedded", "glance"])
async def client(request: pytest.FixtureRequest, store: ImageStore) -> AsyncIterator[ImageClient]:
    """Both implementations answer the same questions the same way."""
    if request.param == "embedded":
        yield EmbeddedImageClient(store)
        return
    glance = GlanceClient(["http://glance.test"], transport=_SomeHostsDown(create_app(store, NoAuth2())))
    try:
        yield glance
    finally:
        await glance.aclose()


async def _image(store: ImageStore, data: bytes | None = b"payload", **body: Any) -> dict[str, Any]:
    image = await store.create(ALICE, {"disk_format": "raw", "container_format": "bare", **body})
    return await store.upload(ALICE, image["id"], chunks(data)) if data is not None else image


async def test_show(client: ImageClient, store: ImageStore) -> None:
    image = await _image(store, name="cirros")
    assert await client.show(ALICE_CTX, image["id"]) == image
    with pytest.raises(exception.ImageNotFound):
        await client.show(BOB_CTX, image["id"])  # shared, not public: invisible to bob
    with pytest.raises(exception.ImageNotFound):
        await client.show(ALICE_CTX, "nope")


async def test_find_by_id_or_unique_name(client: ImageClient, store: ImageStore) -> None:
    image = await _image(store, name="cirros")
    assert (await client.find(ALICE_CTX, image["id"]))["id"] == image["id"]
    assert (await client.find(ALICE_CTX, "cirros"))["id"] == image["id"]
    with pytest.raises(exception.ImageNotFound):
        await client.find(ALICE_CTX, "ubuntu")
    with pytest.raises(exception.ImageNotFound):
        await client.find(BOB_CTX, "cirros")
    await _image(store, name="cirros")
    with pytest.raises(exception.ImageNotFound, match="More than one"):
        await client.find(ALICE_CTX, "cirros")


async def test_download(client: ImageClient, store: ImageStore) -> None:
    data = b"0123456789" * 100_000
    image = await _image(store, data)
    got = b"".join([c async for c in client.download(ALICE_CTX, image["id"])])
    assert hashlib.sha512(got).hexdigest() == image["os_hash_value"]
    queued = await _image(store, None)
    with pytest.raises(ImageUnavailable):
        _ = [c async for c in client.download(ALICE_CTX, queued["id"])]
    with pytest.raises(exception.ImageNotFound):
        _ = [c async for c in client.download(BOB_CTX, image["id"])]


async def test_download_detects_corruption(client: ImageClient, store: ImageStore) -> None:
    image = await _image(store, b"hello")
    (name,) = data_files(store)
    (Path(store.datadir) / name).write_bytes(b"jello")
    with pytest.raises((ImageCorrupt, httpx.HTTPError)):
        _ = [c async for c in client.download(ALICE_CTX, image["id"])]


async def test_glance_download_checks_content_md5() -> None:
    def glance(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"tampered", headers={"Content-MD5": hashlib.md5(b"original").hexdigest()})

    client = GlanceClient(["http://glance.test"], transport=httpx.MockTransport(glance))
    with pytest.raises(ImageCorrupt):
        _ = [c async for c in client.download(ALICE_CTX, "some-image")]
    await client.aclose()


async def test_deactivated_image_refused(client: ImageClient, store: ImageStore) -> None:
    image = await _image(store)
    await store.set_active(ADMIN, image["id"], active=False)
    with pytest.raises(ImageForbidden):
        _ = [c async for c in client.download(ALICE_CTX, image["id"])]


async def test_glance_client_fails_over_and_sends_the_token(store: ImageStore) -> None:
    image = await _image(store)
    transport = _SomeHostsDown(create_app(store, NoAuth2()))
    glance = GlanceClient(["down.test:9292", "http://glance.test/v2/"], transport=transport)
    try:
        assert (await glance.show(ALICE_CTX, image["id"]))["id"] == image["id"]
        assert transport.hosts == ["down.test", "glance.test"]
        assert (await glance.show(ALICE_CTX, image["id"]))["id"] == image["id"]
        assert transport.hosts[-1] == "glance.test"  # remembers the server that answered
        with pytest.raises(ImageForbidden):  # no token: Glance says 401
            await glance.show({"project_id": "alice"}, image["id"])
    finally:
        await glance.aclose()
    down = GlanceClient(["down.test"], transport=transport)
    with pytest.raises(ImageServiceUnavailable):
        await down.show(ALICE_CTX, image["id"])
    await down.aclose()


async def test_client_for_follows_glance_api_servers(store: ImageStore, tmp_path: Path) -> None:
    assert isinstance(client_for(store.conf, store), EmbeddedImageClient)
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "glance": {"api_servers": ["http://glance:9292"]}})
    glance = client_for(conf, store)
    assert isinstance(glance, GlanceClient) and glance.servers == ["http://glance:9292"]
    await glance.aclose()


async def test_create_update_upload_delete(client: ImageClient, store: ImageStore) -> None:
    """What a server snapshot does through either client: a queued image, its format set, data, then gone."""
    image = await client.create(ALICE_CTX, {"name": "snap", "image_type": "snapshot", "instance_uuid": "i-1"})
    assert image["status"] == "queued" and image["owner"] == "alice" and image["image_type"] == "snapshot"
    updated = await client.update(ALICE_CTX, image["id"], {"disk_format": "qcow2", "container_format": "bare",
                                                           "image_type": "snapshot", "note": "x"})
    assert updated["disk_format"] == "qcow2" and updated["note"] == "x"
    await client.upload(ALICE_CTX, image["id"], chunks(b"ab" * 1000, b"cd"))
    shown = await client.show(ALICE_CTX, image["id"])
    assert shown["status"] == "active" and shown["size"] == 2002
    await client.delete(ALICE_CTX, image["id"])
    await client.delete(ALICE_CTX, image["id"])  # already gone: fine
    with pytest.raises(exception.ImageNotFound):
        await client.show(ALICE_CTX, image["id"])
