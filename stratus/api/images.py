"""The image proxy: ``/images``, ``/images/detail``, ``/images/{image_id}`` (2.1 to 2.35; 404 from 2.36, as Nova's).

Nova's v2.0-era view of the image service's images, read through ``stratus.image.client`` from whichever image
service serves this cloud (the embedded store or a Glance), as Nova reads Glance v2:

- filters ``name``, ``status`` (lowered), ``changes-since`` (Glance's ``updated_at=gte:``), ``server``
  (``instance_uuid``), ``type`` (``image_type``), ``minRam``/``minDisk`` (``min_ram``/``min_disk``) and
  ``property-<name>``; ``limit`` and ``marker`` page (without ``limit`` every page is read), with an
  ``images_links`` next link when a page is full;
- an image body has ``minRam``, ``minDisk``, ``metadata`` (the image's own properties, not Glance's base
  attributes), ``status`` in Nova's words (``SAVING``, ``ACTIVE``...), ``progress``, ``OS-EXT-IMG-SIZE:size``,
  ``server`` for a snapshot, ``OS-DCF:diskConfig`` from ``auto_disk_config``, and self, bookmark and alternate
  (the image service's URL) links.

``image_metadata`` is the metadata proxy of the same images.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus import exception
from stratus.api.common import collection_links, query_int
from stratus.api.errors import Fault
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.image.client import ImageClient
from stratus.image.model import IMAGE_SCHEMA
from stratus.utils import isotime, parse_isotime

MAX_PROXY_VERSION = "2.35"
#: Glance's base image attributes: everything else an image shows is one of its properties (Nova's metadata)
BASE_ATTRIBUTES = frozenset({*IMAGE_SCHEMA["properties"], "direct_url", "locations", "stores"})
_FILTERS = {"name": "name", "status": "status", "server": "instance_uuid", "type": "image_type",
            "minRam": "min_ram", "minDisk": "min_disk"}
_STATUS = {"active": "ACTIVE", "queued": "SAVING", "saving": "SAVING", "deleted": "DELETED",
           "pending_delete": "DELETED", "killed": "ERROR"}
_PROGRESS = {"queued": 25, "saving": 50, "active": 100}
_PAGE = 100  # the page size read from the image service when the request gives no limit


def service(req: ApiRequest) -> ImageClient:
    if req.services.images is None:
        raise Fault(404, "Image not found.")
    return req.services.images


def properties(image: dict[str, Any]) -> dict[str, Any]:
    """The image's own properties (Nova's ``image['properties']``)."""
    return {k: v for k, v in image.items() if k not in BASE_ATTRIBUTES}


async def get_image(req: ApiRequest, image_id: str) -> dict[str, Any]:
    try:
        return await service(req).show(req.context.to_dict(), image_id)
    except exception.ImageNotFound:
        raise Fault(404, "Image not found.") from None


def image_endpoint(req: ApiRequest) -> str:
    """Nova's ``generate_glance_url``: the first Glance, or the embedded image service."""
    conf = req.services.conf
    if conf.glance.api_servers:
        return str(conf.glance.api_servers[0]).rstrip("/")
    return f"http://{conf.image_store.listen}:{conf.image_store.listen_port}"


def _links(req: ApiRequest, image_id: str) -> list[dict[str, str]]:
    self_prefix, bookmark_prefix = req.link_prefix()
    return [{"rel": "self", "href": f"{self_prefix}/images/{image_id}"},
            {"rel": "bookmark", "href": f"{bookmark_prefix}/images/{image_id}"},
            {"rel": "alternate", "type": "application/vnd.openstack.image",
             "href": f"{image_endpoint(req)}/images/{image_id}"}]


def _time(value: Any) -> str | None:
    return isotime(parse_isotime(value)) if isinstance(value, str) and value else None


def basic_view(req: ApiRequest, image: dict[str, Any]) -> dict[str, Any]:
    return {"id": image["id"], "name": image.get("name"), "links": _links(req, image["id"])}


