"""``GET /servers/{server_id}/diagnostics`` (admin), as Nova's: the driver's view of the guest, a call to its
host. From 2.48 the standard form (state, driver, hypervisor, uptime, CPUs, NICs, disks, memory); before, the
driver's own flat dictionary. No host: 409; a driver without diagnostics: 501.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus import exception
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.api.servers import load_instance
from stratus.compute.rpcapi import ComputeAPI, NotSupportedByDriver

_V248 = APIVersion.parse("2.48")  # the standard diagnostics form


def _legacy(diag: dict[str, Any]) -> dict[str, Any]:
    """Nova's pre-2.48 flat form, built from the standard one as its libvirt driver names the keys."""
    out: dict[str, Any] = {}
    for cpu in diag.get("cpu_details") or []:
        out[f"cpu{cpu['id']}_time"] = cpu["time"]
    for index, disk in enumerate(diag.get("disk_details") or []):
        name = f"vd{chr(ord('a') + index)}"
        out.update({f"{name}_read": disk["read_bytes"], f"{name}_read_req": disk["read_requests"],
                    f"{name}_write": disk["write_bytes"], f"{name}_write_req": disk["write_requests"],
                    f"{name}_errors": disk["errors_count"]})
    memory = diag.get("memory_details") or {}
    out["memory"] = (memory.get("maximum") or 0) * 1024
    return out


async def show(req: ApiRequest) -> Response:
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:os-server-diagnostics")
    if not inst["host"]:
        raise Fault(409, f"Instance {inst['uuid']} is not ready")
    try:
        diag = await ComputeAPI(req.services.transport).get_instance_diagnostics(
            req.context.to_dict(), inst["host"], inst["uuid"])
    except exception.InstanceNotFound as exc:
        raise Fault(404, exc.message) from None
    except NotSupportedByDriver as exc:
        raise Fault(501, exc.message) from None
    return json_response(diag if req.at_least(_V248) else _legacy(diag))


ROUTES: list[Route] = [Route("/servers/{server_id}/diagnostics", "GET", show)]
