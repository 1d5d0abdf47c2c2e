"""The request side of resize, cold migration, confirm and revert (Nova's ``compute/api.py``): the state checks,
the compare-and-swaps that claim the instance and its migration, the instance action, the call or cast.

The REST handlers and the compute hosts' auto-confirm (``[DEFAULT] resize_confirm_window``) both go through
here, so a confirm the periodic task makes is checked and recorded as a user's is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from stratus import exception
from stratus.compute.api import InstanceInvalidState, InstanceIsLocked, PowerAction, check_state, claim, snapshot_body
from stratus.compute.rpcapi import ComputeAPI
from stratus.conductor.rpcapi import ConductorAPI
from stratus.db import actions, instances
from stratus.db import hosts as hosts_db
from stratus.db import migration_records as records
from stratus.db import services as services_db
from stratus.db.engine import Database
from stratus.objects import states
from stratus.objects.states import task_states
from stratus.rpc.transport import Transport

#: Nova's ``check_instance_state`` of resize and migrate (the cast method is the conductor's call)
RESIZE = PowerAction("resize", "migrate_server", task_states.RESIZE_PREP, (states.ACTIVE, states.STOPPED))
MIGRATE = PowerAction("migrate", "migrate_server", task_states.RESIZE_PREP, (states.ACTIVE, states.STOPPED))
CONFIRM = PowerAction("confirmResize", "confirm_resize", "", (states.RESIZED,), must_have_launched=False)
REVERT = PowerAction("revertResize", "revert_resize", task_states.RESIZE_REVERTING, (states.RESIZED,),
                     must_have_launched=False)


class MigrationNotFoundByStatus(exception.StratusException):
    """No migration of the instance waits for a confirm or revert: the API's 400."""

    msg_fmt = "Instance has not been resized."
    code = 400


async def migrate(db: Database, transport: Transport, context: dict[str, Any], uuid: str,
                  flavor: dict[str, Any] | None, host: str | None = None, is_admin: bool = False,
                  auto_disk_config: bool | None = None) -> int:
    """Resize (``flavor``) or cold-migrate (``host``: the operator's destination, or None): claim the instance
    (``resize_prep``, progress 0, and a resize's ``OS-DCF:diskConfig`` stored with it as Nova's ``resize`` does)
    and call the conductor, which schedules the move; returns the migration's id. ``NoValidHost`` comes back
    with the instance as it was; any other failure puts the task_state back."""
    action = RESIZE if flavor is not None else MIGRATE
    values: tuple[tuple[str, Any], ...] = (("progress", 0),)
    if auto_disk_config is not None:
        values += (("auto_disk_config", auto_disk_config),)
    await claim(db, context, uuid, dataclasses.replace(action, values=values), is_admin)
    try:
        return await ConductorAPI(transport).migrate_server(context, uuid, flavor, host)
    except exception.NoValidHost:
        raise
    except BaseException:
        async with db.write() as conn:
            await instances.update_instance(conn, uuid, {"task_state": None},
                                            expected_task_state=(task_states.RESIZE_PREP,))
        raise


async def _waiting(conn: Any, instance: dict[str, Any], action: PowerAction, is_admin: bool) -> dict[str, Any]:
    """The instance's move waiting for a confirm or revert, after Nova's state checks."""
    if instance.get("locked") and not is_admin:
        raise InstanceIsLocked(instance_uuid=instance["uuid"])
    if instance["vm_state"] not in action.vm_states:
        raise InstanceInvalidState(attr="vm_state", instance_uuid=instance["uuid"], state=instance["vm_state"],
                                   method=action.name)
    if instance["task_state"] is not None:
        raise InstanceInvalidState(attr="task_state", instance_uuid=instance["uuid"], state=instance["task_state"],
                                   method=action.name)
    migration = await records.latest_for_instance(conn, instance["uuid"], ("finished",),
                                                  (records.RESIZE, records.MIGRATION))
    if migration is None:
        raise MigrationNotFoundByStatus()
    return migration


async def _instance(conn: Any, uuid: str) -> dict[str, Any]:
    instance = await instances.get_plain(conn, uuid)
    if instance is None or instance["deleted"]:
        raise exception.InstanceNotFound(instance_id=uuid)
    return instance