def show_view(req: ApiRequest, image: dict[str, Any]) -> dict[str, Any]:
    metadata = properties(image)
    body: dict[str, Any] = {
        "id": image["id"], "name": image.get("name"), "minRam": int(image.get("min_ram") or 0),
        "minDisk": int(image.get("min_disk") or 0), "metadata": metadata,
        "created": _time(image.get("created_at")), "updated": _time(image.get("updated_at")),
        "status": _STATUS.get(image.get("status") or "", "UNKNOWN"),
        "progress": _PROGRESS.get(image.get("status") or "", 0),
        "OS-EXT-IMG-SIZE:size": image.get("size") or 0, "links": _links(req, image["id"]),
    }
    instance_uuid = metadata.get("instance_uuid")
    if instance_uuid is not None:
        self_prefix, bookmark_prefix = req.link_prefix()
        body["server"] = {"id": instance_uuid, "links": [
            {"rel": "self", "href": f"{self_prefix}/servers/{instance_uuid}"},
            {"rel": "bookmark", "href": f"{bookmark_prefix}/servers/{instance_uuid}"}]}
    auto = metadata.get("auto_disk_config")
    if auto is not None:
        body["OS-DCF:diskConfig"] = "AUTO" if str(auto).strip().lower() in ("1", "t", "true", "on", "y", "yes") \
            else "MANUAL"
    return body


def _glance_query(req: ApiRequest) -> dict[str, str]:
    """Nova's ``_get_filters`` and its translation to a Glance v2 query."""
    q = req.query
    params: dict[str, str] = {}
    for key in q.keys():
        value = q[key]
        if key in _FILTERS:
            params[_FILTERS[key]] = value
        elif key.startswith("property-"):
            params[key.removeprefix("property-")] = value
        elif key == "changes-since":
            params["updated_at"] = f"gte:{value}"
    if "instance_uuid" in params:
        params["instance_uuid"] = params["instance_uuid"].rsplit("/", 1)[-1]
    if "status" in params:
        params["status"] = params["status"].lower()
    if "marker" in q:
        params["marker"] = q["marker"]
    return params


async def _list(req: ApiRequest) -> tuple[list[dict[str, Any]], int]:
    """The images of the query (every page when no ``limit``), and the page size for the next link."""
    max_limit = int(req.services.conf.api.max_limit)
    limit = query_int(req, "limit")
    params = _glance_query(req)
    ctx = req.context.to_dict()
    images = service(req)
    if limit is not None:
        found = await images.list(ctx, {**params, "limit": str(min(limit, max_limit) or max_limit)})
        return found, min(limit, max_limit) or max_limit
    out: list[dict[str, Any]] = []
    while True:
        page = await images.list(ctx, {**params, "limit": str(_PAGE)})
        out += page
        if len(page) < _PAGE:
            return out, max_limit
        params["marker"] = page[-1]["id"]


async def index(req: ApiRequest) -> Response:
    found, limit = await _list(req)
    items = [basic_view(req, image) for image in found]
    body: dict[str, Any] = {"images": items}
    if links := collection_links(req, "images", items, limit, "id"):
        body["images_links"] = links
    return json_response(body)


async def detail(req: ApiRequest) -> Response:
    found, limit = await _list(req)
    items = [show_view(req, image) for image in found]
    body: dict[str, Any] = {"images": items}
    if links := collection_links(req, "images/detail", items, limit, "id"):
        body["images_links"] = links
    return json_response(body)


async def show(req: ApiRequest) -> Response:
    return json_response({"image": show_view(req, await get_image(req, req.path["image_id"]))})


async def delete(req: ApiRequest) -> Response:
    image_id = req.path["image_id"]
    await get_image(req, image_id)
    try:
        await service(req).delete(req.context.to_dict(), image_id)
    except exception.StratusException as exc:
        if exc.code == 403:
            raise Fault(403, "You are not allowed to delete the image.") from None
        raise
    return empty_response(204)


ROUTES: list[Route] = [
    Route("/images", "GET", index, max_version=MAX_PROXY_VERSION),
    Route("/images/detail", "GET", detail, max_version=MAX_PROXY_VERSION),
    Route("/images/{image_id}", "GET", show, max_version=MAX_PROXY_VERSION),
    Route("/images/{image_id}", "DELETE", delete, max_version=MAX_PROXY_VERSION),
]
