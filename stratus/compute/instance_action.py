"""One action on one instance of this host, as every non-build flow runs it (power, snapshot, and the moves).

Under the instance's lock: the action's event, the driver step, then the outcome written with a compare-and-swap
on the action's task states. A failure puts the task_state back (plus what the flow's ``failed`` says), records
a fault and fails the event; an instance deleted or taken over meanwhile is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from stratus import exception
from stratus.compute.host import ComputeHost
from stratus.compute.rpcapi import NotSupportedByDriver
from stratus.db import actions, instances
from stratus.objects import states
from stratus.objects.states import power_state

LOG = logging.getLogger(__name__)

#: the result of an action's driver step: the columns to set (with task_state None) when it worked
Outcome = dict[str, Any]
Run = Callable[[dict[str, Any]], Awaitable[Outcome]]
Failed = Callable[[dict[str, Any], Exception], Awaitable[Outcome]]


class UnexpectedTaskState(exception.StratusException):
    """Nova's ``UnexpectedTaskStateError``: another request (a delete, a HARD reboot) took the instance over
    while this action ran; the action stops there and leaves the instance to it."""

    msg_fmt = "Unexpected task state: expecting %(expected)s but the actual state is %(actual)s"


async def run(host: ComputeHost, context: dict[str, Any], uuid: str, event: str, expected: tuple[str | None, ...],
              step: Run, failed: Failed | None = None) -> None:
    """Run ``step`` on the instance (see the module's docstring)."""
    async with host.locks(uuid):
        async with host.db.write() as conn:
            row = await instances.get_plain(conn, uuid)
            if row is None or row["deleted"] or row["task_state"] not in expected:
                LOG.info("%s of %s skipped: the instance is %s", event, uuid,
                         "gone" if row is None or row["deleted"] else f"in task_state {row['task_state']}")
                return
            await actions.event_start(conn, context, uuid, event, host=host.host)
        instance = host.driver_instance(row)
        try:
            outcome = await step(instance)
        except UnexpectedTaskState as exc:
            async with host.db.write() as conn:
                await actions.event_finish(conn, context, uuid, event, error=exc)
            return
        except Exception as exc:
            error = NotSupportedByDriver() if isinstance(exc, NotImplementedError) else exc
            await _failed(host, context, instance, event, expected, error, failed)
            return
        async with host.db.write() as conn:
            done = await instances.update_instance(conn, uuid, {**outcome, "task_state": None},
                                                   expected_task_state=expected)
            await actions.event_finish(conn, context, uuid, event,
                                       error=None if done else await unexpected(conn, uuid, expected))
        LOG.info("%s of %s on %s done", event, uuid, host.host)


async def _failed(host: ComputeHost, context: dict[str, Any], instance: dict[str, Any], event: str,
                  expected: tuple[str | None, ...], error: Exception, failed: Failed | None) -> None:
    uuid = instance["uuid"]
    LOG.warning("%s of %s on %s failed: %s", event, uuid, host.host, error)
    extra: Outcome = {}
    if failed is not None:
        try:
            extra = await failed(instance, error)
        except Exception:
            LOG.exception("reading the state of %s after its failed %s", uuid, event)
    async with host.db.write() as conn:
        if await instances.update_instance(conn, uuid, {**extra, "task_state": None}, expected_task_state=expected):
            await actions.add_fault(conn, uuid, error, host=host.host)
        await actions.event_finish(conn, context, uuid, event, error=error)


async def advance(host: ComputeHost, uuid: str, values: dict[str, Any], expected: tuple[str | None, ...]) -> None:
    """One intermediate step of an action (a new task_state); UnexpectedTaskState if the instance moved on."""
    async with host.db.write() as conn:
        if not await instances.update_instance(conn, uuid, values, expected_task_state=expected):
            raise await unexpected(conn, uuid, expected)


async def unexpected(conn: Any, uuid: str, expected: tuple[str | None, ...]) -> UnexpectedTaskState:
    current = await instances.get_plain(conn, uuid)
    actual = "deleted" if current is None or current["deleted"] else current["task_state"]
    LOG.info("instance %s was taken over (task_state %s) during its action", uuid, actual)
    return UnexpectedTaskState(expected=list(expected), actual=actual)


async def power_state_of(host: ComputeHost, instance: dict[str, Any]) -> int:
    """The guest's power state as the driver reports it (NOSTATE when it has no such guest)."""
    try:
        return (await host.driver.get_info(instance)).power_state
    except exception.InstanceNotFound:
        return power_state.NOSTATE


def require(capability: bool) -> None:
    """The driver must be able to do this: the API's 501 otherwise."""
    if not capability:
        raise NotSupportedByDriver()


async def error_unless_unsupported(_instance: dict[str, Any], error: Exception) -> Outcome:
    """A ``failed`` for actions whose unplanned failure leaves the guest unknown: ERROR, unless the driver
    simply cannot (the instance is then as it was)."""
    return {} if isinstance(error, NotSupportedByDriver) else {"vm_state": states.ERROR}
