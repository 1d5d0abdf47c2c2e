"""The conductor: turns a boot request into scheduled builds, and failed builds into retries elsewhere."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from oslo_config import cfg

from stratus import exception
from stratus.compute.rpcapi import ComputeAPI
from stratus.db import actions, instances, placement
from stratus.db.engine import Database
from stratus.objects import states
from stratus.objects.states import task_states
from stratus.rpc.transport import Transport
from stratus.scheduler.rpcapi import SchedulerAPI

LOG = logging.getLogger(__name__)
SCHEDULE_EVENT = "conductor_schedule_and_build_instances"
RETRY_EVENT = "conductor_build_instances"


class ConductorManager:
    def __init__(self, conf: cfg.ConfigOpts, db: Database, transport: Transport) -> None:
        self.conf = conf
        self.db = db
        self.scheduler = SchedulerAPI(transport)
        self.compute = ComputeAPI(transport)

    async def schedule_and_build_instances(self, context: dict[str, Any], request_spec: dict[str, Any],
                                           instance_uuids: list[str]) -> None:
        async with self.db.write() as conn:
            for uuid in instance_uuids:
                await actions.event_start(conn, context, uuid, SCHEDULE_EVENT, host=self.conf.host)
        try:
            selections = await self.scheduler.select_destinations(context, request_spec, instance_uuids)
        except Exception as exc:
            LOG.info("scheduling %d instance(s) failed: %s", len(instance_uuids), exc)
            await self._set_error(context, instance_uuids, exc, SCHEDULE_EVENT)
            return
        builds: list[tuple[str, list[dict[str, Any]]]] = []
        async with self.db.write() as conn:
            for uuid, hosts in zip(instance_uuids, selections, strict=True):
                if await self._place(conn, context, uuid, hosts[0], SCHEDULE_EVENT):
                    builds.append((uuid, hosts))
        for uuid, hosts in builds:
            await self.compute.build_and_run_instance(context, hosts[0]["host"], uuid, request_spec, hosts[0],
                                                      hosts[1:])

    async def build_instances(self, context: dict[str, Any], instance_uuid: str, request_spec: dict[str, Any],
                              alternates: list[dict[str, Any]], failed_host: str, reason: str,
                              tried_hosts: list[str] | None = None) -> None:
        """A host failed the build and gave back its claim: claim the next alternate that still fits, or, when
        none is left and ``[scheduler] max_attempts`` allows another attempt, ask the scheduler for a host not
        tried yet. Otherwise the instance goes to ERROR with Nova's fault and the last error in its details."""
        tried = list(dict.fromkeys([*(tried_hosts or []), failed_host]))
        max_attempts = self.conf.scheduler.max_attempts
        async with self.db.write() as conn:
            await actions.event_start(conn, context, instance_uuid, RETRY_EVENT, host=self.conf.host)
        remaining = [a for a in alternates if a["host"] not in tried] if len(tried) < max_attempts else []
        while remaining:
            selection, remaining = remaining[0], remaining[1:]
            placed = await self._claim_alternate(context, instance_uuid, request_spec, selection)
            if placed is None:
                return  # deleted meanwhile: nothing more to do
            if placed:
                await self.compute.build_and_run_instance(context, selection["host"], instance_uuid, request_spec,
                                                          {**selection, "claimed": True}, remaining,
                                                          tried_hosts=tried)
                return
        if len(tried) < max_attempts and await self._reschedule(context, instance_uuid, request_spec, tried):
            return
        error = exception.NoValidHost(
            f"Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures for "
            f"instance {instance_uuid}.")
        await self._set_error(context, [instance_uuid], error, RETRY_EVENT, details=reason)

    async def _claim_alternate(self, context: dict[str, Any], instance_uuid: str, request_spec: dict[str, Any],
                               selection: dict[str, Any]) -> bool | None:
        """Claim on an alternate and place the instance there: True, False if it no longer fits, None if the
        instance was deleted meanwhile (any claim given back)."""
        async with self.db.write() as conn:
            instance = await instances.get_plain(conn, instance_uuid)
            if instance is None or instance["deleted"] or instance["task_state"] == task_states.DELETING:
                await placement.remove_allocations(conn, instance_uuid)
                return None
            ok = False
            for _ in range(2):  # a lost compare-and-swap re-reads the provider once
                with contextlib.suppress(exception.ConcurrentUpdateDetected):
                    ok = await placement.claim(conn, selection["provider_id"], instance_uuid,
                                               request_spec["project_id"], request_spec["user_id"],
                                               selection["resources"])
                    break
            if not ok:
                return False
            return await self._place(conn, context, instance_uuid, selection)

    async def _place(self, conn: Any, context: dict[str, Any], instance_uuid: str, selection: dict[str, Any],
                     event: str = RETRY_EVENT) -> bool | None:
        """Point the instance at the claimed host (and that host's zone); None, with the claim given back, if
        the instance was deleted (or otherwise moved on) meanwhile."""
        placed = await instances.update_instance(
            conn, instance_uuid,
            {"host": selection["host"], "node": selection["nodename"], "launched_on": selection["host"],
             "availability_zone": selection.get("availability_zone") or self.conf.default_availability_zone},
            expected_vm_state=(states.BUILDING,), expected_task_state=(task_states.SCHEDULING,))
        if not placed:
            await placement.remove_allocations(conn, instance_uuid)
            return None
        await actions.event_finish(conn, context, instance_uuid, event)
        return True

    async def _reschedule(self, context: dict[str, Any], instance_uuid: str, request_spec: dict[str, Any],
                          tried: list[str]) -> bool:
        """No alternate left: ask the scheduler for a host not tried yet (and alternates within what
        ``max_attempts`` still allows). True when the build went to a new host or the instance is gone."""
        spec = {**request_spec, "ignore_hosts": tried}
        try:
            selections = await self.scheduler.select_destinations(context, spec, [instance_uuid])
        except exception.NoValidHost:
            return False
        chosen, *alternates = selections[0]
        async with self.db.write() as conn:
            placed = await self._place(conn, context, instance_uuid, chosen)
        if placed:
            left = self.conf.scheduler.max_attempts - len(tried) - 1
            await self.compute.build_and_run_instance(context, chosen["host"], instance_uuid, request_spec, chosen,
                                                      alternates[:max(0, left)], tried_hosts=tried)
        return True

    async def _set_error(self, context: dict[str, Any], uuids: list[str], error: Exception, event: str,
                         details: str | None = None) -> None:
        async with self.db.write() as conn:
            for uuid in uuids:
                changed = await instances.update_instance(conn, uuid, {"vm_state": states.ERROR, "task_state": None,
                                                                       "host": None, "node": None})
                await placement.remove_allocations(conn, uuid)
                if changed:
                    await actions.add_fault(conn, uuid, error, code=500, details=details)
                await actions.event_finish(conn, context, uuid, event, error=error)