async def confirm(db: Database, transport: Transport, context: dict[str, Any], uuid: str,
                  is_admin: bool = False) -> None:
    """confirmResize: the migration ``finished`` → ``confirming`` (of two confirms one wins), the instance
    action, the cast to the source, which drops what it kept and the migration's allocation."""
    async with db.write() as conn:
        instance = await _instance(conn, uuid)
        migration = await _waiting(conn, instance, CONFIRM, is_admin)
        if not await records.update_migration(conn, migration["id"], {"status": "confirming"},
                                              expected_status=("finished",)):
            raise MigrationNotFoundByStatus()
        await actions.action_start(conn, context, [uuid], CONFIRM.name)
    await ComputeAPI(transport).confirm_resize(context, migration["source_compute"], uuid, migration["id"])


async def revert(db: Database, transport: Transport, context: dict[str, Any], uuid: str,
                 is_admin: bool = False) -> None:
    """revertResize: the instance ``resize_reverting`` and the migration ``reverting`` in one transaction, the
    instance action, the cast to the destination (which casts the source once its part is undone)."""
    async with db.write() as conn:
        instance = await _instance(conn, uuid)
        migration = await _waiting(conn, instance, REVERT, is_admin)
        moved = await instances.update_instance(conn, uuid, {"task_state": task_states.RESIZE_REVERTING},
                                                expected_task_state=(None,), expected_vm_state=(states.RESIZED,))
        if not moved:
            current = await _instance(conn, uuid)
            check_state(current, REVERT, is_admin)
            raise InstanceInvalidState(attr="task_state", instance_uuid=uuid, state=current["task_state"],
                                       method=REVERT.name)
        if not await records.update_migration(conn, migration["id"], {"status": "reverting"},
                                              expected_status=("finished",)):
            raise MigrationNotFoundByStatus()  # the transaction rolls the task_state back
        await actions.action_start(conn, context, [uuid], REVERT.name)
    await ComputeAPI(transport).revert_resize(context, migration["dest_compute"], uuid, migration["id"])


LIVE_MIGRATE = PowerAction("live-migration", "live_migrate_instance", task_states.MIGRATING,
                           (states.ACTIVE, states.PAUSED))


async def live_migrate(db: Database, transport: Transport, context: dict[str, Any], uuid: str, host: str | None,
                       block_migration: bool | None, force: bool, wait: bool, is_admin: bool = False) -> int:
    """os-migrateLive: claim the instance (``migrating``), record the migration (``accepted``) and hand it to the
    conductor (a call with ``wait``: before 2.34 its pre-check errors are the request's). Returns its id."""
    instance = await claim(db, context, uuid, LIVE_MIGRATE, is_admin)
    async with db.write() as conn:
        migration = await records.create(conn, {
            "instance_uuid": uuid, "migration_type": records.LIVE_MIGRATION, "status": "accepted",
            "source_compute": instance["host"], "source_node": instance["node"], "dest_compute": host,
            "old_flavor": instance["flavor"], "new_flavor": instance["flavor"],
            "project_id": context.get("project_id"), "user_id": context.get("user_id")})
    try:
        await ConductorAPI(transport).live_migrate_instance(context, uuid, migration["id"], host, block_migration,
                                                            force, wait)
    except BaseException:  # a no-op where the conductor has ended the move itself (its compare-and-swaps)
        async with db.write() as conn:
            await instances.update_instance(conn, uuid, {"task_state": None},
                                            expected_task_state=(task_states.MIGRATING,))
            await records.update_migration(conn, migration["id"], {"status": "error"}, expected_status=("accepted",))
        raise
    return int(migration["id"])


EVACUATE = PowerAction("evacuate", "evacuate_server", task_states.REBUILDING,
                       (states.ACTIVE, states.STOPPED, states.ERROR))


class ComputeServiceInUse(exception.StratusException):
    """The instance's host is up: an evacuation would run it twice (the API's 400)."""

    msg_fmt = "Compute service of %(host)s is still in use."
    code = 400


