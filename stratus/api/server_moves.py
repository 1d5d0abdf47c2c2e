"""Server actions that move a server between hosts: ``resize``, ``confirmResize``, ``revertResize`` and
``migrate`` (cold migration, with the destination ``host`` from 2.56), as Nova's.

A resize or migration is scheduled before the answer (Nova's conductor call): 202 once a destination holds a
claim for the server, 400 when none can; the server is then RESIZE and, once on its destination,
VERIFY_RESIZE until confirmed (204) or reverted (202). The flows are docs/server-moves.md.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from starlette.responses import Response

from stratus import exception
from stratus.api import validation
from stratus.api.common import ActionHandler
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.server_state import conflict
from stratus.api.servers import load_instance
from stratus.compute import api as compute_api
from stratus.compute import move_api
from stratus.db import flavors, quotas
from stratus.db import hosts as hosts_db
from stratus.identity import policy

_V256 = APIVersion.parse("2.56")  # migrate takes a destination host

_RESIZE_SCHEMA = {
    "type": "object",
    "properties": {"resize": {
        "type": "object",
        "properties": {"flavorRef": {"type": ["string", "integer"], "minLength": 1},
                       "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]}},
        "required": ["flavorRef"], "additionalProperties": False}},
    "required": ["resize"], "additionalProperties": False,
}
_MIGRATE_SCHEMA_V256 = {
    "type": "object",
    "properties": {"migrate": {
        "type": ["object", "null"],
        "properties": {"host": {"type": ["string", "null"], "minLength": 1, "maxLength": 255,
                                "pattern": "^[a-zA-Z0-9-._]*$"}},
        "additionalProperties": False}},
    "required": ["migrate"], "additionalProperties": False,
}
#: the flavor fields an instance keeps (as a boot writes them)
_FLAVOR_FIELDS = ("id", "flavorid", "name", "memory_mb", "vcpus", "root_gb", "ephemeral_gb", "swap",
                  "rxtx_factor", "extra_specs")


async def _new_flavor(req: ApiRequest, inst: dict[str, Any], flavor_ref: Any) -> dict[str, Any]:
    """The flavor a resize asks for, checked as Nova's ``resize`` does (400s), and the upsize within quota."""
    ctx = req.context
    async with req.services.db.read() as conn:
        flavor = await flavors.get(conn, str(flavor_ref).rsplit("/", 1)[-1], project_id=ctx.project_id,
                                   is_admin=ctx.is_admin)
    if flavor is None or flavor.get("disabled"):
        raise Fault(400, "Unable to locate requested flavor.")
    current = inst["flavor"] or {}
    if flavor["root_gb"] == 0 and int(current.get("root_gb") or 0) != 0:
        raise Fault(400, "Server disk was unable to be resized because: Resize to zero disk flavor is not "
                         "allowed.")
    if str(flavor["flavorid"]) == str(current.get("flavorid")):
        raise Fault(400, "Resize requires a flavor change.")
    deltas = {"cores": flavor["vcpus"] - int(current.get("vcpus") or 0),
              "ram": flavor["memory_mb"] - int(current.get("memory_mb") or 0)}
    deltas = {k: v for k, v in deltas.items() if v > 0}
    if deltas:
        async with req.services.db.write() as conn:
            await quotas.lock_project(conn, inst["project_id"])
            try:
                await quotas.check_deltas(conn, req.services.conf, inst["project_id"], inst["user_id"], deltas)
            except quotas.OverQuota as exc:
                overs = exc.overs
                raise Fault(403, f"Quota exceeded for {', '.join(overs)}: Requested "
                                 f"{', '.join(str(deltas[r]) for r in overs)}, but already used "
                                 f"{', '.join(str(exc.usages.get(r, 0)) for r in overs)} of "
                                 f"{', '.join(str(exc.quotas[r]) for r in overs)} {', '.join(overs)}") from None
    return {k: flavor[k] for k in _FLAVOR_FIELDS}


async def _start_move(req: ApiRequest, inst: dict[str, Any], action: str, flavor: dict[str, Any] | None,
                      host: str | None, auto_disk_config: bool | None = None) -> Response:
    server_id = req.path["server_id"]
    try:
        await move_api.migrate(req.services.db, req.services.transport, req.context.to_dict(), inst["uuid"],
                               flavor, host, is_admin=req.context.is_admin, auto_disk_config=auto_disk_config)
    except compute_api.InstanceInvalidState as exc:
        raise conflict(exc, action, server_id) from None
    except (compute_api.InstanceNotReady, compute_api.InstanceIsLocked) as exc:
        raise Fault(409, exc.message) from None
    except exception.NoValidHost as exc:
        raise Fault(400, exc.message) from None
    return empty_response(202)


