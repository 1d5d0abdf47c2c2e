"""Rescue, unrescue and the admin password on the server's host (Nova's ``rescue_instance``,
``unrescue_instance``, ``set_admin_password``): the guest boots a rescue image (the one asked for, else the
server's own) with its own disk attached as a second one, ``rescued``; unrescue boots it from its own disk
again, ``active``. A failure leaves the server as it was with a fault (the guest is the driver's to put back).
"""

from __future__ import annotations

from typing import Any

from stratus.compute import instance_action
from stratus.compute.host import ComputeHost
from stratus.compute.instance_action import Outcome, power_state_of
from stratus.objects import states
from stratus.objects.states import task_states


async def rescue_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str,
                          rescue_image: dict[str, Any], admin_password: str | None) -> None:
    async def run(instance: dict[str, Any]) -> Outcome:
        await host.driver.rescue(instance, rescue_image, admin_password)
        return {"vm_state": states.RESCUED, "power_state": await power_state_of(host, instance)}

    await instance_action.run(host, context, instance_uuid, "compute_rescue_instance", (task_states.RESCUING,),
                              run)


async def unrescue_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    async def run(instance: dict[str, Any]) -> Outcome:
        await host.driver.unrescue(instance)
        return {"vm_state": states.ACTIVE, "power_state": await power_state_of(host, instance)}

    await instance_action.run(host, context, instance_uuid, "compute_unrescue_instance",
                              (task_states.UNRESCUING,), run)


async def set_admin_password(host: ComputeHost, context: dict[str, Any], instance_uuid: str, new_pass: str) -> None:
    """changePassword (a call): the driver sets it; NotSupportedByDriver goes back to the API (its 409)."""
    failure: list[Exception] = []

    async def run(instance: dict[str, Any]) -> Outcome:
        await host.driver.set_admin_password(instance, new_pass)
        return {}

    async def failed(_instance: dict[str, Any], error: Exception) -> Outcome:
        failure.append(error)
        return {}

    await instance_action.run(host, context, instance_uuid, "compute_set_admin_password",
                              (task_states.UPDATING_PASSWORD,), run, failed)
    if failure:
        raise failure[0]
