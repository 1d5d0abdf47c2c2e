"""Glance v2's image model: fields and their formats, the JSON schema, who may set what, the view of an
image, and JSON-patch updates. Shared by the store (``embedded.py``) and the HTTP API (``api.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jsonschema

from stratus import exception
from stratus.utils import isotime

IMAGE_SIZE_CAP = 1 << 40  # Glance's default image_size_cap: 1 TiB
PROPERTY_QUOTA = 128  # Glance's image_property_quota
TAG_QUOTA = 128  # Glance's image_tag_quota

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
RESERVED = frozenset({"location", "locations", "deleted", "deleted_at", "stores", "direct_url"})


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


def not_found(image_id: str) -> exception.ImageNotFound:
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


def validate(doc: Mapping[str, Any]) -> None:
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(doc))
    if error is not None:
        raise ImageBadRequest(f"Provided object does not match schema 'image': {error.message}")
    for name, value in doc.items():
        if len(name) > 255:
            raise ImageBadRequest(f"Property name is longer than 255 characters: {name[:32]}...")
        if "\x00" in name or any("\x00" in v for v in (value if isinstance(value, list) else [value])
                                 if isinstance(v, str)):
            raise ImageBadRequest(f"Property {name!r} contains a NUL character.")  # PostgreSQL refuses them


def check_writable(name: str) -> None:
    if name in READ_ONLY:
        raise ImageForbidden(f"Attribute '{name}' is read-only.")
    if name in RESERVED or name.startswith("os_glance"):
        raise ImageForbidden(f"Attribute '{name}' is reserved.")


def check_policy(caller: Caller, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> None:
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


def editable(row: Mapping[str, Any], properties: Mapping[str, str], tags: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = dict(properties)
    doc.update({k: (bool(row[k]) if k in ("protected", "os_hidden") else row[k]) for k in WRITABLE})
    doc["tags"] = list(tags)
    return doc


def split(doc: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
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
        check_writable(name)
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