async def _resize(req: ApiRequest, body: dict[str, Any]) -> Response:
    validation.validate(_RESIZE_SCHEMA, body)
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:servers:resize")
    flavor = await _new_flavor(req, inst, body["resize"]["flavorRef"])
    disk_config = body["resize"].get("OS-DCF:diskConfig")
    return await _start_move(req, inst, "resize", flavor, None,
                             None if disk_config is None else disk_config == "AUTO")


async def _migrate(req: ApiRequest, body: dict[str, Any]) -> Response:
    v256 = req.at_least(_V256)
    host = None
    if v256:  # before 2.56 Nova reads nothing from the body (and validates nothing)
        validation.validate(_MIGRATE_SCHEMA_V256, body)
        host = (body["migrate"] or {}).get("host")
    inst = await load_instance(req, req.path["server_id"], "os_compute_api:os-migrate-server:migrate")
    if host:
        policy.authorize(req.context, "os_compute_api:os-migrate-server:migrate:host",
                         {"project_id": inst["project_id"]})
        async with req.services.db.read() as conn:
            service = await hosts_db.get_service(conn, host=host, binary="nova-compute")
        if service is None:
            raise Fault(400, f"Compute host {host} could not be found.")
        if host == inst["host"]:
            raise Fault(400, "Cannot migrate to the host where the server exists.")
    return await _start_move(req, inst, "migrate", None, host)


async def _finish(req: ApiRequest, rule: str, action: str, confirm: bool) -> None:
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, rule)
    call = move_api.confirm if confirm else move_api.revert
    try:
        await call(req.services.db, req.services.transport, req.context.to_dict(), inst["uuid"],
                   is_admin=req.context.is_admin)
    except compute_api.InstanceInvalidState as exc:
        raise conflict(exc, action, server_id) from None
    except compute_api.InstanceIsLocked as exc:
        raise Fault(409, exc.message) from None
    except move_api.MigrationNotFoundByStatus as exc:
        raise Fault(400, exc.message) from None


async def _confirm_resize(req: ApiRequest, body: dict[str, Any]) -> Response:
    await _finish(req, "os_compute_api:servers:confirm_resize", "confirmResize", confirm=True)
    return empty_response(204)


async def _revert_resize(req: ApiRequest, body: dict[str, Any]) -> Response:
    await _finish(req, "os_compute_api:servers:revert_resize", "revertResize", confirm=False)
    return empty_response(202)


ACTIONS: dict[str, ActionHandler] = {
    "resize": _resize,
    "confirmResize": _confirm_resize,
    "revertResize": _revert_resize,
    "migrate": _migrate,
}


_V225 = APIVersion.parse("2.25")  # block_migration "auto"; disk_over_commit gone
_V230 = APIVersion.parse("2.30")  # force
_V234 = APIVersion.parse("2.34")  # the pre-checks run after the answer
_V268 = APIVersion.parse("2.68")  # force gone
_BOOLEAN = {"type": ["boolean", "string"],
            "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
                     False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]}
_HOST = {"type": ["string", "null"], "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9-._]*$"}


def _live_schema(req: ApiRequest) -> dict[str, Any]:
    """Nova's ``migrate_live`` schemas: 2.1 (block_migration, disk_over_commit, host, all required), 2.25
    (block_migration may be "auto", no disk_over_commit), 2.30 (force), 2.68 (no force)."""
    if req.at_least(_V225):
        props: dict[str, Any] = {"block_migration": {"oneOf": [_BOOLEAN, {"enum": ["auto"]}]}, "host": _HOST}
        required = ["block_migration", "host"]
        if req.at_least(_V230) and not req.at_least(_V268):
            props["force"] = _BOOLEAN
    else:
        props = {"block_migration": _BOOLEAN, "disk_over_commit": _BOOLEAN, "host": _HOST}
        required = ["block_migration", "disk_over_commit", "host"]
    return {"type": "object",
            "properties": {"os-migrateLive": {"type": "object", "properties": props, "required": required,
                                              "additionalProperties": False}},
            "required": ["os-migrateLive"], "additionalProperties": False}


