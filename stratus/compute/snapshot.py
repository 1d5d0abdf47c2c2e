"""createImage on this host: the driver copies the root disk into a queued image of the image service."""

from __future__ import annotations

from typing import Any

from stratus.compute import instance_action
from stratus.compute.api import SNAPSHOT_TASKS
from stratus.compute.host import ComputeHost
from stratus.compute.instance_action import Outcome, advance, power_state_of
from stratus.objects.states import task_states


async def snapshot_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str, image_id: str) -> None:
    """The driver copies the root disk and uploads it into the queued image ``image_id``, moving the task_state
    through Nova's ``image_snapshot`` → ``image_pending_upload`` → ``image_uploading``; the instance keeps its
    vm_state. A failed snapshot deletes the image, as Nova's does."""

    async def update_task_state(task_state: str, expected: str) -> None:
        await advance(host, instance_uuid, {"task_state": task_state}, (expected,))

    async def run(instance: dict[str, Any]) -> Outcome:
        await update_task_state(task_states.IMAGE_SNAPSHOT, task_states.IMAGE_SNAPSHOT_PENDING)
        await host.driver.snapshot(context, instance, image_id, update_task_state)
        return {"power_state": await power_state_of(host, instance)}

    async def failed(_instance: dict[str, Any], _error: Exception) -> Outcome:
        if host.images is not None:
            await host.images.delete(context, image_id)
        return {}

    await instance_action.run(host, context, instance_uuid, "compute_snapshot_instance", SNAPSHOT_TASKS, run,
                              failed)
