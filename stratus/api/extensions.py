"""``GET /extensions`` and ``GET /extensions/{alias}``: Nova's fixed list of extension descriptors.

Since v2.1 the API has no extensions to load or leave out: the list is a document clients still read (the
``Hosts`` entry, say, to decide whether to offer ``os-hosts``), and Nova returns the same one everywhere, so
does Stratus (``extension_list``). ``os_compute_api:extensions`` (anyone) applies to both.
"""

from __future__ import annotations

from starlette.responses import Response

from stratus.api.errors import Fault
from stratus.api.extension_list import EXTENSIONS
from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.identity.policy import authorize

_RULE = "os_compute_api:extensions"


async def index(req: ApiRequest) -> Response:
    authorize(req.context, _RULE, {})
    return json_response({"extensions": EXTENSIONS})


async def show(req: ApiRequest) -> Response:
    authorize(req.context, _RULE, {})
    alias = req.path["alias"]
    for extension in EXTENSIONS:
        if extension["alias"] == alias:
            return json_response({"extension": extension})
    raise Fault(404, "The resource could not be found.")


ROUTES: list[Route] = [
    Route("/extensions", "GET", index),
    Route("/extensions/{alias}", "GET", show),
]