def _true(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "on", "yes")


async def _live_migrate(req: ApiRequest, body: dict[str, Any]) -> Response:
    """os-migrateLive: 202; before 2.34 after the destination's checks (their errors are 400s)."""
    validation.validate(_live_schema(req), body)
    args = body["os-migrateLive"]
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:os-migrate-server:migrate_live")
    host = args.get("host")
    if host:
        policy.authorize(req.context, "os_compute_api:os-migrate-server:migrate_live:host",
                         {"project_id": inst["project_id"]})
        async with req.services.db.read() as conn:
            if await hosts_db.get_service(conn, host=host, binary="nova-compute") is None:
                raise Fault(400, f"Compute host {host} could not be found.")
    raw = args["block_migration"]
    block_migration = None if raw == "auto" else _true(raw)
    # disk_over_commit (before 2.25) is accepted and ignored, as Nova's libvirt driver ignores it
    try:
        await move_api.live_migrate(req.services.db, req.services.transport, req.context.to_dict(), inst["uuid"],
                                    host, block_migration, _true(args.get("force", False)),
                                    wait=not req.at_least(_V234), is_admin=req.context.is_admin)
    except compute_api.InstanceInvalidState as exc:
        raise conflict(exc, "os-migrateLive", server_id) from None
    except (compute_api.InstanceNotReady, compute_api.InstanceIsLocked) as exc:
        raise Fault(409, exc.message) from None
    except (exception.NoValidHost, exception.MigrationPreCheckError, exception.UnableToMigrateToSelf,
            exception.ComputeHostNotFound) as exc:
        raise Fault(400, exc.message) from None
    return empty_response(202)


ACTIONS["os-migrateLive"] = _live_migrate


_V214 = APIVersion.parse("2.14")  # evacuate: no onSharedStorage, no adminPass in the answer
_V229 = APIVersion.parse("2.29")  # evacuate: force


def _evacuate_schema(req: ApiRequest) -> dict[str, Any]:
    """Nova's evacuate schemas: 2.1 (host, onSharedStorage required, adminPass), 2.14 (no onSharedStorage),
    2.29 (force), 2.68 (no force)."""
    props: dict[str, Any] = {"host": _HOST, "adminPass": {"type": "string"}}
    required: list[str] = []
    if not req.at_least(_V214):
        props["onSharedStorage"] = _BOOLEAN
        required = ["onSharedStorage"]
    if req.at_least(_V229) and not req.at_least(_V268):
        props["force"] = _BOOLEAN
    return {"type": "object",
            "properties": {"evacuate": {"type": "object", "properties": props, "required": required,
                                        "additionalProperties": False}},
            "required": ["evacuate"], "additionalProperties": False}


async def _evacuate(req: ApiRequest, body: dict[str, Any]) -> Response:
    """evacuate: 200; before 2.14 with the new ``adminPass`` (``[api] enable_instance_password``)."""
    validation.validate(_evacuate_schema(req), body)
    args = body["evacuate"]
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:os-evacuate")
    host = args.get("host")
    on_shared = _true(args["onSharedStorage"]) if "onSharedStorage" in args else None
    password = args.get("adminPass")
    if on_shared and password:
        raise Fault(400, "admin password can't be changed on existing disk")
    if not req.at_least(_V214) and not on_shared and not password:
        password = _new_password()
    if host:
        async with req.services.db.read() as conn:
            if await hosts_db.get_service(conn, host=host, binary="nova-compute") is None:
                raise Fault(404, f"Compute host {host} not found.")
        if host == inst["host"]:
            raise Fault(400, "The target host can't be the same one.")
    try:
        await move_api.evacuate(req.services.db, req.services.transport, req.services.conf, req.context.to_dict(),
                                inst["uuid"], host, _true(args.get("force", False)), password, on_shared,
                                is_admin=req.context.is_admin)
    except compute_api.InstanceInvalidState as exc:
        raise conflict(exc, "evacuate", server_id) from None
    except (compute_api.InstanceNotReady, compute_api.InstanceIsLocked) as exc:
        raise Fault(409, exc.message) from None
    except move_api.ComputeServiceInUse as exc:
        raise Fault(400, exc.message) from None
    if not req.at_least(_V214) and req.services.conf.api.enable_instance_password:
        return json_response({"adminPass": password})
    return empty_response(200)


def _new_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(12))


ACTIONS["evacuate"] = _evacuate
