"""The request side of the power actions (Nova's ``compute/api.py``): which states allow each action, the
compare-and-swap that claims the instance for it, the instance action record, and the cast to its host.

The REST handlers and the compute host's own power-state sync both ask through here, so a stop the sync
requests is checked, recorded and carried out exactly like a user's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from stratus import exception
from stratus.compute.rpcapi import ComputeAPI
from stratus.db import actions, instances
from stratus.db.engine import Database
from stratus.objects import states
from stratus.objects.states import task_states
from stratus.rpc.transport import Transport

#: Nova's task_states.ALLOW_REBOOT: a HARD reboot may take over from these (a stuck soft reboot, say)
ALLOW_REBOOT = (None, task_states.REBOOTING, task_states.REBOOT_PENDING, task_states.REBOOT_STARTED,
                task_states.RESUMING, task_states.REBOOTING_HARD, task_states.UNPAUSING, task_states.PAUSING,
                task_states.SUSPENDING)
ALLOW_SOFT_REBOOT = (states.ACTIVE,)
ALLOW_HARD_REBOOT = (states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED, states.ERROR)


class InstanceInvalidState(exception.StratusException):
    """Nova's: the instance's ``attr`` (vm_state, task_state, launched_at) does not allow the action."""

    msg_fmt = "Instance %(instance_uuid)s in %(attr)s %(state)s. Cannot %(method)s while the instance is in this state."
    code = 409


class InstanceNotReady(exception.StratusException):
    """Nova's: the instance has no host yet (never scheduled, or its build failed before a host took it)."""

    msg_fmt = "Instance %(instance_id)s is not ready"
    code = 409


class InstanceIsLocked(exception.StratusException):
    msg_fmt = "Instance %(instance_uuid)s is locked"
    code = 409


@dataclasses.dataclass(frozen=True)
class PowerAction:
    """One power action as Nova's ``check_instance_state`` and ``check_instance_host`` decorators define it."""

    name: str  #: the instance action recorded, and the word in Nova's 409 message
    method: str  #: the compute RPC method cast to the instance's host
    task_state: str  #: set when the request is accepted
    vm_states: tuple[str, ...]
    task_states: tuple[str | None, ...] = (None,)
    host_first: bool = False  #: Nova checks the host before the states for stop and start
    must_have_launched: bool = True
    values: tuple[tuple[str, Any], ...] = ()  #: more columns set with the task_state (stop resets progress)
    cast_args: tuple[tuple[str, Any], ...] = ()  #: arguments of the cast besides the instance (reboot_type)
    needs_host: bool = True  #: an action on a server with no host (unshelve of an offloaded one) sets it False


STOP = PowerAction("stop", "stop_instance", task_states.POWERING_OFF, (states.ACTIVE, states.ERROR),
                   host_first=True, values=(("progress", 0),))
START = PowerAction("start", "start_instance", task_states.POWERING_ON, (states.STOPPED,), host_first=True)
SOFT_REBOOT = PowerAction("reboot", "reboot_instance", task_states.REBOOTING, ALLOW_SOFT_REBOOT,
                          cast_args=(("reboot_type", "SOFT"),))
HARD_REBOOT = PowerAction("reboot", "reboot_instance", task_states.REBOOTING_HARD, ALLOW_HARD_REBOOT, ALLOW_REBOOT,
                          cast_args=(("reboot_type", "HARD"),))
PAUSE = PowerAction("pause", "pause_instance", task_states.PAUSING, (states.ACTIVE,))
UNPAUSE = PowerAction("unpause", "unpause_instance", task_states.UNPAUSING, (states.PAUSED,))
SUSPEND = PowerAction("suspend", "suspend_instance", task_states.SUSPENDING, (states.ACTIVE,))
RESUME = PowerAction("resume", "resume_instance", task_states.RESUMING, (states.SUSPENDED,))

#: createImage: the API creates the image first and casts ``snapshot_instance`` with its id (see ``snapshot``)
SNAPSHOT = PowerAction("createImage", "snapshot_instance", task_states.IMAGE_SNAPSHOT_PENDING,
                       (states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED))
SNAPSHOT_TASKS = (task_states.IMAGE_SNAPSHOT_PENDING, task_states.IMAGE_SNAPSHOT, task_states.IMAGE_PENDING_UPLOAD,
                  task_states.IMAGE_UPLOADING)

#: image properties a snapshot does not inherit from the instance's image (Nova's
#: ``non_inheritable_image_properties`` plus what Glance computes or owns)
NOT_INHERITED = frozenset({
    "id", "name", "status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "created_at",
    "updated_at", "owner", "visibility", "protected", "os_hidden", "disk_format", "container_format", "tags",
    "min_ram", "min_disk", "stores", "cache_in_nova", "bittorrent", "img_signature", "img_signature_hash_method",
    "img_signature_key_type", "img_signature_certificate_uuid", "image_type", "instance_uuid", "base_image_ref",
    "owner_specified.openstack.md5", "owner_specified.openstack.sha256", "owner_specified.openstack.object"})


def snapshot_body(instance: dict[str, Any], name: str, metadata: dict[str, str], user_id: str) -> dict[str, Any]:
    """The new image as Nova's ``_create_image`` makes it: the instance's image properties (kept at boot in
    system_metadata as ``image_*``) minus the non-inheritable ones, the snapshot marks, and the user's metadata
    (which may set ``image_type``: a backup's is ``backup``, a caller's own wins as in Nova)."""
    body: dict[str, Any] = {"name": name}
    for key, value in (instance.get("system_metadata") or {}).items():
        prop = key[len("image_"):] if key.startswith("image_") else None
        if prop and prop not in NOT_INHERITED and value is not None:
            body[prop] = str(value)
    sysmeta = instance.get("system_metadata") or {}
    body["min_ram"] = int(sysmeta.get("image_min_ram") or 0)
    body["min_disk"] = max(int(sysmeta.get("image_min_disk") or 0), int(instance.get("root_gb") or 0))
    body.update({"image_type": "snapshot", "instance_uuid": instance["uuid"], "user_id": user_id,
                 "base_image_ref": str(instance.get("image_ref") or "")})
    body.update({k: str(v) for k, v in metadata.items()})  # last, as Nova's extra_properties: they win
    return body


