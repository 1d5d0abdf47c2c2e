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
import dataclasses
import datetime
import hashlib
import logging
import os
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import IO, Any

import jsonschema
from sqlalchemy.exc import IntegrityError

from stratus import exception
from stratus.db import images as db
from stratus.db.engine import Connection, Database
from stratus.image.client import ImageClient
from stratus.utils import isotime, utcnow

LOG = logging.getLogger(__name__)

IMAGE_SIZE_CAP = 1 << 40  # Glance's default image_size_cap: 1 TiB
PROPERTY_QUOTA = 128  # Glance's image_property_quota
TAG_QUOTA = 128  # Glance's image_tag_quota
WRITE_CHUNK = 1 << 20  # bytes handed to a worker thread at a time (write + hash)
READ_CHUNK = 256 << 10

DISK_FORMATS = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
CONTAINER_FORMATS = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]
STATUSES = ["queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete",
            "deactivated"]
VISIBILITIES = ["public", "private", "shared", "community"]
# Columns a caller may write; everything else not read-only or reserved is an extra (string) property.
WRITABLE = ("name", "visibility", "protected", "os_hidden", "owner", "min_ram", "min_disk", "disk_format",
            "container_format")
READ_ONLY = frozenset({"status", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size",
                       "created_at", "updated_at", "self", "file", "schema", "direct_url", "stores"})
RESERVED = frozenset({"location", "locations", "deleted", "deleted_at"})


# --- errors: each carries the HTTP status the API answers with -----------------------------------------------
class ImageBadRequest(exception.StratusException):
    code = 400


class ImageForbidden(exception.StratusException):
    code = 403


class ImageConflict(exception.StratusException):
    code = 409


class ImageGone(exception.StratusException):
    code = 410


class ImageTooLarge(exception.StratusException):
    code = 413


class ImageUnavailable(exception.StratusException):
    """The image exists but has no data to give (not uploaded yet, or its file is missing)."""

    msg_fmt = "Image %(image_id)s has no data."
    code = 409


class ImageCorrupt(exception.StratusException):
    msg_fmt = "Data of image %(image_id)s does not match its checksum."


def _not_found(image_id: str) -> exception.ImageNotFound:
    return exception.ImageNotFound(f"No image found with ID {image_id}")


# --- who is asking ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    project_id: str
    is_admin: bool = False

    @classmethod
    def of(cls, context: Any) -> Caller:
        """From a ``RequestContext`` or its ``to_dict()`` (what crosses RPC to compute)."""
        get = context.get if isinstance(context, Mapping) else lambda k, d=None: getattr(context, k, d)
        return cls(project_id=str(get("project_id") or ""), is_admin=bool(get("is_admin", False)))

    def sees(self, row: Mapping[str, Any]) -> bool:
        return self.is_admin or row["owner"] == self.project_id or row["visibility"] in ("public", "community")

    def owns(self, row: Mapping[str, Any]) -> bool:
        return self.is_admin or row["owner"] == self.project_id


# --- the schema clients fetch and the store validates against ------------------------------------------------
def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": ["null", kind], **extra}


IMAGE_SCHEMA: dict[str, Any] = {
    "name": "image",
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
                                             "-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$",
               "description": "An identifier for the image"},
        "name": _nullable("string", maxLength=255, description="Descriptive name for the image"),
        "status": {"type": "string", "readOnly": True, "enum": STATUSES, "description": "Status of the image"},
        "visibility": {"type": "string", "enum": VISIBILITIES, "description": "Scope of image accessibility"},
        "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
        "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list."},
        "checksum": _nullable("string", readOnly=True, maxLength=32, description="md5 hash of image contents."),
        "os_hash_algo": _nullable("string", readOnly=True, maxLength=64,
                                  description="Algorithm to calculate the os_hash_value"),
        "os_hash_value": _nullable("string", readOnly=True, maxLength=128,
                                   description="Hexdigest of the image contents using os_hash_algo"),
        "owner": _nullable("string", maxLength=255, description="Owner of the image"),
        "size": _nullable("integer", readOnly=True, description="Size of image file in bytes"),
        "virtual_size": _nullable("integer", readOnly=True, description="Virtual size of image in bytes"),
        "container_format": {"type": ["null", "string"], "enum": [None, *CONTAINER_FORMATS],
                             "description": "Format of the container"},
        "disk_format": {"type": ["null", "string"], "enum": [None, *DISK_FORMATS],
                        "description": "Format of the disk"},
        "created_at": {"type": "string", "readOnly": True, "description": "Date and time of image registration"},
        "updated_at": {"type": "string", "readOnly": True, "description": "Date and time of the last image "
                                                                           "modification"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 255},
                 "description": "List of strings related to the image"},
        "min_ram": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1,
                    "description": "Amount of ram (in MB) required to boot image."},
        "min_disk": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1,
                     "description": "Amount of disk space (in GB) required to boot image."},
        "self": {"type": "string", "readOnly": True, "description": "An image self url"},
        "file": {"type": "string", "readOnly": True, "description": "An image file url"},
        "schema": {"type": "string", "readOnly": True, "description": "An image schema url"},
    },
    "additionalProperties": {"type": "string", "maxLength": 65535},
    "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
              {"rel": "describedby", "href": "{schema}"}],
}

