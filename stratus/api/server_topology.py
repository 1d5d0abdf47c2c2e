"""``GET /servers/{server_id}/topology`` (2.78): the server's NUMA topology, as Nova's server_topology API.

A server has a NUMA topology only when its flavor or image asks for one (``hw:numa_nodes``, CPU pinning, huge
pages) and the driver builds it. No driver here places guests on host NUMA cells, so every server answers Nova's
body for an instance without one: no nodes and no page size. ``compute:server:topology:index`` lets the caller
see it; ``compute:server:topology:host:index`` would add the host cells and pinning, which there are none of.
"""

from __future__ import annotations

from starlette.responses import Response

from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.api.servers import load_instance


async def index(req: ApiRequest) -> Response:
    await load_instance(req, req.path["server_id"], "compute:server:topology:index")
    return json_response({"nodes": [], "pagesize_kb": None})


ROUTES: list[Route] = [
    Route("/servers/{server_id}/topology", "GET", index, min_version="2.78"),
]
