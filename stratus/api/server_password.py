"""``/servers/{server_id}/os-server-password``, as Nova's: the password the guest posted to the metadata service
(``openstack/latest/password``, encrypted with the server's key pair by the guest), shown as it was posted.

GET answers ``{"password": ...}``, an empty string while the guest has posted none. DELETE (204) forgets it, so
the guest may post a new one; the guest's own password does not change. Policies
``os_compute_api:os-server-password:{show,clear}``.
"""

from __future__ import annotations

from starlette.responses import Response

from stratus.api.errors import Fault
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.api.servers import load_instance
from stratus.metadata import base, source


async def show(req: ApiRequest) -> Response:
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-server-password:show")
    return json_response({"password": base.extract_password(inst.get("system_metadata") or {}) or ""})


async def clear(req: ApiRequest) -> Response:
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:os-server-password:clear")
    async with req.services.db.write() as conn:
        if not await source.clear_password(conn, inst["uuid"]):
            raise Fault(404, f"Instance {server_id} could not be found.")
    return empty_response(204)


ROUTES: list[Route] = [
    Route("/servers/{server_id}/os-server-password", "GET", show),
    Route("/servers/{server_id}/os-server-password", "DELETE", clear),
]
