"""The image metadata proxy: ``/images/{image_id}/metadata[/{key}]`` (2.1 to 2.38; 404 from 2.39, as Nova's).

An image's metadata is its own properties (``images.properties``), changed through the image service as Nova
changes them (``purge_props``: after a change the image has exactly the metadata the request leaves). The new
metadata counts against the project's ``metadata_items`` quota (403 ``Image metadata limit exceeded``), as
Nova's ``check_img_metadata_properties_quota``.
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.responses import Response

from stratus import exception
from stratus.api import images, validation
from stratus.api.errors import Fault
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.db import quotas

MAX_VERSION = "2.38"
CREATE_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"metadata": validation.metadata},
                                 "required": ["metadata"], "additionalProperties": False}
_SINGLE = {**copy.deepcopy(validation.metadata), "minProperties": 1, "maxProperties": 1}
UPDATE_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"meta": _SINGLE}, "required": ["meta"],
                                 "additionalProperties": False}


async def _check_quota(req: ApiRequest, metadata: dict[str, Any]) -> None:
    if not metadata:
        return
    ctx = req.context
    try:
        async with req.services.db.read() as conn:
            await quotas.limit_check(conn, req.services.conf, ctx.project_id, ctx.user_id,
                                     {"metadata_items": len(metadata)})
    except quotas.OverQuota:
        raise Fault(403, "Image metadata limit exceeded") from None


async def _save(req: ApiRequest, image: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """Make ``metadata`` the image's properties; the image as the service then shows it."""
    current = images.properties(image)
    changed = {k: v for k, v in metadata.items() if current.get(k) != v}
    try:
        return await images.service(req).patch(req.context.to_dict(), image["id"], changed,
                                               [k for k in current if k not in metadata])
    except exception.ImageNotFound:
        raise Fault(404, "Image not found.") from None


async def index(req: ApiRequest) -> Response:
    image = await images.get_image(req, req.path["image_id"])
    return json_response({"metadata": images.properties(image)})


async def show(req: ApiRequest) -> Response:
    metadata = images.properties(await images.get_image(req, req.path["image_id"]))
    key = req.path["key"]
    if key not in metadata:
        raise Fault(404, "The resource could not be found.")
    return json_response({"meta": {key: metadata[key]}})


async def create(req: ApiRequest) -> Response:
    """Merge the given items into the image's metadata."""
    body = await req.json()
    validation.validate(CREATE_SCHEMA, body)
    image = await images.get_image(req, req.path["image_id"])
    metadata = {**images.properties(image), **body["metadata"]}
    await _check_quota(req, metadata)
    saved = await _save(req, image, metadata)
    return json_response({"metadata": images.properties(saved)})


async def update(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(UPDATE_SCHEMA, body)
    key = req.path["key"]
    meta = body["meta"]
    if key not in meta:
        raise Fault(400, "Request body and URI mismatch")
    image = await images.get_image(req, req.path["image_id"])
    metadata = {**images.properties(image), key: meta[key]}
    await _check_quota(req, metadata)
    await _save(req, image, metadata)
    return json_response({"meta": meta})


async def update_all(req: ApiRequest) -> Response:
    """Replace the image's metadata with the given items."""
    body = await req.json()
    validation.validate(CREATE_SCHEMA, body)
    image = await images.get_image(req, req.path["image_id"])
    metadata = body["metadata"]
    await _check_quota(req, metadata)
    await _save(req, image, metadata)
    return json_response({"metadata": metadata})


async def delete(req: ApiRequest) -> Response:
    image = await images.get_image(req, req.path["image_id"])
    metadata = images.properties(image)
    key = req.path["key"]
    if key not in metadata:
        raise Fault(404, "Invalid metadata key")
    metadata.pop(key)
    await _save(req, image, metadata)
    return empty_response(204)


ROUTES: list[Route] = [
    Route("/images/{image_id}/metadata", "GET", index, max_version=MAX_VERSION),
    Route("/images/{image_id}/metadata", "POST", create, max_version=MAX_VERSION),
    Route("/images/{image_id}/metadata", "PUT", update_all, max_version=MAX_VERSION),
    Route("/images/{image_id}/metadata/{key}", "GET", show, max_version=MAX_VERSION),
    Route("/images/{image_id}/metadata/{key}", "PUT", update, max_version=MAX_VERSION),
    Route("/images/{image_id}/metadata/{key}", "DELETE", delete, max_version=MAX_VERSION),
]