IMAGES_SCHEMA: dict[str, Any] = {
    "name": "images",
    "properties": {
        "images": {"type": "array", "items": IMAGE_SCHEMA},
        "schema": {"type": "string"},
        "first": {"type": "string"},
        "next": {"type": "string"},
    },
    "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
              {"rel": "describedby", "href": "{schema}"}],
}

_VALIDATOR = jsonschema.Draft4Validator(IMAGE_SCHEMA)


def _validate(doc: Mapping[str, Any]) -> None:
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(doc))
    if error is not None:
        raise ImageBadRequest(f"Provided object does not match schema 'image': {error.message}")
    for name, value in doc.items():
        if len(name) > 255:
            raise ImageBadRequest(f"Property name is longer than 255 characters: {name[:32]}...")
        if "\x00" in name or any("\x00" in v for v in (value if isinstance(value, list) else [value])
                                 if isinstance(v, str)):
            raise ImageBadRequest(f"Property {name!r} contains a NUL character.")  # PostgreSQL refuses them


def _check_writable(name: str) -> None:
    if name in READ_ONLY:
        raise ImageForbidden(f"Attribute '{name}' is read-only.")
    if name in RESERVED or name.startswith("os_glance"):
        raise ImageForbidden(f"Attribute '{name}' is reserved.")


