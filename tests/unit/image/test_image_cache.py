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


def _make_bases(base_dir: Path, now: float) -> None:
    base_dir.mkdir()
    for name, idle in (("in-use-old", 10_000), ("unused-old", 10_000), ("unused-recent", 10),
                       ("x.part-1", 10_000), ("y.part-2", 200_000)):
        (base_dir / name).write_bytes(b"data")
        os.utime(base_dir / name, (now - idle, now - idle))


def test_ager_removes_only_unused_and_idle_bases(tmp_path: Path) -> None:
    now = 1_000_000_000.0
    _make_bases(tmp_path / "_base", now)
    cache = ImageCache(str(tmp_path / "_base"), None)  # type: ignore[arg-type]
    assert sorted(cache.age({"in-use-old"}, 3600, remove=False, now=now)) == ["unused-old", "y.part-2"]
    assert len(os.listdir(tmp_path / "_base")) == 5  # reporting only
    assert sorted(cache.age({"in-use-old"}, 3600, now=now)) == ["unused-old", "y.part-2"]
    # a download under way (recent partial file) and a base used minutes ago stay
    assert sorted(os.listdir(tmp_path / "_base")) == ["in-use-old", "unused-recent", "x.part-1"]


async def test_a_cache_hit_counts_as_use(store: ImageStore, tmp_path: Path) -> None:
    image = await _image(store)
    cache = ImageCache(str(tmp_path / "_base"), EmbeddedImageClient(store))
    path = await cache.fetch(image)
    os.utime(path, (1, 1))
    await cache.fetch(image)
    assert cache.age(set(), 3600) == []  # touched by the hit: not idle


async def test_precache_fetches_into_the_libvirt_drivers_cache_once(store: ImageStore, tmp_path: Path) -> None:
    """``cache_image`` (the aggregate image pre-cache) puts the image where the driver's boots look for it: the
    first call downloads (True), the next finds it (False); a driver with no cache cannot."""
    pytest.importorskip("libvirt", reason="libvirt-python is not installed (scripts/libvirt.sh install .venv)")
    from stratus import conf as conf_mod
    from stratus.virt.libvirt.driver import LibvirtDriver

    image = await _image(store)
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "libvirt": {"virt_type": "qemu", "connection_uri": "test:///default"}})
    driver = LibvirtDriver(conf, "h1")  # never connected: the cache needs no hypervisor
    with pytest.raises(NotImplementedError):  # no image service yet: no cache
        await driver.cache_image({"project_id": "alice"}, str(image["id"]))
    driver.images = EmbeddedImageClient(store)
    driver.cache = ImageCache(os.path.join(driver.instances_path, "_base"), driver.images)
    context = {"project_id": "alice"}
    assert await driver.cache_image(context, str(image["id"])) is True
    assert _read(driver.cache.path_of(str(image["id"]))) == DATA
    assert await driver.cache_image(context, str(image["id"])) is False
    assert driver.cache.downloads == {image["id"]: 1}
