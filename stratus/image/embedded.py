"""The embedded image store: Glance v2's image model in the project's database, data files on local disk.

Records live in ``images`` (+ properties, tags, locations); data in ``[image_store] filesystem_store_datadir``
(default ``<state_path>/images``). The store enforces Glance's rules (who sees what, what may change when), so
both the HTTP API (``image/api.py``) and compute (``EmbeddedImageClient``) get the same answers.

An upload claims the image with a compare-and-swap (``queued`` → ``saving``) and a *pending location* row whose
id is the upload's token and whose ``updated_at`` is its heartbeat. Data goes to ``<id>.<token>.part``, is
renamed when complete, and only then does one transaction make the image ``active``. Any failure puts the image
back to ``queued`` and removes the files; an upload whose process died is reclaimed once its heartbeat is stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime
import hashlib
import logging
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import IO, Any

from sqlalchemy.exc import IntegrityError
from starlette.datastructures import QueryParams

from stratus import exception
from stratus.db import images as db
from stratus.db.engine import Connection, Database
from stratus.image import rbd
from stratus.image.client import ImageClient, only_match, set_patch
from stratus.image.model import (
    IMAGE_SIZE_CAP,
    TAG_QUOTA,
    Caller,
    ImageBadRequest,
    ImageConflict,
    ImageCorrupt,
    ImageForbidden,
    ImageGone,
    ImageTooLarge,
    ImageUnavailable,
    apply_patch,
    check_policy,
    check_writable,
    editable,
    image_view,
    not_found,
    split,
    validate,
)
from stratus.image.stores import FileStore, Sink, Store, stores_from_conf
from stratus.utils import utcnow

LOG = logging.getLogger(__name__)

WRITE_CHUNK = 1 << 20  # bytes handed to a worker thread at a time (write + hash)
READ_CHUNK = 256 << 10
#: images whose last view ``ImageStore.get`` keeps (a bound on the memory; every boot shows its image)
VIEWS_KEPT = 256


def _qcow2_virtual_size(head: bytes) -> int | None:
    if len(head) >= 32 and head[:4] == b"QFI\xfb":
        return int(struct.unpack(">Q", head[24:32])[0])
    return None


class _Upload:
    """One upload: hashed here, written by its store's sink, both in worker threads; ``discard`` waits for a
    write still running, and removes the data even when it was complete (the image went away before it could
    become active)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        self.size = 0
        self.head = b""
        self._discarded = False
        self._lock = threading.Lock()  # discard() must not close the sink under a write still running

    def open(self) -> None:
        self.sink.open()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._discarded:
                return  # discarded meanwhile
            if len(self.head) < 32:
                self.head += data[:32 - len(self.head)]
            self.sink.write(data)
            self.md5.update(data)
            self.sha512.update(data)
            self.size += len(data)

    def finish(self) -> None:
        with self._lock:
            self.sink.finish()

    def discard(self) -> None:
        with self._lock:
            if not self._discarded:
                self._discarded = True
                self.sink.discard()


@dataclasses.dataclass
class ImageData:
    """An open image file, streamed in chunks and checked against the recorded hash at the end."""

    image: dict[str, Any]
    file: IO[bytes]

    async def chunks(self) -> AsyncIterator[bytes]:
        digest = hashlib.sha512() if self.image["os_hash_algo"] == "sha512" else None

        def _read() -> bytes:
            data = self.file.read(READ_CHUNK)
            if digest is not None:
                digest.update(data)
            return data

        try:
            while data := await asyncio.to_thread(_read):
                yield data
        finally:
            self.file.close()
        if digest is not None and self.image["os_hash_value"] and digest.hexdigest() != self.image["os_hash_value"]:
            raise ImageCorrupt(image_id=self.image["id"])


