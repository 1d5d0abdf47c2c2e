"""The embedded image store against a real SQLite database: Glance's rules, uploads and their failures."""

from __future__ import annotations

import datetime
import hashlib
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from stratus import exception
from stratus.db import images as image_db
from stratus.db.engine import Database
from stratus.db.models import image_locations, images
from stratus.image import embedded, model
from stratus.image.embedded import (
    ImageBadRequest,
    ImageConflict,
    ImageCorrupt,
    ImageForbidden,
    ImageGone,
    ImageStore,
    ImageTooLarge,
)
from stratus.utils import utcnow

from .conftest import ADMIN, ALICE, BOB, chunks, data_files

DISK = {"disk_format": "raw", "container_format": "bare"}


async def _active(store: ImageStore, data: bytes = b"hello", caller: Any = ALICE, **body: Any) -> dict[str, Any]:
    image = await store.create(caller, {**DISK, **body})
    return await store.upload(caller, image["id"], chunks(data))


async def _read(store: ImageStore, caller: Any, image_id: str) -> bytes:
    data = await store.open_data(caller, image_id)
    assert data is not None
    return b"".join([c async for c in data.chunks()])


# --- create and show --------------------------------------------------------------------------------------------
async def test_create_has_glance_defaults_and_extra_properties(store: ImageStore) -> None:
    image = await store.create(ALICE, {"name": "cirros", "os_distro": "cirros", "tags": ["b", "a", "b"]})
    assert image["status"] == "queued"
    assert image["visibility"] == "shared"
    assert image["owner"] == "alice"
    assert (image["protected"], image["os_hidden"], image["min_ram"], image["min_disk"]) == (False, False, 0, 0)
    assert image["size"] is None and image["checksum"] is None and image["disk_format"] is None
    assert image["os_distro"] == "cirros"
    assert image["tags"] == ["a", "b"]
    assert image["self"] == f"/v2/images/{image['id']}"
    assert image["file"] == f"/v2/images/{image['id']}/file"
    assert image["schema"] == "/v2/schemas/image"
    assert image["created_at"].endswith("Z") and image["created_at"] == image["updated_at"]
    assert await store.get(ALICE, image["id"]) == image


async def test_create_with_id_twice_conflicts(store: ImageStore) -> None:
    image_id = "0b3f8a0e-4bb8-4d0c-9f0e-1f7a6c1a2b3c"
    assert (await store.create(ALICE, {"id": image_id}))["id"] == image_id
    with pytest.raises(ImageConflict, match="already exists"):
        await store.create(ALICE, {"id": image_id})


