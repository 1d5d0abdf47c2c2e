"""Waiting for a copy-image import (``images_rbd_glance_store_name``): the RBD backend's wait ends as soon as the
copy does, through the embedded client and through the Glance client, with the default 15 s poll interval.

The image service is the real embedded one with two file stores (the RBD store is the same copy path against
real Ceph in tests/integration/test_rbd.py); the backend's waiting needs no Ceph connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stratus import conf as conf_mod
from stratus.context import RequestContext
from stratus.db.engine import Database
from stratus.identity.auth import NoAuth2
from stratus.image.api import create_app
from stratus.image.backends.rbd import RbdBackend
from stratus.image.cache import ImageCache
from stratus.image.client import ImageClient
from stratus.image.embedded import EmbeddedImageClient, ImageStore
from stratus.image.glance import GlanceClient

from .conftest import ALICE, chunks

CTX = RequestContext(user_id="alice", project_id="alice").to_dict() | {"auth_token": "alice:alice"}
DATA = b"copy me " * 65536


def _conf(tmp_path: Path) -> Any:
    return conf_mod.load(overrides={
        "DEFAULT": {"state_path": str(tmp_path)},
        "image_store": {"enabled_backends": ["local:file", "ceph:file"], "default_backend": "local"},
        "libvirt": {"images_type": "rbd", "images_rbd_glance_store_name": "ceph"}})  # poll interval: 15 s


@pytest.fixture
def multi(db: Database, tmp_path: Path) -> ImageStore:
    return ImageStore(_conf(tmp_path), db)


@pytest.fixture(params=["embedded", "glance"])
async def client(request: pytest.FixtureRequest, multi: ImageStore) -> AsyncIterator[ImageClient]:
    if request.param == "embedded":
        yield EmbeddedImageClient(multi)
        return
    import httpx

    glance = GlanceClient(["http://glance.test"], transport=httpx.ASGITransport(app=create_app(multi, NoAuth2())))
    try:
        yield glance
    finally:
        await glance.aclose()


async def test_the_wait_ends_with_the_copy_not_a_poll_interval_later(client: ImageClient, multi: ImageStore,
                                                                     tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    assert conf.libvirt.images_rbd_glance_copy_poll_interval == 15
    image = await multi.create(ALICE, {"disk_format": "raw", "container_format": "bare"})
    image = await multi.upload(ALICE, image["id"], chunks(DATA))
    backend = RbdBackend(conf, client, ImageCache(str(tmp_path / "_base"), client))
    started = time.monotonic()
    copied, why = await backend._copy_to_store(CTX, image, "ceph")
    took = time.monotonic() - started
    assert copied is not None and why == "", why
    assert copied["stores"] == "local,ceph"
    assert took < 2, took  # before: the first look came one poll interval (15 s) after asking


async def test_embedded_waiters_hear_of_the_copy_at_once(multi: ImageStore) -> None:
    """``wait_changed`` returns when the copy ends, long before its timeout; and a copy that fails wakes too."""
    image = await multi.create(ALICE, {"disk_format": "raw", "container_format": "bare"})
    image = await multi.upload(ALICE, image["id"], chunks(DATA))
    waiter = asyncio.create_task(multi.wait_changed(image["id"], 30))
    await asyncio.sleep(0)  # the waiter is registered before the copy starts
    started = time.monotonic()
    await multi.copy_to_stores(ALICE, image["id"], ["ceph"])
    await asyncio.wait_for(waiter, 5)
    assert time.monotonic() - started < 2
    assert (await multi.get(ALICE, image["id"]))["stores"] == "local,ceph"
    assert not multi._watchers  # nothing left behind

    started = time.monotonic()
    await multi.wait_changed(image["id"], 0.05)  # nothing under way: the timeout ends it
    assert 0.04 <= time.monotonic() - started < 1
