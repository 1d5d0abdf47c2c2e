"""The compute host's image cache over the real embedded store: one download per image, verified data only."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from stratus.image.cache import ImageCache, ImageChecksumMismatch, base_name
from stratus.image.embedded import EmbeddedImageClient, ImageStore

from .conftest import ALICE, chunks

DATA = os.urandom(3 * 1024 * 1024 + 17)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


async def _image(store: ImageStore) -> dict[str, object]:
    image = await store.create(ALICE, {"disk_format": "raw", "container_format": "bare"})
    return await store.upload(ALICE, image["id"], chunks(DATA[:1000000], DATA[1000000:]))


async def test_concurrent_boots_fetch_once(store: ImageStore, tmp_path: Path) -> None:
    image = await _image(store)
    cache = ImageCache(str(tmp_path / "_base"), EmbeddedImageClient(store))
    paths = await asyncio.gather(*(cache.fetch(image) for _ in range(8)))
    assert len(set(paths)) == 1 and Path(paths[0]).name == base_name(str(image["id"]))
    assert _read(paths[0]) == DATA
    assert cache.downloads == {image["id"]: 1}
    assert await cache.fetch(image) == paths[0] and cache.downloads == {image["id"]: 1}
    assert os.listdir(tmp_path / "_base") == [base_name(str(image["id"]))]  # no partial files left


async def test_checksum_mismatch_leaves_nothing(store: ImageStore, tmp_path: Path) -> None:
    image = await _image(store)
    cache = ImageCache(str(tmp_path / "_base"), EmbeddedImageClient(store))
    with pytest.raises(ImageChecksumMismatch, match="failed verification"):
        await cache.fetch({**image, "os_hash_value": "0" * 128})
    assert os.listdir(tmp_path / "_base") == []
    assert cache.downloads == {}
    assert _read(await cache.fetch(image)) == DATA  # the real hash passes