@pytest.mark.parametrize(("body", "error", "match"), [
    ({"status": "active"}, ImageForbidden, "read-only"),
    ({"checksum": "x"}, ImageForbidden, "read-only"),
    ({"locations": []}, ImageForbidden, "reserved"),
    ({"os_glance_foo": "x"}, ImageForbidden, "reserved"),
    ({"foo": 5}, ImageBadRequest, "is not of type 'string'"),
    ({"min_ram": "512"}, ImageBadRequest, "is not of type 'integer'"),
    ({"min_disk": -1}, ImageBadRequest, "minimum"),
    ({"disk_format": "floppy"}, ImageBadRequest, "is not one of"),
    ({"visibility": "everyone"}, ImageBadRequest, "is not one of"),
    ({"id": "not-a-uuid"}, ImageBadRequest, "does not match"),
    ({"name": "x" * 256}, ImageBadRequest, "too long"),
    ({"tags": "a"}, ImageBadRequest, "is not of type 'array'"),
    ({"name": "a\x00b"}, ImageBadRequest, "NUL"),
    ({"tags": ["a\x00"]}, ImageBadRequest, "NUL"),
    ({"visibility": "public"}, ImageForbidden, "publicize_image"),
    ({"owner": "bob"}, ImageForbidden, "owned by 'bob'"),
    ({"owner": None}, ImageForbidden, "owned by 'None'"),
    ({f"p{i}": "v" for i in range(model.PROPERTY_QUOTA + 1)}, ImageTooLarge, "properties"),
    ([], ImageBadRequest, "JSON object"),
])
async def test_create_refuses(store: ImageStore, body: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        await store.create(ALICE, body)


async def test_admin_may_publish_and_give_away(store: ImageStore) -> None:
    image = await store.create(ADMIN, {"visibility": "public", "owner": "bob"})
    assert (image["visibility"], image["owner"]) == ("public", "bob")


# --- visibility -------------------------------------------------------------------------------------------------
async def test_who_sees_what(store: ImageStore) -> None:
    private = await store.create(ALICE, {"name": "private", "visibility": "private"})
    shared = await store.create(ALICE, {"name": "shared"})
    community = await store.create(ALICE, {"name": "community", "visibility": "community"})
    public = await store.create(ADMIN, {"name": "public", "visibility": "public"})
    for hidden in (private, shared):
        with pytest.raises(exception.ImageNotFound):
            await store.get(BOB, hidden["id"])
    assert (await store.get(BOB, community["id"]))["name"] == "community"
    assert (await store.get(ADMIN, private["id"]))["name"] == "private"

    async def names(caller: Any, **filters: Any) -> set[str]:
        found, _ = await store.list(caller, image_db.ListFilters(**filters), [("name", "asc")], 100)
        return {i["name"] for i in found}

    assert await names(BOB) == {"public"}  # others' community images stay out of the default list
    assert await names(BOB, visibility="community") == {"community"}
    assert await names(BOB, visibility="all") == {"public", "community"}
    assert await names(ALICE) == {"private", "shared", "community", "public"}
    assert await names(ADMIN, visibility="private") == {"private"}
    assert public["owner"] == "admin"


async def test_others_cannot_change_visible_images(store: ImageStore) -> None:
    image = await store.create(ALICE, {"visibility": "community"})
    with pytest.raises(ImageForbidden):
        await store.update(BOB, image["id"], [{"op": "replace", "path": "/name", "value": "mine"}])
    with pytest.raises(ImageForbidden):
        await store.delete(BOB, image["id"])
    with pytest.raises(ImageForbidden):
        await store.upload(BOB, image["id"], chunks(b"x"))
    with pytest.raises(ImageForbidden):
        await store.add_tag(BOB, image["id"], "t")


# --- list: filters, sorting, pages -----------------------------------------------------------------------------
async def test_filters(store: ImageStore) -> None:
    a = await _active(store, b"x" * 10, name="a", tags=["t1", "t2"], os_distro="ubuntu")
    await store.create(ALICE, {"name": "b", "tags": ["t1"], "os_distro": "debian"})
    await store.create(ALICE, {"name": "hidden", "os_hidden": True})

    async def names(**filters: Any) -> list[str]:
        found, _ = await store.list(ALICE, image_db.ListFilters(**filters), [("name", "asc")], 100)
        return [i["name"] for i in found]

    assert await names() == ["a", "b"]
    assert await names(os_hidden=True) == ["hidden"]
    assert await names(tags=["t1"]) == ["a", "b"]
    assert await names(tags=["t1", "t2"]) == ["a"]
    assert await names(properties={"os_distro": "debian"}) == ["b"]
    assert await names(equals={"status": "active"}) == ["a"]
    assert await names(names=["b", "hidden", "zzz"]) == ["b"]
    assert await names(ids=[a["id"]]) == ["a"]
    assert await names(size_min=10, size_max=10) == ["a"]
    assert await names(size_min=11) == []
    later = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(hours=1)
    assert await names(times=[("created_at", "lt", later)]) == ["a", "b"]
    assert await names(times=[("created_at", "gte", later)]) == []


@pytest.mark.parametrize("sort", [
    [("created_at", "desc")],
    [("name", "asc")],
    [("name", "desc"), ("size", "asc")],
    [("size", "desc"), ("name", "asc")],
    [("disk_format", "asc"), ("id", "asc")],
])
async def test_pages_cover_every_image_once_in_order(store: ImageStore, sort: list[tuple[str, str]]) -> None:
    # Duplicate names, missing names and missing sizes: ties and NULLs must not lose or repeat images.
    for i in range(7):
        await store.create(ALICE, {"name": ["a", "b", None][i % 3]} | ({"disk_format": "raw"} if i % 2 else {}))
    for i in range(3):
        await _active(store, b"x" * i, name=f"sized{i}")
    everything, last = await store.list(ALICE, image_db.ListFilters(), sort, 100)
    assert last is None and len(everything) == 10
    pages, marker = [], None
    while True:
        page, marker = await store.list(ALICE, image_db.ListFilters(), sort, 3, marker)
        pages.extend(page)
        if marker is None:
            break
    assert [i["id"] for i in pages] == [i["id"] for i in everything]


async def test_full_last_page_has_no_next_marker(store: ImageStore) -> None:
    for _ in range(4):
        await store.create(ALICE, {})
    first, marker = await store.list(ALICE, image_db.ListFilters(), [("created_at", "desc")], 2)
    second, end = await store.list(ALICE, image_db.ListFilters(), [("created_at", "desc")], 2, marker)
    assert len(first) == len(second) == 2 and end is None


async def test_marker_must_be_visible(store: ImageStore) -> None:
    private = await store.create(BOB, {"visibility": "private"})
    for marker in (private["id"], "nope"):
        with pytest.raises(ImageBadRequest, match="Invalid marker"):
            await store.list(ALICE, image_db.ListFilters(), [("name", "asc")], 10, marker)


# --- update (JSON patch) ----------------------------------------------------------------------------------------
async def test_patch_semantics(store: ImageStore) -> None:
    image = await store.create(ALICE, {"name": "old", "foo": "1", "tags": ["x"]})
    patched = await store.update(ALICE, image["id"], [
        {"op": "replace", "path": "/name", "value": "new"},
        {"op": "add", "path": "/foo", "value": "2"},  # add on an existing property replaces it
        {"op": "add", "path": "/a~1b", "value": "slash"},
        {"op": "replace", "path": "/tags", "value": ["y", "z"]},
        {"op": "replace", "path": "/min_ram", "value": 512},
        {"op": "replace", "path": "/protected", "value": True},
        {"op": "replace", "path": "/disk_format", "value": "qcow2"},
    ])
    assert (patched["name"], patched["foo"], patched["a/b"]) == ("new", "2", "slash")
    assert (patched["tags"], patched["min_ram"], patched["protected"]) == (["y", "z"], 512, True)
    assert patched["disk_format"] == "qcow2"
    assert await store.get(ALICE, image["id"]) == patched
    removed = await store.update(ALICE, image["id"], [{"op": "remove", "path": "/foo"}])
    assert "foo" not in removed


@pytest.mark.parametrize(("changes", "error", "match"), [
    ([{"op": "replace", "path": "/nope", "value": "x"}], ImageConflict, "does not exist"),
    ([{"op": "remove", "path": "/nope"}], ImageConflict, "does not exist"),
    ([{"op": "remove", "path": "/name"}], ImageForbidden, "may not be removed"),
    ([{"op": "replace", "path": "/status", "value": "active"}], ImageForbidden, "read-only"),
    ([{"op": "replace", "path": "/id", "value": "x"}], ImageForbidden, "read-only"),
    ([{"op": "add", "path": "/locations", "value": []}], ImageForbidden, "reserved"),
    ([{"op": "replace", "path": "/disk_format", "value": "qcow2"}], ImageForbidden, "queued"),
    ([{"op": "replace", "path": "/visibility", "value": "public"}], ImageForbidden, "publicize"),
    ([{"op": "replace", "path": "/owner", "value": "bob"}], ImageForbidden, "owned by 'bob'"),
    ([{"op": "replace", "path": "/owner", "value": None}], ImageForbidden, "owned by 'None'"),
    ([{"op": "replace", "path": "/min_disk", "value": "big"}], ImageBadRequest, "integer"),
    ([{"op": "add", "path": "/foo", "value": 1}], ImageBadRequest, "string"),
    ([{"op": "move", "path": "/name", "from": "/x"}], ImageBadRequest, "op must be"),
    ([{"op": "add", "path": "/a/b", "value": "x"}], ImageBadRequest, "Nested paths"),
    ([{"op": "add", "path": "name", "value": "x"}], ImageBadRequest, "JSON pointer"),
    ([{"op": "add", "path": "/name"}], ImageBadRequest, "value"),
    ({"op": "add"}, ImageBadRequest, "array"),
    (["add"], ImageBadRequest, "JSON object"),
])
async def test_patch_refuses(store: ImageStore, changes: Any, error: type[Exception], match: str) -> None:
    image = await _active(store)
    with pytest.raises(error, match=match):
        await store.update(ALICE, image["id"], changes)
    assert await store.get(ALICE, image["id"]) == image  # nothing half-applied


# --- tags, delete, deactivate -----------------------------------------------------------------------------------
async def test_tags(store: ImageStore) -> None:
    image = await store.create(ALICE, {})
    await store.add_tag(ALICE, image["id"], "b")
    await store.add_tag(ALICE, image["id"], "a")
    await store.add_tag(ALICE, image["id"], "a")
    assert (await store.get(ALICE, image["id"]))["tags"] == ["a", "b"]
    await store.remove_tag(ALICE, image["id"], "a")
    with pytest.raises(exception.ImageNotFound, match="Tag a not found"):
        await store.remove_tag(ALICE, image["id"], "a")
    with pytest.raises(ImageBadRequest):
        await store.add_tag(ALICE, image["id"], "x" * 256)


async def test_delete_removes_record_and_data(store: ImageStore) -> None:
    image = await _active(store, protected=True)
    with pytest.raises(ImageForbidden, match="protected"):
        await store.delete(ALICE, image["id"])
    await store.update(ALICE, image["id"], [{"op": "replace", "path": "/protected", "value": False}])
    await store.delete(ALICE, image["id"])
    with pytest.raises(exception.ImageNotFound):
        await store.get(ALICE, image["id"])
    assert data_files(store) == []


async def test_deactivate_blocks_download_for_non_admins(store: ImageStore) -> None:
    image = await _active(store)
    with pytest.raises(ImageForbidden):
        await store.set_active(ALICE, image["id"], active=False)
    await store.set_active(ADMIN, image["id"], active=False)
    await store.set_active(ADMIN, image["id"], active=False)  # idempotent
    with pytest.raises(ImageForbidden, match="deactivated"):
        await store.open_data(ALICE, image["id"])
    assert await _read(store, ADMIN, image["id"]) == b"hello"
    await store.set_active(ADMIN, image["id"], active=True)
    assert await _read(store, ALICE, image["id"]) == b"hello"
    queued = await store.create(ALICE, {})
    with pytest.raises(ImageForbidden, match="status 'queued'"):
        await store.set_active(ADMIN, queued["id"], active=False)


# --- upload and download ----------------------------------------------------------------------------------------
async def test_upload_records_hashes_and_streams_back(store: ImageStore) -> None:
    data = bytes(range(256)) * 9000  # > WRITE_CHUNK, so written in several pieces
    image = await store.create(ALICE, DISK)
    active = await store.upload(ALICE, image["id"], chunks(data[:1000], data[1000:]))
    assert active["status"] == "active"
    assert active["size"] == active["virtual_size"] == len(data)
    assert active["checksum"] == hashlib.md5(data).hexdigest()
    assert active["os_hash_algo"] == "sha512"
    assert active["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert await _read(store, ALICE, image["id"]) == data
    (name,) = data_files(store)  # one complete file, no partial one left behind
    assert name.startswith(image["id"] + ".") and not name.endswith(".part")


async def test_qcow2_virtual_size_comes_from_its_header(store: ImageStore) -> None:
    header = b"QFI\xfb" + b"\0" * 20 + struct.pack(">Q", 10 << 30) + b"\0" * 100
    image = await _active(store, header, disk_format="qcow2")
    assert (image["size"], image["virtual_size"]) == (len(header), 10 << 30)


async def test_second_upload_conflicts(store: ImageStore) -> None:
    image = await _active(store)
    with pytest.raises(ImageConflict, match="from active to saving"):
        await store.upload(ALICE, image["id"], chunks(b"again"))
    assert await _read(store, ALICE, image["id"]) == b"hello"


async def test_upload_needs_formats(store: ImageStore) -> None:
    image = await store.create(ALICE, {"disk_format": "raw"})
    with pytest.raises(ImageBadRequest, match="container_format"):
        await store.upload(ALICE, image["id"], chunks(b"x"))


async def test_too_large_upload_refused_up_front(store: ImageStore) -> None:
    image = await store.create(ALICE, DISK)
    with pytest.raises(ImageTooLarge):
        await store.upload(ALICE, image["id"], chunks(b"x"), expected_size=model.IMAGE_SIZE_CAP + 1)
    assert (await store.get(ALICE, image["id"]))["status"] == "queued"


async def test_failed_upload_leaves_image_queued_and_no_file(store: ImageStore) -> None:
    image = await store.create(ALICE, DISK)

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (embedded.WRITE_CHUNK + 1)  # some data reaches the disk first
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.upload(ALICE, image["id"], broken())
    after = await store.get(ALICE, image["id"])
    assert (after["status"], after["size"], after["checksum"]) == ("queued", None, None)
    assert data_files(store) == []
    assert await store.open_data(ALICE, image["id"]) is None
    # ... and it can be uploaded again.
    assert (await store.upload(ALICE, image["id"], chunks(b"ok")))["status"] == "active"


async def test_delete_during_upload_wins(store: ImageStore) -> None:
    image = await store.create(ALICE, DISK)
    store.heartbeat_interval = 0

    async def deleted_midway() -> AsyncIterator[bytes]:
        yield b"first"
        await store.delete(ALICE, image["id"])
        yield b"second"

    with pytest.raises(ImageGone):
        await store.upload(ALICE, image["id"], deleted_midway())
    assert data_files(store) == []


async def test_stale_upload_is_reclaimed(store: ImageStore, db: Database) -> None:
    """A process died mid-upload: its heartbeat stops, and the image becomes uploadable again."""
    image = await store.create(ALICE, DISK)
    store.heartbeat_interval = 0

    async def dies() -> AsyncIterator[bytes]:
        yield b"partial"
        # Simulate the death: the heartbeat is old, and this "process" never cleans up after itself.
        old = utcnow() - datetime.timedelta(seconds=store.stale_after + 5)
        async with db.write() as conn:
            await conn.execute(update(image_locations).values(updated_at=old))
        assert await store.reclaim_stale_uploads(force=True) == 1
        yield b"more"

    with pytest.raises(ImageGone):
        await store.upload(ALICE, image["id"], dies())
    assert (await store.get(ALICE, image["id"]))["status"] == "queued"
    async with db.read() as conn:
        assert (await conn.execute(select(image_locations))).first() is None
        assert (await conn.execute(select(images.c.status))).scalar() == "queued"
    assert data_files(store) == []


async def test_no_data_and_missing_file(store: ImageStore) -> None:
    queued = await store.create(ALICE, DISK)
    assert await store.open_data(ALICE, queued["id"]) is None
    image = await _active(store)
    for name in data_files(store):
        (Path(store.datadir) / name).unlink()
    assert await store.open_data(ALICE, image["id"]) is None


async def test_corrupt_data_is_detected_on_read(store: ImageStore) -> None:
    image = await _active(store, b"hello")
    (path,) = [Path(store.datadir) / n for n in data_files(store)]
    path.write_bytes(b"jello")
    data = await store.open_data(ALICE, image["id"])
    assert data is not None
    with pytest.raises(ImageCorrupt):
        _ = [c async for c in data.chunks()]


async def test_views_read_properties_tags_and_locations_in_one_statement(store: ImageStore) -> None:
    """An image's view reads its row and then everything else in one statement (every boot shows its image): the
    same properties, tags (by value) and active locations (oldest first, metadata decoded) as one query each."""
    from sqlalchemy import event

    first = await _active(store, b"one", os_distro="cirros", hw_disk_bus="virtio", tags=["z", "a", "m"])
    second = await _active(store, b"two", tags=["b"])
    bare = await store.create(ALICE, {})
    now = utcnow()
    async with store.db.write() as conn:
        await image_db.add_location(conn, first["id"], "file:///copy", "slow", now)
        await conn.execute(update(image_locations).where(image_locations.c.url == "file:///copy")
                           .values(metadata={"k": "v"}))
    ids = [first["id"], second["id"], bare["id"]]
    seen: list[str] = []
    assert store.db.sync_engine is not None
    event.listen(store.db.sync_engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    async with store.db.read() as conn:
        props, tags, locations = await image_db.extras_of(conn, ids)
        assert len(seen) == 1
        assert (props, tags, locations) == (await image_db.properties_of(conn, ids), await image_db.tags_of(conn, ids),
                                            await image_db.locations_of(conn, ids))
    assert props[first["id"]] == {"os_distro": "cirros", "hw_disk_bus": "virtio"} and bare["id"] not in props
    assert tags == {first["id"]: ["a", "m", "z"], second["id"]: ["b"]}
    assert [loc["url"] for loc in locations[first["id"]]][1:] == ["file:///copy"]
    assert locations[first["id"]][1]["metadata"] == {"k": "v"} and bare["id"] not in locations
    seen.clear()
    assert (await store.get(ALICE, first["id"]))["tags"] == ["a", "m", "z"]
    assert len(seen) == 2  # the row, then the rest


async def test_a_view_is_built_again_only_when_its_row_changed(store: ImageStore) -> None:
    """``get`` reads the row every time and keeps the rest of the view while the row is the same: a second show
    is one statement; every change of its properties, tags or locations (which bump the row) shows at once, and
    visibility and deletion are judged on the row read now."""
    from sqlalchemy import event

    image = await _active(store, b"one", os_distro="cirros", tags=["a"], visibility="private")
    seen: list[str] = []
    assert store.db.sync_engine is not None
    event.listen(store.db.sync_engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    first = await store.get(ALICE, image["id"])
    assert len(seen) == 2
    seen.clear()
    again = await store.get(ALICE, image["id"])
    assert again == first and len(seen) == 1  # the row alone
    again["tags"].append("mine")  # a caller's change of what it got is not kept
    again["os_distro"] = "changed"
    assert await store.get(ALICE, image["id"]) == first
    await store.update(ALICE, image["id"], [{"op": "replace", "path": "/os_distro", "value": "fedora"}])
    assert (await store.get(ALICE, image["id"]))["os_distro"] == "fedora"
    await store.add_tag(ALICE, image["id"], "b")
    assert (await store.get(ALICE, image["id"]))["tags"] == ["a", "b"]
    await store.remove_tag(ALICE, image["id"], "a")
    assert (await store.get(ALICE, image["id"]))["tags"] == ["b"]
    with pytest.raises(exception.ImageNotFound):
        await store.get(BOB, image["id"])  # private: the kept view is not anyone's
    await store.set_active(ADMIN, image["id"], False)
    assert (await store.get(ALICE, image["id"]))["status"] == "deactivated"
    await store.delete(ADMIN, image["id"])
    with pytest.raises(exception.ImageNotFound):
        await store.get(ALICE, image["id"])