def _check_policy(caller: Caller, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> None:
    """Glance's default policy and limits on what a caller writes: who may publish, who may give images away."""
    if new.get("visibility") == "public" and (old is None or old["visibility"] != "public") \
            and not caller.is_admin:
        raise ImageForbidden("You are not authorized to complete publicize_image action.")
    if "owner" in new and new["owner"] != (old["owner"] if old else caller.project_id) and not caller.is_admin:
        raise ImageForbidden(f"You are not permitted to {'create' if old is None else 'modify'} images owned by "
                             f"'{new['owner']}'.")
    if len(new.get("tags", ())) > TAG_QUOTA:
        raise ImageTooLarge(f"Maximum number of tags ({TAG_QUOTA}) exceeded.")


def image_view(row: Mapping[str, Any], properties: Mapping[str, str], tags: list[str]) -> dict[str, Any]:
    """The image as Glance v2 shows it: extra properties at the top level, then the base attributes."""
    view: dict[str, Any] = dict(properties)
    image_id = row["id"]
    view.update({
        "id": image_id, "name": row["name"], "status": row["status"], "visibility": row["visibility"],
        "protected": bool(row["protected"]), "os_hidden": bool(row["os_hidden"]), "checksum": row["checksum"],
        "os_hash_algo": row["os_hash_algo"], "os_hash_value": row["os_hash_value"], "owner": row["owner"],
        "size": row["size"], "virtual_size": row["virtual_size"], "min_ram": row["min_ram"],
        "min_disk": row["min_disk"], "disk_format": row["disk_format"], "container_format": row["container_format"],
        "created_at": isotime(row["created_at"]), "updated_at": isotime(row["updated_at"]), "tags": tags,
        "self": f"/v2/images/{image_id}", "file": f"/v2/images/{image_id}/file", "schema": "/v2/schemas/image",
    })
    return view


def _editable(row: Mapping[str, Any], properties: Mapping[str, str], tags: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = dict(properties)
    doc.update({k: (bool(row[k]) if k in ("protected", "os_hidden") else row[k]) for k in WRITABLE})
    doc["tags"] = list(tags)
    return doc


def _split(doc: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """A validated document → (columns, extra properties, tags)."""
    columns = {k: doc[k] for k in WRITABLE if k in doc}
    extras = {k: v for k, v in doc.items() if k not in WRITABLE and k not in ("tags", "id")}
    if len(extras) > PROPERTY_QUOTA:
        raise ImageTooLarge(f"Maximum number of extra properties ({PROPERTY_QUOTA}) exceeded.")
    return columns, extras, list(dict.fromkeys(doc.get("tags", [])))


# --- JSON patch (media type application/openstack-images-v2.1-json-patch) ------------------------------------
def _patch_path(change: Any) -> str:
    if not isinstance(change, dict):
        raise ImageBadRequest("Each change must be a JSON object.")
    op = change.get("op")
    if op not in ("add", "replace", "remove"):
        raise ImageBadRequest(f"Unable to find '{op}' in JSON Schema change: op must be add, replace or remove.")
    path = change.get("path")
    if not isinstance(path, str) or not path.startswith("/") or len(path) < 2:
        raise ImageBadRequest(f"Invalid JSON pointer for this resource: '{path}'")
    if "/" in path[1:]:
        raise ImageBadRequest("Nested paths are not allowed")
    if op != "remove" and "value" not in change:
        raise ImageBadRequest(f"Operation '{op}' needs a 'value'.")
    return path[1:].replace("~1", "/").replace("~0", "~")


def apply_patch(row: Mapping[str, Any], doc: dict[str, Any], changes: Any) -> dict[str, Any]:
    """Apply Glance's 2.1 JSON patch semantics to ``doc`` (the editable view); returns the new document."""
    if not isinstance(changes, list):
        raise ImageBadRequest("Request body must be a JSON array of operation objects.")
    doc = dict(doc)
    for change in changes:
        name = _patch_path(change)
        if name == "id":
            raise ImageForbidden("Attribute 'id' is read-only.")
        _check_writable(name)
        op = change["op"]
        base = name in WRITABLE or name == "tags"
        if name in ("disk_format", "container_format") and op != "remove" and row["status"] != "queued" \
                and change["value"] != doc.get(name):
            raise ImageForbidden(f"Attribute {name} can be only replaced for a queued image.")
        if op == "remove":
            if base:
                raise ImageForbidden(f"Property {name} may not be removed.")
            if name not in doc:
                raise ImageConflict(f"Property {name} does not exist.")
            del doc[name]
        elif op == "replace" and not base and name not in doc:
            raise ImageConflict(f"Property {name} does not exist.")
        else:
            doc[name] = change["value"]
    return doc


def _qcow2_virtual_size(head: bytes) -> int | None:
    if len(head) >= 32 and head[:4] == b"QFI\xfb":
        return int(struct.unpack(">Q", head[24:32])[0])
    return None


class _DataFile:
    """One upload's file: written and hashed in worker threads, renamed into place only when complete."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.part = path + ".part"
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        self.size = 0
        self.head = b""
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()  # discard() must not close the file under a write still running

    def open(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._file = open(self.part, "xb")  # closed by finish() or discard()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._file is None or self._file.closed:
                return  # discarded meanwhile
            if len(self.head) < 32:
                self.head += data[:32 - len(self.head)]
            self._file.write(data)
            self.md5.update(data)
            self.sha512.update(data)
            self.size += len(data)

    def finish(self) -> None:
        with self._lock:
            assert self._file is not None
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.part, self.path)

    def discard(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
            remove_data(self.path)


def remove_data(path: str) -> None:
    """Remove an image file and any partial upload of it; missing files are fine."""
    for candidate in (path, path + ".part"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(candidate)


def _path_of(url: str) -> str:
    return url[len("file://"):] if url.startswith("file://") else url


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
        self.datadir = os.path.abspath(conf.image_store.filesystem_store_datadir
                                       or os.path.join(conf.state_path, "images"))
        self._last_reclaim = float("-inf")

    # --- reads -----------------------------------------------------------------------------------------------
    async def _views(self, conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [r["id"] for r in rows]
        props, tags = await db.properties_of(conn, ids), await db.tags_of(conn, ids)
        return [image_view(r, props.get(r["id"], {}), tags.get(r["id"], [])) for r in rows]

    async def _visible_row(self, conn: Connection, caller: Caller, image_id: str, for_update: bool = False
                           ) -> dict[str, Any]:
        row = await db.get_image(conn, image_id, for_update=for_update)
        if row is None or not caller.sees(row):
            raise _not_found(image_id)
        return row

    async def get(self, caller: Caller, image_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = await self._visible_row(conn, caller, image_id)
            return (await self._views(conn, [row]))[0]

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
            _check_writable(name)
        _validate(body)
        _check_policy(caller, None, body)
        columns, extras, tags = _split(body)
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
            old = _editable(row, props, tags)
            new = apply_patch(row, old, changes)
            _validate(new)
            _check_policy(caller, row, new)
            columns, extras, new_tags = _split(new)
            now = utcnow()
            changed = {k: v for k, v in columns.items() if v != old[k]}
            await db.update_image(conn, image_id, {**changed, "updated_at": now})
            if extras != props:
                await db.replace_properties(conn, image_id, extras)
            if new_tags != tags:
                await db.replace_tags(conn, image_id, new_tags)
            return image_view({**row, **changed, "updated_at": now}, extras, sorted(new_tags))

    async def delete(self, caller: Caller, image_id: str) -> None:
        async with self.db.write() as conn:
            row = await self._visible_row(conn, caller, image_id, for_update=True)
            if not caller.owns(row):
                raise ImageForbidden("You are not authorized to complete delete_image action.")
            if row["protected"]:
                raise ImageForbidden(f"Image {image_id} is protected and cannot be deleted.")
            urls = await db.delete_image(conn, image_id)
        for url in urls:
            await asyncio.to_thread(remove_data, _path_of(url))

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
    async def upload(self, caller: Caller, image_id: str, chunks: AsyncIterable[bytes],
                     expected_size: int | None = None) -> dict[str, Any]:
        """Store the image's data; ``queued`` → ``saving`` → ``active``, or back to ``queued`` on any failure."""
        if expected_size is not None and expected_size > IMAGE_SIZE_CAP:
            raise ImageTooLarge(f"Image exceeds the storage quota: {expected_size} > {IMAGE_SIZE_CAP} bytes.")
        await self.reclaim_stale_uploads()
        token = uuid.uuid4().hex
        data = _DataFile(os.path.join(self.datadir, f"{image_id}.{token}"))
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
            location_id = await db.add_pending_location(conn, image_id, "file://" + data.path, now)
        try:
            await asyncio.to_thread(data.open)
            await self._receive(image_id, location_id, data, chunks)
            await asyncio.to_thread(data.finish)
            return await self._activate(image_id, location_id, row["disk_format"], data)
        except BaseException:
            await asyncio.shield(self._abandon(image_id, location_id, data))
            raise

    async def _receive(self, image_id: str, location_id: int, data: _DataFile, chunks: AsyncIterable[bytes]
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

    async def _activate(self, image_id: str, location_id: int, disk_format: str, data: _DataFile
                        ) -> dict[str, Any]:
        virtual = data.size if disk_format == "raw" else _qcow2_virtual_size(data.head)
        now = utcnow()
        async with self.db.write() as conn:
            if not await db.activate_location(conn, location_id, now):
                raise ImageGone(f"Image {image_id} could not be found after upload. The image may have been "
                                "deleted during the upload.")
            await db.update_image(conn, image_id, {
                "status": "active", "size": data.size, "virtual_size": virtual, "checksum": data.md5.hexdigest(),
                "os_hash_algo": "sha512", "os_hash_value": data.sha512.hexdigest(), "updated_at": now,
            }, expect_status="saving")
            row = await db.get_image(conn, image_id)
            assert row is not None
            return (await self._views(conn, [row]))[0]

    async def _abandon(self, image_id: str, location_id: int, data: _DataFile) -> None:
        """Undo a failed upload: files gone, and the image ``queued`` again if this upload still held it."""
        try:
            await asyncio.to_thread(data.discard)
            async with self.db.write() as conn:
                if await db.drop_pending_location(conn, location_id):
                    await db.update_image(conn, image_id, {"status": "queued", "updated_at": utcnow()},
                                          expect_status="saving")
        except Exception:
            LOG.exception("could not clean up the failed upload of image %s", image_id)

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
            await asyncio.to_thread(remove_data, _path_of(upload["url"]))
            async with self.db.write() as conn:
                if await db.drop_pending_location(conn, upload["id"]):
                    await db.update_image(conn, upload["image_id"], {"status": "queued", "updated_at": utcnow()},
                                          expect_status="saving")
        return len(stale)

    async def open_data(self, caller: Caller, image_id: str) -> ImageData | None:
        """The image's data, opened; None if it has none (Glance answers 204 then)."""
        async with self.db.read() as conn:
            row = await self._visible_row(conn, caller, image_id)
            if row["status"] == "deactivated" and not caller.is_admin:
                raise ImageForbidden("The requested image has been deactivated. Image data download is forbidden.")
            url = await db.location_of(conn, image_id) if row["status"] in ("active", "deactivated") else None
            view = (await self._views(conn, [row]))[0]
        if url is None:
            return None
        try:
            handle = await asyncio.to_thread(open, _path_of(url), "rb")
        except FileNotFoundError:
            LOG.error("data of image %s is missing at %s", image_id, url)
            return None
        return ImageData(view, handle)


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
        if len(found) == 1:
            return found[0]
        if found:
            raise exception.ImageNotFound(f"More than one image is named {name_or_id}; use its ID.")
        raise exception.ImageNotFound(image_id=name_or_id)

    async def download(self, context: dict[str, Any], image_id: str) -> AsyncIterator[bytes]:
        data = await self.store.open_data(Caller.of(context), image_id)
        if data is None:
            raise ImageUnavailable(image_id=image_id)
        async for chunk in data.chunks():
            yield chunk


def client_for(conf: Any, store: ImageStore) -> ImageClient:
    """The image client of this process: Glance when ``[glance] api_servers`` is set, else the embedded store."""
    if conf.glance.api_servers:
        from stratus.image.glance import GlanceClient

        return GlanceClient(conf.glance.api_servers)
    return EmbeddedImageClient(store)
