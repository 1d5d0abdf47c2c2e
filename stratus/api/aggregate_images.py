"""``POST /os-aggregates/{aggregate_id}/images`` (2.81): the compute hosts of an aggregate cache images ahead of
the boots that will need them, as Nova's image pre-cache.

``{"cache": [{"id": IMAGE}, ...]}``: each image must exist (400 otherwise, before any host is asked) and be
named once (400 ``Duplicate images in request``). The answer is 202 with no body; the conductor then asks
the aggregate's hosts, ``[image_cache] precache_concurrency`` at a time, and each host's driver fetches the
images into its image cache (a host that is down is skipped). Admin only (``compute:aggregates:images``).
"""

from __future__ import annotations

from starlette.responses import Response

from stratus import exception
from stratus.api import validation
from stratus.api.aggregates import load, path_id
from stratus.api.errors import Fault
from stratus.api.request import ApiRequest, empty_response
from stratus.api.router import Route
from stratus.conductor.rpcapi import ConductorAPI
from stratus.identity.policy import authorize

#: Nova's aggregate_images_v2_81
CACHE_SCHEMA = {
    "type": "object",
    "properties": {"cache": {
        "type": ["array"], "minItems": 1,
        "items": {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}},
                  "additionalProperties": False, "required": ["id"]}}},
    "required": ["cache"], "additionalProperties": False,
}


async def cache_images(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(CACHE_SCHEMA, body)
    authorize(req.context, "compute:aggregates:images", {})
    raw, agg_id = path_id(req)
    image_ids = [item["id"] for item in body["cache"]]
    if len(set(image_ids)) != len(image_ids):
        raise Fault(400, "Duplicate images in request")
    async with req.services.db.read() as conn:
        agg = await load(conn, raw, agg_id)
    if req.services.images is None:
        raise Fault(400, "No image service")
    for image_id in image_ids:  # every image checked before a host is asked to fetch one
        try:
            await req.services.images.show(req.context.to_dict(), image_id)
        except exception.ImageNotFound:
            raise Fault(400, f"Image {image_id} could not be found.") from None
    await ConductorAPI(req.services.transport).cache_images(req.context.to_dict(), list(agg["hosts"]), image_ids)
    return empty_response(202)


ROUTES: list[Route] = [Route("/os-aggregates/{aggregate_id}/images", "POST", cache_images, min_version="2.81")]