class ImageStore:
    """Images of all projects: records in the database, data under ``datadir``."""

    heartbeat_interval = 15.0  # seconds between an upload's proofs of life
    stale_after = 90.0  # an upload silent this long belongs to a dead process
    reclaim_interval = 60.0  # at most one sweep for stale uploads this often

    def __init__(self, conf: Any, db: Database) -> None:
        self.conf = conf
        self.db = db
        self.stores, self.default_store = stores_from_conf(conf)
        files = [s for s in self.stores.values() if isinstance(s, FileStore)]
        #: the (first) file store's directory
        self.datadir = files[0].datadir if files else None
        self._last_reclaim = float("-inf")
        self._copies: set[asyncio.Task[None]] = set()
        #: who waits for news of an image's copies (``wait_changed``), by image id
        self._watchers: dict[str, set[asyncio.Event]] = {}
        #: image id -> (its row, the view built from it and its properties, tags and locations), see ``get``
        self._viewed: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def _store_of(self, url: str, name: str | None) -> Store | None:
        """The store holding the data at ``url`` (by the name recorded with it, else by the URL's form)."""
        store = self.stores.get(name or "")
        if store is not None:
            return store
        return next((s for s in self.stores.values() if s.owns(url)), None)

    # --- reads -----------------------------------------------------------------------------------------------
    async def _views(self, conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [r["id"] for r in rows]
        props, tags, locations = await db.extras_of(conn, ids)
        opts = self.conf.image_store
        views = []
        for r in rows:
            view = image_view(r, props.get(r["id"], {}), tags.get(r["id"], []))
            found = locations.get(r["id"], [])
            if found and opts.enabled_backends:  # Glance shows stores in multi-store mode only
                view["stores"] = ",".join(dict.fromkeys(loc["store"] for loc in found))
            if opts.show_multiple_locations:
                view["locations"] = [{"url": loc["url"], "metadata": {**loc["metadata"], "store": loc["store"]}}
                                     for loc in found]
            if opts.show_image_direct_url and found:
                view["direct_url"] = found[0]["url"]
            views.append(view)
        return views

    async def _visible_row(self, conn: Connection, caller: Caller, image_id: str, for_update: bool = False
                           ) -> dict[str, Any]:
        row = await db.get_image(conn, image_id, for_update=for_update)
        if row is None or not caller.sees(row):
            raise not_found(image_id)
        return row

    async def get(self, caller: Caller, image_id: str) -> dict[str, Any]:
        """The image as the caller sees it. Its row is read (and who may see it, its status, its sizes judged
        from it) every time; the rest of its view (properties, tags, locations: a second statement) is the one
        built last for this image if the row is the same as then. Every change of those bumps the row's
        ``updated_at`` in the same transaction (Glance's rule too), so a row unchanged means they are."""
        async with self.db.read() as conn:
            row = await self._visible_row(conn, caller, image_id)
            kept = self._viewed.get(image_id)
            if kept is not None and kept[0] == row:
                return _copy_view(kept[1])
            view = (await self._views(conn, [row]))[0]
        if len(self._viewed) >= VIEWS_KEPT:
            self._viewed.clear()
        self._viewed[image_id] = (row, view)
        return _copy_view(view)

    async def list(self, caller: Caller, filters: db.ListFilters, sort: list[tuple[str, str]], limit: int,
                   marker: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the images ``caller`` may see, and the marker of the next page (None on the last)."""
        await self.reclaim_stale_uploads()
        filters = dataclasses.replace(filters, project_id=None if caller.is_admin else caller.project_id)
        async with self.db.read() as conn:
            marker_row = None
            if marker is not None:
                marker_row = await db.get_image(conn, marker)
                if marker_row is None or not caller.sees(marker_row):
                    raise ImageBadRequest(f"Invalid marker. Image {marker} could not be found.")
            rows = await db.list_images(conn, filters, sort, limit + 1, marker_row)
            more = len(rows) > limit
            rows = rows[:limit]
            return await self._views(conn, rows), (rows[-1]["id"] if more and rows else None)

    # --- writes ----------------------------------------------------------------------------------------------
    async def create(self, caller: Caller, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ImageBadRequest("Request body must be a JSON object.")
        for name in body:
            check_writable(name)
        validate(body)
        check_policy(caller, None, body)
        columns, extras, tags = split(body)
        image_id = body.get("id") or str(uuid.uuid4())
        now = utcnow()
        values = {**dict.fromkeys(("name", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value",
                                   "disk_format", "container_format")),
                  "visibility": "shared", "protected": False, "os_hidden": False, "min_ram": 0, "min_disk": 0,
                  "owner": caller.project_id, **columns, "id": image_id, "status": "queued", "created_at": now,
                  "updated_at": now}
        try:
            async with self.db.write() as conn:
                if await db.get_image(conn, image_id) is not None:
                    raise ImageConflict(f"Image with identifier {image_id} already exists!")
                await db.insert_image(conn, values, extras, tags)
        except IntegrityError as exc:
            raise ImageConflict(f"Image with identifier {image_id} already exists!") from exc
        return image_view(values, extras, sorted(tags))

    async def update(self, caller: Caller, image_id: str, changes: Any) -> dict[str, Any]:
        """Apply a JSON patch in one transaction: validate the whole result, write only what changed."""
        async with self.db.write() as conn:
            row = await self._visible_row(conn, caller, image_id, for_update=True)
            if not caller.owns(row):
                raise ImageForbidden("You are not authorized to complete modify_image action.")
            props = (await db.properties_of(conn, [image_id])).get(image_id, {})
            tags = (await db.tags_of(conn, [image_id])).get(image_id, [])
            old = editable(row, props, tags)
            new = apply_patch(row, old, changes)
            validate(new)
            check_policy(caller, row, new)
            columns, extras, new_tags = split(new)
            now = utcnow()
            changed = {k: v for k, v in columns.items() if v != old[k]}
            await db.update_image(conn, image_id, {**changed, "updated_at": now})
            if extras != props:
                await db.replace_properties(conn, image_id, extras)
            if new_tags != tags:
                await db.replace_tags(conn, image_id, new_tags)
            return image_view({**row, **changed, "updated_at": now}, extras, sorted(new_tags))

    async def delete(self, caller: Caller, image_id: str) -> None:
        """Records first, data after. Whether the stores can let the data go (an RBD image with clones cannot:
        Glance's 409) is asked before the write transaction, so no Ceph call holds the database's write lock."""
        async with self.db.read() as conn:
            await self._deletable(conn, caller, image_id)
            locations = (await db.locations_of(conn, [image_id], status=None)).get(image_id, [])
        for loc in locations:
            store = self._store_of(loc["url"], loc["store"])
            if store is not None:
                try:
                    await asyncio.to_thread(store.check_removable, loc["url"])
                except rbd.RbdImageBusy as exc:
                    raise ImageConflict(f"Image {image_id} could not be deleted because it is in use: "
                                        f"{exc.message}") from None
        async with self.db.write() as conn:
            await self._deletable(conn, caller, image_id, for_update=True)
            locations = (await db.locations_of(conn, [image_id], status=None)).get(image_id, [])
            await db.delete_image(conn, image_id)
        for loc in locations:
            await self._remove_data(loc["url"], loc["store"])

    async def _deletable(self, conn: Connection, caller: Caller, image_id: str, for_update: bool = False) -> None:
        row = await self._visible_row(conn, caller, image_id, for_update=for_update)
        if not caller.owns(row):
            raise ImageForbidden("You are not authorized to complete delete_image action.")
        if row["protected"]:
            raise ImageForbidden(f"Image {image_id} is protected and cannot be deleted.")

    async def _remove_data(self, url: str, store_name: str | None) -> None:
        store = self._store_of(url, store_name)
        if store is None:
            LOG.warning("no configured store holds %s (store %s): its data stays", url, store_name)
            return
        try:
            await asyncio.to_thread(store.remove, url)
        except Exception:
            LOG.exception("could not remove image data at %s", url)

    async def add_tag(self, caller: Caller, image_id: str, tag: str) -> None:
        if len(tag) > 255:
            raise ImageBadRequest("Tag is longer than 255 characters.")
        async with self.db.write() as conn:
            row = await self._visible_row(conn, caller, image_id, for_update=True)
            if not caller.owns(row):
                raise ImageForbidden("You are not authorized to complete modify_image action.")
            if await db.add_tag(conn, image_id, tag):
                if await db.count_tags(conn, image_id) > TAG_QUOTA:
                    raise ImageTooLarge(f"Maximum number of tags ({TAG_QUOTA}) exceeded.")
                await db.update_image(conn, image_id, {"updated_at": utcnow()})

    async def remove_tag(self, caller: Caller, image_id: str, tag: str) -> None:
        async with self.db.write() as conn:
            row = await self._visible_row(conn, caller, image_id, for_update=True)
            if not caller.owns(row):
                raise ImageForbidden("You are not authorized to complete modify_image action.")
            if not await db.remove_tag(conn, image_id, tag):
                raise exception.ImageNotFound(f"Tag {tag} not found")
            await db.update_image(conn, image_id, {"updated_at": utcnow()})

    async def set_active(self, caller: Caller, image_id: str, active: bool) -> None:
        """Deactivate (``active=False``) or reactivate an image: admins only, as Glance's default policy."""
        action, source, target = ("reactivate", "deactivated", "active") if active else \
            ("deactivate", "active", "deactivated")
        async with self.db.write() as conn:
            row = await self._visible_row(conn, caller, image_id, for_update=True)
            if not caller.is_admin:
                raise ImageForbidden(f"You are not authorized to complete {action} action.")
            if row["status"] == target:
                return
            if row["status"] != source:
                raise ImageForbidden(f"Not allowed to {action} image in status '{row['status']}'")
            await db.update_image(conn, image_id, {"status": target, "updated_at": utcnow()},
                                  expect_status=source)

    # --- data ------------------------------------------------------------------------------------------------
    def store_named(self, name: str | None) -> Store:
        """The store an upload or copy names (None: the default one); an unknown name is Glance's 400."""
        store = self.stores.get(name or self.default_store)
        if store is None:
            raise ImageBadRequest(f"Store for identifier {name} not found")
        return store

    async def upload(self, caller: Caller, image_id: str, chunks: AsyncIterable[bytes],
                     expected_size: int | None = None, store_name: str | None = None) -> dict[str, Any]:
        """Store the image's data; ``queued`` → ``saving`` → ``active``, or back to ``queued`` on any failure."""
        if expected_size is not None and expected_size > IMAGE_SIZE_CAP:
            raise ImageTooLarge(f"Image exceeds the storage quota: {expected_size} > {IMAGE_SIZE_CAP} bytes.")
        store = self.store_named(store_name)
        await self.reclaim_stale_uploads()
        token = uuid.uuid4().hex
        url, sink = store.begin(image_id, token)
        data = _Upload(sink)
        now = utcnow()
        async with self.db.write() as conn:
            row = await self._visible_row(conn, caller, image_id, for_update=True)
            if not caller.owns(row):
                raise ImageForbidden("You are not authorized to complete upload_image action.")
            if row["status"] != "queued":
                raise ImageConflict(f"Image status transition from {row['status']} to saving is not allowed")
            if not row["disk_format"] or not row["container_format"]:
                raise ImageBadRequest("Properties disk_format, container_format must be set prior to saving data.")
            await db.update_image(conn, image_id, {"status": "saving", "updated_at": now}, expect_status="queued")
            location_id = await db.add_pending_location(conn, image_id, url, now, store.name)
        try:
            await asyncio.to_thread(data.open)
            await self._receive(image_id, location_id, data, chunks)
            await asyncio.to_thread(data.finish)
            return await self._activate(image_id, location_id, row["disk_format"], data)
        except BaseException as exc:
            held = await asyncio.shield(self._abandon(image_id, location_id, data))
            if not held and isinstance(exc, Exception) and not isinstance(exc, exception.StratusException):
                # the image was deleted (or reset) under the upload, taking its files: that, not the store's
                # error about a vanished .part file, is the answer, as Glance's
                raise ImageGone(_gone(image_id)) from exc
            raise

    async def _receive(self, image_id: str, location_id: int, data: _Upload, chunks: AsyncIterable[bytes]
                       ) -> None:
        """Read the body while the previous megabyte is hashed and written in a worker thread."""
        buffer, received = bytearray(), 0
        last_beat = time.monotonic()
        writing: asyncio.Future[None] | None = None
        try:
            async for chunk in chunks:
                buffer += chunk
                received += len(chunk)
                if received > IMAGE_SIZE_CAP:
                    raise ImageTooLarge(f"Image exceeds the storage quota of {IMAGE_SIZE_CAP} bytes.")
                if len(buffer) >= WRITE_CHUNK:
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(asyncio.to_thread(data.write, bytes(buffer)))
                    buffer.clear()
                if time.monotonic() - last_beat >= self.heartbeat_interval:
                    last_beat = time.monotonic()
                    async with self.db.write() as conn:
                        if not await db.touch_location(conn, location_id, utcnow()):
                            raise ImageGone(f"Image {image_id} was deleted or reset during the upload.")
            if writing is not None:
                await writing
            if buffer:
                await asyncio.to_thread(data.write, bytes(buffer))
        finally:
            if writing is not None and not writing.done():
                # Failing already: the write finishes on its own (discard() waits for it); mark its outcome seen.
                writing.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def _activate(self, image_id: str, location_id: int, disk_format: str, data: _Upload
                        ) -> dict[str, Any]:
        virtual = data.size if disk_format == "raw" else _qcow2_virtual_size(data.head)
        now = utcnow()
        async with self.db.write() as conn:
            if not await db.activate_location(conn, location_id, now):
                raise ImageGone(_gone(image_id))
            await db.update_image(conn, image_id, {
                "status": "active", "size": data.size, "virtual_size": virtual, "checksum": data.md5.hexdigest(),
                "os_hash_algo": "sha512", "os_hash_value": data.sha512.hexdigest(), "updated_at": now,
            }, expect_status="saving")
            row = await db.get_image(conn, image_id)
            assert row is not None
            return (await self._views(conn, [row]))[0]

    async def _abandon(self, image_id: str, location_id: int, data: _Upload) -> bool:
        """Undo a failed upload: files gone, and the image ``queued`` again if this upload still held it.
        Returns whether it did (False: the image was deleted or reset meanwhile)."""
        try:
            await asyncio.to_thread(data.discard)
            async with self.db.write() as conn:
                if not await db.drop_pending_location(conn, location_id):
                    return False
                await db.update_image(conn, image_id, {"status": "queued", "updated_at": utcnow()},
                                      expect_status="saving")
        except Exception:
            LOG.exception("could not clean up the failed upload of image %s", image_id)
        return True

    async def reclaim_stale_uploads(self, force: bool = False) -> int:
        """Put images whose upload died with its process back to ``queued``; at most once a ``reclaim_interval``."""
        if not force and time.monotonic() - self._last_reclaim < self.reclaim_interval:
            return 0
        self._last_reclaim = time.monotonic()
        threshold = utcnow() - datetime.timedelta(seconds=self.stale_after)
        async with self.db.read() as conn:
            stale = await db.stale_uploads(conn, threshold)
        for upload in stale:
            LOG.warning("reclaiming image %s: its upload stopped without finishing", upload["image_id"])
            await self._remove_data(upload["url"], upload["store"])
            async with self.db.write() as conn:
                if await db.drop_pending_location(conn, upload["id"]):
                    await db.update_image(conn, upload["image_id"], {"status": "queued", "updated_at": utcnow()},
                                          expect_status="saving")
        return len(stale)

    async def open_data(self, caller: Caller, image_id: str) -> ImageData | None:
        """The image's data, opened from the first store that has it; None if it has none (Glance: 204)."""
        async with self.db.read() as conn:
            row = await self._visible_row(conn, caller, image_id)
            if row["status"] == "deactivated" and not caller.is_admin:
                raise ImageForbidden("The requested image has been deactivated. Image data download is forbidden.")
            found = (await db.locations_of(conn, [image_id])).get(image_id, []) \
                if row["status"] in ("active", "deactivated") else []
            view = (await self._views(conn, [row]))[0]
        for loc in found:
            store = self._store_of(loc["url"], loc["store"])
            if store is None:
                continue
            try:
                handle = await asyncio.to_thread(store.open, loc["url"])
            except (FileNotFoundError, rbd.RbdUnavailable) as exc:
                LOG.error("data of image %s is not readable at %s: %s", image_id, loc["url"], exc)
                continue
            return ImageData(view, handle)
        return None

    async def locations(self, image_id: str) -> list[dict[str, Any]]:
        """Where the image's data is (url, store), for compute in this process (no visibility rules: the
        caller has shown the image already)."""
        async with self.db.read() as conn:
            return (await db.locations_of(conn, [image_id])).get(image_id, [])

    async def add_location(self, caller: Caller, image_id: str, url: str, store_name: str | None) -> None:
        """A queued image becomes active with data a store already holds (Nova's direct RBD snapshot: the
        compute host cloned and flattened the disk into the store's pool). Size from the store; no checksum,
        as Glance records none for a location added this way."""
        store = self._store_of(url, store_name)
        if store is None:
            raise ImageBadRequest(f"No store of this image service holds {url}.")
        reader = await asyncio.to_thread(store.open, url)
        try:
            size = int(getattr(reader, "size", 0) or 0)
        finally:
            await asyncio.to_thread(reader.close)
        now = utcnow()
        async with self.db.write() as conn:
            row = await self._visible_row(conn, caller, image_id, for_update=True)
            if not caller.owns(row):
                raise ImageForbidden("You are not authorized to complete add_location action.")
            if row["status"] != "queued":
                raise ImageConflict(f"Image status transition from {row['status']} to active is not allowed")
            await db.add_location(conn, image_id, url, store.name, now)
            await db.update_image(conn, image_id, {"status": "active", "size": size, "virtual_size": size,
                                                   "updated_at": now}, expect_status="queued")

    # --- copy-image import (Glance multi-store) --------------------------------------------------------------
    async def copy_to_stores(self, caller: Caller, image_id: str, stores: list[str] | None,
                             all_stores_must_succeed: bool = True, user_id: str | None = None,
                             request_id: str | None = None) -> None:
        """Glance's ``copy-image`` import: copy an active image's data into more stores, in the background.

        The image lists the stores under way in ``os_glance_importing_to_stores``; each finished copy adds a
        location (and its store to ``stores``); a failed one goes to ``os_glance_failed_import``. The import is a
        task of the image (``api_image_import``, ``processing`` until every copy is done, then ``success``, or
        ``failure`` when a store failed that had to succeed), as Glance records it.
        """
        async with self.db.write() as conn:
            row = await self._visible_row(conn, caller, image_id, for_update=True)
            if not caller.is_admin and not caller.owns(row):
                raise ImageForbidden("You are not authorized to complete copy_image action.")
            if row["status"] != "active":
                raise ImageConflict(f"Image {image_id} is not active: it is {row['status']}.")
            have = {loc["store"] for loc in (await db.locations_of(conn, [image_id])).get(image_id, [])}
            wanted = [s for s in self.stores if s not in have] if stores is None else list(dict.fromkeys(stores))
            for name in wanted:
                self.store_named(name)
                if name in have:
                    raise ImageConflict(f"Image {image_id} is already present in store {name}.")
            props = (await db.properties_of(conn, [image_id])).get(image_id, {})
            importing = _csv(props.get("os_glance_importing_to_stores"))
            busy = [n for n in wanted if n in importing]
            if busy:
                raise ImageConflict(f"Image {image_id} is already being copied to {', '.join(busy)}.")
            failed = [n for n in _csv(props.get("os_glance_failed_import")) if n not in wanted]
            await db.replace_properties(conn, image_id, {**props,
                                                        "os_glance_importing_to_stores": ",".join(importing + wanted),
                                                        "os_glance_failed_import": ",".join(failed)})
            await db.update_image(conn, image_id, {"updated_at": utcnow()})
            task_id = str(uuid.uuid4())
            if wanted:
                now = utcnow()
                await db.insert_task(conn, {
                    "id": task_id, "image_id": image_id, "type": "api_image_import", "status": "processing",
                    "owner": caller.project_id or None, "user_id": user_id, "request_id": request_id,
                    "input": {"image_id": image_id, "import_req": {
                        "method": {"name": "copy-image"}, "stores": wanted,
                        "all_stores_must_succeed": all_stores_must_succeed}, "backend": wanted},
                    "result": None, "message": "", "created_at": now, "updated_at": now})
        if wanted:
            task = asyncio.get_running_loop().create_task(self._copy(image_id, wanted, all_stores_must_succeed,
                                                                     task_id))
            self._copies.add(task)
            task.add_done_callback(self._copies.discard)

    async def wait_changed(self, image_id: str, timeout: float) -> None:
        """Return when a copy of the image into a store finished or failed here, or after ``timeout`` seconds:
        a compute host waiting for a copy-image import hears of it at once instead of at its next poll (copies
        another process runs are not heard of: the caller still polls)."""
        event = asyncio.Event()
        watchers = self._watchers.setdefault(image_id, set())
        watchers.add(event)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            watchers.discard(event)
            if not watchers:
                self._watchers.pop(image_id, None)

    def _changed(self, image_id: str) -> None:
        for event in self._watchers.get(image_id, ()):
            event.set()

    async def _copy(self, image_id: str, targets: list[str], all_must_succeed: bool, task_id: str) -> None:
        try:
            await self._copy_all(image_id, targets, all_must_succeed)
        finally:
            try:
                await self._finish_task(image_id, targets, all_must_succeed, task_id)
            except Exception:
                LOG.exception("the import task %s of image %s could not be finished", task_id, image_id)
            self._changed(image_id)

    async def _finish_task(self, image_id: str, targets: list[str], all_must_succeed: bool, task_id: str) -> None:
        """The import's task once its copies are done: ``failure`` when a store that had to succeed failed (the
        message names the stores), else ``success``; it expires 48 hours later (Glance's task_time_to_live)."""
        async with self.db.write() as conn:
            props = (await db.properties_of(conn, [image_id])).get(image_id)
            if props is None:
                return  # the image is gone, and its tasks with it
            failed = [n for n in _csv(props.get("os_glance_failed_import")) if n in targets]
            now = utcnow()
            failure = bool(failed) and all_must_succeed
            await db.update_task(conn, task_id, {
                "status": "failure" if failure else "success", "updated_at": now,
                "expires_at": now + datetime.timedelta(hours=48), "result": None if failure else {"image_id": image_id},
                "message": f"Copying the image data to store(s) {', '.join(failed)} failed." if failed else ""})

    async def tasks(self, caller: Caller, image_id: str) -> list[dict[str, Any]]:
        """The tasks of an image the caller sees (Glance's ``GET /v2/images/{id}/tasks``), newest first."""
        async with self.db.read() as conn:
            await self._visible_row(conn, caller, image_id)
            return await db.tasks_of(conn, image_id)

    async def _copy_all(self, image_id: str, targets: list[str], all_must_succeed: bool) -> None:
        admin = Caller(project_id="", is_admin=True)
        for name in targets:
            ok = False
            try:
                ok = await self._copy_one(admin, image_id, self.stores[name])
            except Exception:
                LOG.exception("copying image %s to store %s failed", image_id, name)
            async with self.db.write() as conn:
                props = (await db.properties_of(conn, [image_id])).get(image_id)
                if props is None:
                    return  # deleted meanwhile
                importing = [n for n in _csv(props.get("os_glance_importing_to_stores")) if n != name]
                failed = _csv(props.get("os_glance_failed_import"))
                if not ok:
                    failed.append(name)
                await db.replace_properties(conn, image_id, {**props,
                                                            "os_glance_importing_to_stores": ",".join(importing),
                                                            "os_glance_failed_import": ",".join(failed)})
                await db.update_image(conn, image_id, {"updated_at": utcnow()})
            self._changed(image_id)
            if not ok and all_must_succeed:
                async with self.db.write() as conn:  # the other stores are not tried: none of them is started
                    props = (await db.properties_of(conn, [image_id])).get(image_id)
                    if props is not None:
                        rest = [n for n in targets if n != name]
                        importing = [n for n in _csv(props.get("os_glance_importing_to_stores")) if n not in rest]
                        failed = list(dict.fromkeys(_csv(props.get("os_glance_failed_import")) + rest))
                        await db.replace_properties(conn, image_id, {
                            **props, "os_glance_importing_to_stores": ",".join(importing),
                            "os_glance_failed_import": ",".join(failed)})
                        await db.update_image(conn, image_id, {"updated_at": utcnow()})
                return

    async def _copy_one(self, caller: Caller, image_id: str, target: Store) -> bool:
        """Stream the image's data into ``target``; verified against its recorded hash, then a new location."""
        source = await self.open_data(caller, image_id)
        if source is None:
            return False
        url, sink = target.begin(image_id, uuid.uuid4().hex)
        data = _Upload(sink)
        try:
            await asyncio.to_thread(data.open)
            async for chunk in source.chunks():  # raises ImageCorrupt if the source's hash does not match
                await asyncio.to_thread(data.write, chunk)
            await asyncio.to_thread(data.finish)
            now = utcnow()
            async with self.db.write() as conn:
                if await db.get_image(conn, image_id) is None:
                    raise ImageGone(f"Image {image_id} was deleted during the copy.")
                await db.add_location(conn, image_id, url, target.name, now)
                await db.update_image(conn, image_id, {"updated_at": now})  # its view changed: a new store
        except BaseException:
            await asyncio.to_thread(data.discard)
            raise
        LOG.info("image %s copied to store %s (%s)", image_id, target.name, url)
        return True


def _copy_view(view: dict[str, Any]) -> dict[str, Any]:
    """A view the caller may change without changing the one kept (its lists and the locations' dicts copied)."""
    out = dict(view)
    out["tags"] = list(view["tags"])
    if "locations" in view:
        out["locations"] = copy.deepcopy(view["locations"])
    return out


def _gone(image_id: str) -> str:
    return (f"Image {image_id} could not be found after upload. The image may have been deleted during the "
            "upload, cleaning up the chunks uploaded.")


def _csv(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


class EmbeddedImageClient(ImageClient):
    """What compute and the compute API use when the image service is this process's own store."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store

    async def show(self, context: dict[str, Any], image_id: str) -> dict[str, Any]:
        return await self.store.get(Caller.of(context), image_id)

    async def find(self, context: dict[str, Any], name_or_id: str) -> dict[str, Any]:
        caller = Caller.of(context)
        with contextlib.suppress(exception.ImageNotFound):
            return await self.store.get(caller, name_or_id)
        found, _ = await self.store.list(caller, db.ListFilters(visibility="all", names=[name_or_id]),
                                         [("created_at", "desc")], 2)
        return only_match(found, name_or_id)

    async def list_by_properties(self, context: dict[str, Any], properties: dict[str, str]) -> list[dict[str, Any]]:
        found, _ = await self.store.list(Caller.of(context), db.ListFilters(visibility="all", properties=properties),
                                         [("created_at", "desc")], 1000)
        return found

    async def download(self, context: dict[str, Any], image_id: str) -> AsyncIterator[bytes]:
        data = await self.store.open_data(Caller.of(context), image_id)
        if data is None:
            raise ImageUnavailable(image_id=image_id)
        async for chunk in data.chunks():
            yield chunk


    async def create(self, context: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        return await self.store.create(Caller.of(context), body)

    async def update(self, context: dict[str, Any], image_id: str, values: dict[str, Any]) -> dict[str, Any]:
        caller = Caller.of(context)
        return await self.store.update(caller, image_id, set_patch(await self.store.get(caller, image_id), values))

    async def list(self, context: dict[str, Any], params: dict[str, str]) -> list[dict[str, Any]]:
        from stratus.image.api import list_query  # the embedded API's own parsing of a Glance v2 query

        filters, sort, limit, marker = list_query(QueryParams(params))
        found, _ = await self.store.list(Caller.of(context), filters, sort, limit, marker)
        return found

    async def patch(self, context: dict[str, Any], image_id: str, values: dict[str, Any],
                    remove: list[str]) -> dict[str, Any]:
        caller = Caller.of(context)
        return await self.store.update(caller, image_id,
                                       set_patch(await self.store.get(caller, image_id), values, remove))

    async def upload(self, context: dict[str, Any], image_id: str, chunks: AsyncIterable[bytes]) -> None:
        await self.store.upload(Caller.of(context), image_id, chunks)

    async def delete(self, context: dict[str, Any], image_id: str) -> None:
        with contextlib.suppress(exception.ImageNotFound):
            await self.store.delete(Caller.of(context), image_id)

    async def locations(self, context: dict[str, Any], image: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.store.locations(image["id"])

    async def copy_to_store(self, context: dict[str, Any], image_id: str, store: str) -> None:
        await self.store.copy_to_stores(Caller.of(context), image_id, [store])

    async def wait_changed(self, context: dict[str, Any], image_id: str, timeout: float) -> None:
        await self.store.wait_changed(image_id, timeout)

    async def add_location(self, context: dict[str, Any], image_id: str, url: str, store: str | None) -> None:
        await self.store.add_location(Caller.of(context), image_id, url, store)


def client_for(conf: Any, store: ImageStore) -> ImageClient:
    """The image client of this process: Glance when ``[glance] api_servers`` is set, else the embedded store."""
    if conf.glance.api_servers:
        from stratus.image.glance import GlanceClient

        return GlanceClient(conf.glance.api_servers)
    return EmbeddedImageClient(store)
