"""The power actions on this host (casts from the API; the instance is already in the action's task_state):
stop, start, reboot (soft and hard), pause, unpause, suspend, resume. Each is one ``instance_action.run``.
"""

from __future__ import annotations

import logging
from typing import Any

from stratus.compute import instance_action
from stratus.compute.host import ComputeHost
from stratus.compute.instance_action import Outcome, advance, power_state_of, require
from stratus.objects import states
from stratus.objects.states import power_state, task_states

LOG = logging.getLogger(__name__)

SOFT_REBOOT_TASKS = (task_states.REBOOTING, task_states.REBOOT_PENDING, task_states.REBOOT_STARTED)
HARD_REBOOT_TASKS = (task_states.REBOOTING_HARD, task_states.REBOOT_PENDING_HARD, task_states.REBOOT_STARTED_HARD)


async def stop_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str,
                        clean_shutdown: bool = True) -> None:
    """Power the guest off: an ACPI shutdown for up to the image's ``os_shutdown_timeout`` (or ``[DEFAULT]
    shutdown_timeout``), then forcibly. ``stopped`` after."""
    async def run(instance: dict[str, Any]) -> Outcome:
        timeout, retry_interval = power_off_values(host, instance, clean_shutdown)
        await host.driver.power_off(instance, timeout, retry_interval)
        return {"vm_state": states.STOPPED, "power_state": await power_state_of(host, instance)}

    await instance_action.run(host, context, instance_uuid, "compute_stop_instance", (task_states.POWERING_OFF,),
                              run)


async def start_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    async def run(instance: dict[str, Any]) -> Outcome:
        await host.driver.power_on(instance)
        return {"vm_state": states.ACTIVE, "power_state": await power_state_of(host, instance)}

    await instance_action.run(host, context, instance_uuid, "compute_start_instance", (task_states.POWERING_ON,),
                              run)


async def reboot_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str,
                          reboot_type: str = "SOFT") -> None:
    """Nova's steps: ``reboot_pending`` (the host has it), ``reboot_started`` (the driver has it), then
    active. A failed reboot leaves the instance active if its guest still runs, otherwise in ERROR."""
    soft = reboot_type == "SOFT"
    family = SOFT_REBOOT_TASKS if soft else HARD_REBOOT_TASKS
    pending = task_states.REBOOT_PENDING if soft else task_states.REBOOT_PENDING_HARD
    started = task_states.REBOOT_STARTED if soft else task_states.REBOOT_STARTED_HARD

    async def run(instance: dict[str, Any]) -> Outcome:
        current = await power_state_of(host, instance)
        await advance(host, instance_uuid, {"task_state": pending, "power_state": current}, family)
        if current != power_state.RUNNING:
            LOG.warning("rebooting %s whose guest is not running (power state %s)", instance_uuid, current)
        await advance(host, instance_uuid, {"task_state": started}, family)
        await host.driver.reboot(instance, "SOFT" if soft else "HARD")
        return {"vm_state": after_reboot(instance), "power_state": await power_state_of(host, instance)}

    async def failed(instance: dict[str, Any], _error: Exception) -> Outcome:
        current = await power_state_of(host, instance)
        if current == power_state.RUNNING:
            LOG.warning("reboot of %s failed but its guest runs", instance_uuid)
            return {"vm_state": after_reboot(instance), "power_state": current}
        return {"vm_state": states.ERROR, "power_state": current}

    await instance_action.run(host, context, instance_uuid, "compute_reboot_instance", family, run, failed)


def after_reboot(instance: dict[str, Any]) -> str:
    """A rescued instance stays rescued through a reboot; any other is active."""
    return states.RESCUED if instance["vm_state"] == states.RESCUED else states.ACTIVE


async def pause_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    async def run(instance: dict[str, Any]) -> Outcome:
        require(host.driver.capabilities.supports_pause)
        await host.driver.pause(instance)
        return {"vm_state": states.PAUSED, "power_state": await power_state_of(host, instance)}

    await instance_action.run(host, context, instance_uuid, "compute_pause_instance", (task_states.PAUSING,), run)


async def unpause_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    async def run(instance: dict[str, Any]) -> Outcome:
        require(host.driver.capabilities.supports_pause)
        await host.driver.unpause(instance)
        return {"vm_state": states.ACTIVE, "power_state": await power_state_of(host, instance)}

    await instance_action.run(host, context, instance_uuid, "compute_unpause_instance", (task_states.UNPAUSING,),
                              run)


async def suspend_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    """Save the guest's memory to disk. A failure the driver did not plan for leaves the instance in ERROR,
    as Nova's (the guest may be half saved); a driver that cannot suspend leaves it as it was."""
    async def run(instance: dict[str, Any]) -> Outcome:
        require(host.driver.capabilities.supports_suspend)
        await host.driver.suspend(instance)
        return {"vm_state": states.SUSPENDED, "power_state": await power_state_of(host, instance)}

    await instance_action.run(host, context, instance_uuid, "compute_suspend_instance", (task_states.SUSPENDING,),
                              run, instance_action.error_unless_unsupported)


async def resume_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    async def run(instance: dict[str, Any]) -> Outcome:
        require(host.driver.capabilities.supports_suspend)
        await host.driver.resume(instance)
        return {"vm_state": states.ACTIVE, "power_state": await power_state_of(host, instance)}

    await instance_action.run(host, context, instance_uuid, "compute_resume_instance", (task_states.RESUMING,),
                              run, instance_action.error_unless_unsupported)


def power_off_values(host: ComputeHost, instance: dict[str, Any], clean_shutdown: bool) -> tuple[int, int]:
    """Nova's ``_get_power_off_values``: the image's ``os_shutdown_timeout`` (copied to the instance's
    system metadata at boot) or ``[DEFAULT] shutdown_timeout``, and ``[compute] shutdown_retry_interval``."""
    if not clean_shutdown:
        return 0, 0
    timeout = host.conf.shutdown_timeout
    raw = (instance.get("system_metadata") or {}).get("image_os_shutdown_timeout")
    if raw is not None:
        try:
            timeout = max(0, int(raw))
        except (TypeError, ValueError):
            LOG.warning("instance %s: os_shutdown_timeout %r is not a number", instance["uuid"], raw)
    return timeout, host.conf.compute.shutdown_retry_interval


async def trigger_crash_dump(host: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    """Nova's trigger_crash_dump: the driver injects an NMI (the guest's kernel writes its crash dump); the
    server's states do not change. A driver that cannot: the event fails with the fault."""
    async def run(instance: dict[str, Any]) -> Outcome:
        await host.driver.trigger_crash_dump(instance)
        return {}

    await instance_action.run(host, context, instance_uuid, "compute_trigger_crash_dump", (None,), run)