async def snapshot(db: Database, transport: Transport, images: Any, context: dict[str, Any], uuid: str,
                   name: str, metadata: dict[str, str], is_admin: bool = False) -> dict[str, Any]:
    """createImage (Nova's ``compute_api.snapshot``): check the state, create the queued image, claim the
    instance (``image_snapshot_pending``) and cast to its host, which uploads the data. An image made for a
    request that then loses the claim is deleted again. Returns the image."""
    async with db.read() as conn:
        instance = await instances.get_plain(conn, uuid)
    if instance is None or instance["deleted"]:
        raise exception.InstanceNotFound(instance_id=uuid)
    check_state(instance, SNAPSHOT, is_admin)
    image = await images.create(context, snapshot_body(instance, name, metadata, str(context.get("user_id"))))
    try:
        claimed = await claim(db, context, uuid, SNAPSHOT, is_admin)
    except BaseException:
        await images.delete(context, image["id"])
        raise
    try:
        await ComputeAPI(transport).cast_power_action(context, claimed["host"], SNAPSHOT.method, uuid,
                                                      image_id=image["id"])
    except BaseException:
        async with db.write() as conn:
            await instances.update_instance(conn, uuid, {"task_state": claimed["task_state"]},
                                            expected_task_state=(SNAPSHOT.task_state,))
        await images.delete(context, image["id"])
        raise
    return dict(image)


def check_state(instance: dict[str, Any], action: PowerAction, is_admin: bool = False) -> None:
    """Raise Nova's error for an instance the action may not run on now (same checks, same order)."""
    uuid = instance["uuid"]
    if instance.get("locked") and not is_admin:
        raise InstanceIsLocked(instance_uuid=uuid)
    if action.host_first and not instance.get("host"):
        raise InstanceNotReady(instance_id=uuid)
    if instance["vm_state"] not in action.vm_states:
        raise InstanceInvalidState(attr="vm_state", instance_uuid=uuid, state=instance["vm_state"],
                                   method=action.name)
    if instance["task_state"] not in action.task_states:
        raise InstanceInvalidState(attr="task_state", instance_uuid=uuid, state=instance["task_state"],
                                   method=action.name)
    if action.must_have_launched and not instance.get("launched_at"):
        raise InstanceInvalidState(attr="launched_at", instance_uuid=uuid, state=None, method=action.name)
    if action.needs_host and not instance.get("host"):  # casting needs a host: refused as stop and start are
        raise InstanceNotReady(instance_id=uuid)


async def claim(db: Database, context: dict[str, Any], uuid: str, action: PowerAction, is_admin: bool = False
                ) -> dict[str, Any]:
    """Check the instance's state, move it to the action's task_state with a compare-and-swap on the states the
    check allowed, and record the instance action, in one transaction. Of two concurrent requests only one
    passes; the other gets the 409 of the state the first left. Returns the instance row as it was."""
    async with db.write() as conn:
        instance = await instances.get_plain(conn, uuid)
        if instance is None or instance["deleted"]:
            raise exception.InstanceNotFound(instance_id=uuid)
        check_state(instance, action, is_admin)
        # the write lock of this transaction serialises SQLite writers; on PostgreSQL the row's states decide
        moved = await instances.update_instance(
            conn, uuid, {"task_state": action.task_state, **dict(action.values)},
            expected_task_state=action.task_states, expected_vm_state=action.vm_states)
        if not moved:
            current = await instances.get_plain(conn, uuid)
            if current is None or current["deleted"]:
                raise exception.InstanceNotFound(instance_id=uuid)
            check_state(current, action, is_admin)
            raise InstanceInvalidState(attr="task_state", instance_uuid=uuid, state=current["task_state"],
                                       method=action.name)
        await actions.action_start(conn, context, [uuid], action.name)
    return instance


async def request(db: Database, transport: Transport, context: dict[str, Any], uuid: str, action: PowerAction,
                  is_admin: bool = False) -> None:
    """Accept the action (``claim``) and cast it to the instance's host. A cast that cannot leave (no such host
    listening on the in-process transport) puts the task_state back before the error goes up."""
    instance = await claim(db, context, uuid, action, is_admin)
    try:
        await ComputeAPI(transport).cast_power_action(context, instance["host"], action.method, uuid,
                                                      **dict(action.cast_args))
    except Exception:
        async with db.write() as conn:
            await instances.update_instance(conn, uuid, {"task_state": instance["task_state"]},
                                            expected_task_state=(action.task_state,))
        raise


async def request_stateless(db: Database, transport: Transport, context: dict[str, Any], uuid: str,
                            action: PowerAction, is_admin: bool = False) -> None:
    """An action with no task_state of its own (trigger_crash_dump): Nova's state checks, the instance action,
    the cast. Nothing guards against a second one; the host runs them one after the other."""
    async with db.write() as conn:
        instance = await instances.get_plain(conn, uuid)
        if instance is None or instance["deleted"]:
            raise exception.InstanceNotFound(instance_id=uuid)
        check_state(instance, action, is_admin)
        await actions.action_start(conn, context, [uuid], action.name)
    await ComputeAPI(transport).cast_power_action(context, instance["host"], action.method, uuid)
