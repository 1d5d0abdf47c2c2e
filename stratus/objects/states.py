"""Nova's instance states and how the API's server ``status`` derives from them."""

from __future__ import annotations

from typing import Final

# vm_state: what the instance is
ACTIVE: Final = "active"
BUILDING: Final = "building"
STOPPED: Final = "stopped"
PAUSED: Final = "paused"
SUSPENDED: Final = "suspended"
RESCUED: Final = "rescued"
RESIZED: Final = "resized"
SOFT_DELETED: Final = "soft-delete"
DELETED: Final = "deleted"
ERROR: Final = "error"
SHELVED: Final = "shelved"
SHELVED_OFFLOADED: Final = "shelved_offloaded"


class task_states:
    """What is happening to the instance right now (None when nothing)."""

    SCHEDULING: Final = "scheduling"
    BLOCK_DEVICE_MAPPING: Final = "block_device_mapping"
    NETWORKING: Final = "networking"
    SPAWNING: Final = "spawning"
    DELETING: Final = "deleting"
    POWERING_OFF: Final = "powering-off"
    POWERING_ON: Final = "powering-on"
    REBOOTING: Final = "rebooting"
    REBOOTING_HARD: Final = "rebooting_hard"
    REBOOT_PENDING: Final = "reboot_pending"
    REBOOT_STARTED: Final = "reboot_started"
    REBOOT_PENDING_HARD: Final = "reboot_pending_hard"
    REBOOT_STARTED_HARD: Final = "reboot_started_hard"
    REBUILDING: Final = "rebuilding"
    REBUILD_BLOCK_DEVICE_MAPPING: Final = "rebuild_block_device_mapping"
    REBUILD_SPAWNING: Final = "rebuild_spawning"
    MIGRATING: Final = "migrating"
    RESIZE_PREP: Final = "resize_prep"
    RESIZE_MIGRATING: Final = "resize_migrating"
    RESIZE_MIGRATED: Final = "resize_migrated"
    RESIZE_FINISH: Final = "resize_finish"
    RESIZE_REVERTING: Final = "resize_reverting"
    RESIZE_CONFIRMING: Final = "resize_confirming"
    UPDATING_PASSWORD: Final = "updating_password"
    PAUSING: Final = "pausing"
    UNPAUSING: Final = "unpausing"
    SUSPENDING: Final = "suspending"
    RESUMING: Final = "resuming"
    SOFT_DELETING: Final = "soft-deleting"
    RESTORING: Final = "restoring"
    SHELVING: Final = "shelving"
    SHELVING_IMAGE_PENDING_UPLOAD: Final = "shelving_image_pending_upload"
    SHELVING_IMAGE_UPLOADING: Final = "shelving_image_uploading"
    SHELVING_OFFLOADING: Final = "shelving_offloading"
    UNSHELVING: Final = "unshelving"
    IMAGE_SNAPSHOT_PENDING: Final = "image_snapshot_pending"
    IMAGE_BACKUP: Final = "image_backup"
    IMAGE_SNAPSHOT: Final = "image_snapshot"
    IMAGE_PENDING_UPLOAD: Final = "image_pending_upload"
    IMAGE_UPLOADING: Final = "image_uploading"
    RESCUING: Final = "rescuing"
    UNRESCUING: Final = "unrescuing"


class power_state:
    NOSTATE: Final = 0
    RUNNING: Final = 1
    PAUSED: Final = 3
    SHUTDOWN: Final = 4
    CRASHED: Final = 6
    SUSPENDED: Final = 7


# (vm_state -> {task_state or "default": API status}); Nova's nova/api/openstack/common.py table.
_STATE_MAP: dict[str, dict[str | None, str]] = {
    ACTIVE: {
        "default": "ACTIVE",
        task_states.REBOOTING: "REBOOT",
        task_states.REBOOT_PENDING: "REBOOT",
        task_states.REBOOT_STARTED: "REBOOT",
        task_states.REBOOTING_HARD: "HARD_REBOOT",
        task_states.REBOOT_PENDING_HARD: "HARD_REBOOT",
        task_states.REBOOT_STARTED_HARD: "HARD_REBOOT",
        task_states.UPDATING_PASSWORD: "PASSWORD",
        task_states.REBUILDING: "REBUILD",
        task_states.REBUILD_BLOCK_DEVICE_MAPPING: "REBUILD",
        task_states.REBUILD_SPAWNING: "REBUILD",
        task_states.MIGRATING: "MIGRATING",
        task_states.RESIZE_PREP: "RESIZE",
        task_states.RESIZE_MIGRATING: "RESIZE",
        task_states.RESIZE_MIGRATED: "RESIZE",
        task_states.RESIZE_FINISH: "RESIZE",
    },
    BUILDING: {"default": "BUILD"},
    STOPPED: {
        "default": "SHUTOFF",
        task_states.RESIZE_PREP: "RESIZE",
        task_states.RESIZE_MIGRATING: "RESIZE",
        task_states.RESIZE_MIGRATED: "RESIZE",
        task_states.RESIZE_FINISH: "RESIZE",
        task_states.REBUILDING: "REBUILD",
        task_states.REBUILD_BLOCK_DEVICE_MAPPING: "REBUILD",
        task_states.REBUILD_SPAWNING: "REBUILD",
    },
    RESIZED: {"default": "VERIFY_RESIZE", task_states.RESIZE_REVERTING: "REVERT_RESIZE"},
    PAUSED: {"default": "PAUSED", task_states.MIGRATING: "MIGRATING"},
    SUSPENDED: {"default": "SUSPENDED"},
    RESCUED: {"default": "RESCUE"},
    ERROR: {"default": "ERROR", task_states.REBUILDING: "REBUILD",
            task_states.REBUILD_BLOCK_DEVICE_MAPPING: "REBUILD",
            task_states.REBUILD_SPAWNING: "REBUILD"},
    DELETED: {"default": "DELETED"},
    SOFT_DELETED: {"default": "SOFT_DELETED"},
    SHELVED: {"default": "SHELVED"},
    SHELVED_OFFLOADED: {"default": "SHELVED_OFFLOADED"},
}


def status_from_state(vm_state: str, task_state: str | None) -> str:
    """The API ``status`` of a server; UNKNOWN for a combination Nova would not show."""
    states = _STATE_MAP.get(vm_state)
    if states is None:
        return "UNKNOWN"
    return states.get(task_state, states["default"])


def states_from_status(status: str) -> tuple[list[str], list[str | None] | None]:
    """The (vm_states, task_states) a ``status`` filter matches; task_states None means any."""
    status = status.upper()
    vm_states: list[str] = []
    tasks: list[str | None] = []
    any_task = False
    for vm_state, mapping in _STATE_MAP.items():
        for task, st in mapping.items():
            if st != status:
                continue
            vm_states.append(vm_state)
            if task == "default":
                any_task = True
            else:
                tasks.append(task)
    if any_task:
        return sorted(set(vm_states)), None
    return sorted(set(vm_states)), tasks