async def evacuate(db: Database, transport: Transport, conf: Any, context: dict[str, Any], uuid: str,
                   host: str | None, force: bool, admin_password: str | None, on_shared_storage: bool | None,
                   is_admin: bool = False) -> int:
    """evacuate: only from a host whose compute service is down (silent past ``service_down_time``, or forced
    down); claim the instance (``rebuilding``), record the evacuation (``accepted``), cast the conductor."""
    async with db.read() as conn:
        instance = await _instance(conn, uuid)
        check_state(instance, EVACUATE, is_admin)
        service = await hosts_db.get_service(conn, host=instance["host"], binary="nova-compute")
    if service is not None and services_db.is_up(service, conf.service_down_time):
        raise ComputeServiceInUse(host=instance["host"])
    instance = await claim(db, context, uuid, EVACUATE, is_admin)
    async with db.write() as conn:
        migration = await records.create(conn, {
            "instance_uuid": uuid, "migration_type": records.EVACUATION, "status": "accepted",
            "source_compute": instance["host"], "source_node": instance["node"], "dest_compute": host,
            "old_flavor": instance["flavor"], "new_flavor": instance["flavor"],
            "project_id": context.get("project_id"), "user_id": context.get("user_id")})
    try:
        await ConductorAPI(transport).evacuate_server(context, uuid, migration["id"], host, force, admin_password,
                                                      on_shared_storage)
    except BaseException:
        async with db.write() as conn:
            await instances.update_instance(conn, uuid, {"task_state": None},
                                            expected_task_state=(task_states.REBUILDING,))
            await records.update_migration(conn, migration["id"], {"status": "error"}, expected_status=("accepted",))
        raise
    return int(migration["id"])


SHELVE = PowerAction("shelve", "shelve_instance", task_states.SHELVING,
                     (states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED))
SHELVE_OFFLOAD = PowerAction("shelveOffload", "shelve_offload_instance", task_states.SHELVING_OFFLOADING,
                             (states.SHELVED,))
UNSHELVE = PowerAction("unshelve", "unshelve_instance", task_states.UNSHELVING,
                       (states.SHELVED, states.SHELVED_OFFLOADED), needs_host=False)


class UnshelveInstanceInvalidState(exception.StratusException):
    msg_fmt = ('Specifying an availability zone when unshelving server %(instance_uuid)s with status "%(state)s" '
               'is not supported. The server status must be SHELVED_OFFLOADED.')
    code = 409


async def shelve(db: Database, transport: Transport, images: Any, context: dict[str, Any], uuid: str,
                 is_admin: bool = False) -> None:
    """shelve: the snapshot image ``<name>-shelved`` made first (queued), the server claimed (``shelving``), the
    cast to its host; an image made for a request that then loses the claim is deleted again."""
    async with db.read() as conn:
        instance = await _instance(conn, uuid)
    check_state(instance, SHELVE, is_admin)
    image = await images.create(context, snapshot_body(instance, f"{instance['display_name']}-shelved", {},
                                                       str(context.get("user_id"))))
    try:
        claimed = await claim(db, context, uuid, SHELVE, is_admin)
        await ComputeAPI(transport).shelve_instance(context, claimed["host"], uuid, image["id"])
    except BaseException:
        async with db.write() as conn:
            await instances.update_instance(conn, uuid, {"task_state": None},
                                            expected_task_state=(task_states.SHELVING,))
        await images.delete(context, image["id"])
        raise


async def shelve_offload(db: Database, transport: Transport, context: dict[str, Any], uuid: str,
                         is_admin: bool = False) -> None:
    claimed = await claim(db, context, uuid, SHELVE_OFFLOAD, is_admin)
    await ComputeAPI(transport).shelve_offload_instance(context, claimed["host"], uuid)


async def unshelve(db: Database, transport: Transport, context: dict[str, Any], uuid: str,
                   availability_zone: str | None = None, host: str | None = None, zone_given: bool = False,
                   is_admin: bool = False) -> None:
    """unshelve: a shelved server starts again on its host; an offloaded one is scheduled by the conductor
    (``availability_zone`` 2.77, None to unpin with ``zone_given`` at 2.91; ``host`` 2.91)."""
    async with db.read() as conn:
        instance = await _instance(conn, uuid)
    if instance["vm_state"] == states.SHELVED and (zone_given or host):
        raise UnshelveInstanceInvalidState(instance_uuid=uuid, state=instance["vm_state"])
    claimed = await claim(db, context, uuid, UNSHELVE, is_admin)
    if claimed["vm_state"] == states.SHELVED:
        image = {"id": (claimed["system_metadata"] or {}).get("shelved_image_id")}
        await ComputeAPI(transport).unshelve_instance(context, claimed["host"], uuid, image)
        return
    zone = (availability_zone or "") if zone_given else None  # "": unpinned (2.91 null)
    await ConductorAPI(transport).unshelve_instance(context, uuid, zone, host)
