"""``/servers/{server_id}/migrations``: a server's live migrations in progress (list 2.23, show 2.23, abort
2.24, force_complete 2.22), as Nova's ``ServerMigrationsController``.

Only live migrations that are not over are listed or shown (Nova's "in progress": not confirmed, reverted,
error, failed, completed, cancelled or done). Abort stops a ``running`` one (from 2.65 a ``queued`` or
``preparing`` one too): the guest stays on its source. force_complete finishes a ``running`` one now. Both 202;
a migration in another status is Nova's 400. Policies: the project manager's or an admin's; the host fields
need ``:index:host`` / ``:show:host`` (admin), else they are null.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from stratus.api import validation
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, empty_response, json_response
from stratus.api.router import Route
from stratus.api.servers import load_instance
from stratus.compute.rpcapi import ComputeAPI
from stratus.db import actions
from stratus.db import migration_records as records
from stratus.identity.policy import check
from stratus.objects import states
from stratus.objects.states import task_states
from stratus.utils import isotime_usec

_V259 = APIVersion.parse("2.59")  # uuid
_V265 = APIVersion.parse("2.65")  # abort of queued and preparing live migrations
_V280 = APIVersion.parse("2.80")  # user_id, project_id
_RULE = "os_compute_api:servers:migrations:"
_HOST_FIELDS = ("dest_compute", "dest_host", "dest_node", "source_compute", "source_node")
_FORCE_SCHEMA = {"type": "object", "properties": {"force_complete": {"type": "null"}},
                 "required": ["force_complete"], "additionalProperties": False}


def _view(req: ApiRequest, row: dict[str, Any], add_host: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row["id"], "server_uuid": row["instance_uuid"], "status": row["status"],
        "source_compute": row["source_compute"], "source_node": row["source_node"],
        "dest_compute": row["dest_compute"], "dest_node": row["dest_node"], "dest_host": row["dest_host"],
        "memory_total_bytes": row["memory_total"], "memory_processed_bytes": row["memory_processed"],
        "memory_remaining_bytes": row["memory_remaining"], "disk_total_bytes": row["disk_total"],
        "disk_processed_bytes": row["disk_processed"], "disk_remaining_bytes": row["disk_remaining"],
        "created_at": isotime_usec(row["created_at"]), "updated_at": isotime_usec(row["updated_at"]),
    }
    if not add_host:
        out.update(dict.fromkeys(_HOST_FIELDS))
    if req.at_least(_V259):
        out["uuid"] = row["uuid"]
    if req.at_least(_V280):
        out["user_id"], out["project_id"] = row["user_id"], row["project_id"]
    return out


def _in_progress(row: dict[str, Any]) -> bool:
    return row["migration_type"] == records.LIVE_MIGRATION and row["status"] not in records.DONE


async def index(req: ApiRequest) -> Response:
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, _RULE + "index")
    add_host = check(req.context, _RULE + "index:host", {"project_id": inst["project_id"]})
    async with req.services.db.read() as conn:
        rows = await records.in_progress_for_instance(conn, inst["uuid"])
    return json_response({"migrations": [_view(req, r, add_host) for r in rows if _in_progress(r)]})


async def _migration(req: ApiRequest, inst: dict[str, Any], raw_id: str) -> dict[str, Any]:
    """The server's migration by id, or Nova's 404."""
    migration_id = int(raw_id) if raw_id.isdigit() else -1
    async with req.services.db.read() as conn:
        row = await records.get(conn, migration_id) if migration_id >= 0 else None
    if row is None or row["instance_uuid"] != inst["uuid"]:
        raise Fault(404, f"Instance {inst['uuid']} has no migration {raw_id}.")
    return row


async def show(req: ApiRequest) -> Response:
    server_id, raw_id = req.path["server_id"], req.path["migration_id"]
    inst = await load_instance(req, server_id, _RULE + "show")
    row = await _migration(req, inst, raw_id)
    if row["migration_type"] != records.LIVE_MIGRATION:
        raise Fault(404, f"Migration {raw_id} for server {server_id} is not live-migration.")
    if row["status"] in records.DONE:
        raise Fault(404, f"Live migration {raw_id} for server {server_id} is not in progress.")
    add_host = check(req.context, _RULE + "show:host", {"project_id": inst["project_id"]})
    return json_response({"migration": _view(req, row, add_host)})


def _invalid(row: dict[str, Any], inst: dict[str, Any], method: str) -> Fault:
    return Fault(400, f"Migration {row['id']} state of instance {inst['uuid']} is {row['status']}. Cannot {method} "
                      f"while the migration is in this state.")


def _check_migrating(inst: dict[str, Any], action: str, server_id: str, vm_states: tuple[str, ...] | None = None
                     ) -> None:
    """Nova's ``check_instance_state(task_state=[MIGRATING])`` of the abort and force-complete."""
    if vm_states is not None and inst["vm_state"] not in vm_states:
        raise Fault(409, f"Cannot '{action}' instance {server_id} while it is in vm_state {inst['vm_state']}")
    if inst["task_state"] != task_states.MIGRATING:
        raise Fault(409, f"Cannot '{action}' instance {server_id} while it is in task_state {inst['task_state']}")


async def delete(req: ApiRequest) -> Response:
    """Abort a live migration: 202; its source stops it and rolls back."""
    server_id, raw_id = req.path["server_id"], req.path["migration_id"]
    inst = await load_instance(req, server_id, _RULE + "delete")
    _check_migrating(inst, "abort live migration", server_id)
    row = await _migration(req, inst, raw_id)
    allowed = ("queued", "preparing", "running") if req.at_least(_V265) else ("running",)
    if row["migration_type"] != records.LIVE_MIGRATION or row["status"] not in allowed:
        raise _invalid(row, inst, "abort live migration")
    async with req.services.db.write() as conn:
        await actions.action_start(conn, req.context.to_dict(), [inst["uuid"]], "live_migration_abort")
    await ComputeAPI(req.services.transport).live_migration_abort(req.context.to_dict(), row["source_compute"],
                                                                  inst["uuid"], row["id"])
    return empty_response(202)


async def action(req: ApiRequest) -> Response:
    """``{"force_complete": null}``: 202; the source finishes the copy now."""
    body = await req.json()
    validation.validate(_FORCE_SCHEMA, body)
    server_id, raw_id = req.path["server_id"], req.path["migration_id"]
    inst = await load_instance(req, server_id, _RULE + "force_complete")
    _check_migrating(inst, "force_complete", server_id, (states.ACTIVE,))
    row = await _migration(req, inst, raw_id)
    if row["migration_type"] != records.LIVE_MIGRATION or row["status"] != "running":
        raise _invalid(row, inst, "force complete")
    async with req.services.db.write() as conn:
        await actions.action_start(conn, req.context.to_dict(), [inst["uuid"]], "live_migration_force_complete")
    await ComputeAPI(req.services.transport).live_migration_force_complete(req.context.to_dict(),
                                                                           row["source_compute"], row["id"])
    return empty_response(202)


ROUTES: list[Route] = [
    Route("/servers/{server_id}/migrations", "GET", index, min_version="2.23"),
    Route("/servers/{server_id}/migrations/{migration_id}", "GET", show, min_version="2.23"),
    Route("/servers/{server_id}/migrations/{migration_id}", "DELETE", delete, min_version="2.24"),
    Route("/servers/{server_id}/migrations/{migration_id}/action", "POST", action, min_version="2.22"),
]
