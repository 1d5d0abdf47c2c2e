"""createImage and createBackup on this host: the driver copies the root disk into a queued image of the image
service; a backup then rotates: the oldest backups of its type beyond ``rotation`` are deleted."""

from __future__ import annotations

import logging
from typing import Any

from stratus.compute import instance_action
from stratus.compute.api import SNAPSHOT_TASKS
from stratus.compute.host import ComputeHost
from stratus.compute.instance_action import Outcome, advance, power_state_of
from stratus.objects.states import task_states

LOG = logging.getLogger(__name__)


async def snapshot_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str, image_id: str,
                            first: str = task_states.IMAGE_SNAPSHOT_PENDING, event: str = "compute_snapshot_instance"
                            ) -> bool:
    """The driver copies the root disk and uploads it into the queued image ``image_id``, moving the task_state
    through Nova's ``image_snapshot`` → ``image_pending_upload`` → ``image_uploading``; the instance keeps its
    vm_state. A failed snapshot deletes the image, as Nova's does."""

    async def update_task_state(task_state: str, expected: str) -> None:
        await advance(host, instance_uuid, {"task_state": task_state}, (expected,))

    async def run(instance: dict[str, Any]) -> Outcome:
        await update_task_state(task_states.IMAGE_SNAPSHOT, first)
        await host.driver.snapshot(context, instance, image_id, update_task_state)
        return {"power_state": await power_state_of(host, instance)}

    async def failed(_instance: dict[str, Any], _error: Exception) -> Outcome:
        if host.images is not None:
            await host.images.delete(context, image_id)
        return {}

    done: list[bool] = []

    async def succeeded(instance: dict[str, Any]) -> Outcome:
        outcome = await run(instance)
        done.append(True)
        return outcome

    await instance_action.run(host, context, instance_uuid, event, (first, *SNAPSHOT_TASKS[1:]), succeeded, failed)
    return bool(done)


async def backup_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str, image_id: str,
                          backup_type: str, rotation: int) -> None:
    """createBackup: the snapshot (from ``image_backup``), then Nova's ``_rotate_backups``: of the instance's
    backups of ``backup_type``, newest first, those past the first ``rotation`` are deleted."""
    if not await snapshot_instance(host, context, instance_uuid, image_id, task_states.IMAGE_BACKUP,
                                   "compute_backup_instance"):
        return
    if host.images is None:
        return
    backups = await host.images.list_by_properties(context, {"instance_uuid": instance_uuid,
                                                             "image_type": "backup", "backup_type": backup_type})
    for image in backups[rotation:]:
        LOG.info("rotating out backup %s of %s (rotation %d)", image["id"], instance_uuid, rotation)
        await host.images.delete(context, image["id"])
