"""Shelve, offload and unshelve on the compute hosts (Nova's ``shelve_instance``, ``shelve_offload_instance``,
``unshelve_instance`` and ``_poll_shelved_instances``).

Shelve powers the guest off and snapshots its disk into the image the API created (``<name>-shelved``); the
server is ``shelved`` and keeps its host and claim. Offloading (at once with ``[DEFAULT] shelved_offload_time``
0, after that many seconds by the periodic task, never with -1, or when asked) destroys the guest and gives the
claim back: ``shelved_offloaded``, no host. Unshelve starts a shelved server's guest again where it is, or spawns
an offloaded one from its snapshot on the host the conductor scheduled; the snapshot is deleted after.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from stratus.compute import config_drive, networking, power_sync
from stratus.compute.host import ComputeHost
from stratus.compute.instance_action import advance, power_state_of
from stratus.compute.power import power_off_values
from stratus.compute.rpcapi import NotSupportedByDriver
from stratus.db import actions, instances, placement
from stratus.objects import states
from stratus.objects.states import power_state, task_states
from stratus.utils import isotime_usec, parse_isotime, utcnow

LOG = logging.getLogger(__name__)
SHELVE_EVENT = "compute_shelve_instance"
OFFLOAD_EVENT = "compute_shelve_offload_instance"
UNSHELVE_EVENT = "compute_unshelve_instance"
#: the snapshot task states a driver reports, as shelve names them (Nova's ``_shelve_instance`` mapping)
_SHELVE_TASKS = {task_states.IMAGE_PENDING_UPLOAD: task_states.SHELVING_IMAGE_PENDING_UPLOAD,
                 task_states.IMAGE_UPLOADING: task_states.SHELVING_IMAGE_UPLOADING}
_SHELVING = (task_states.SHELVING, task_states.SHELVING_IMAGE_PENDING_UPLOAD, task_states.SHELVING_IMAGE_UPLOADING)


def _sysmeta(row: dict[str, Any], **values: Any) -> dict[str, Any]:
    meta = {k: v for k, v in (row["system_metadata"] or {}).items()
            if k not in ("shelved_at", "shelved_image_id", "shelved_host")}
    return {**meta, **{k: v for k, v in values.items() if v is not None}}


async def shelve_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str, image_id: str,
                          clean_shutdown: bool = True) -> None:
    """Power off, snapshot into ``image_id``, ``shelved``; offloaded at once when ``shelved_offload_time`` is 0.
    A failure deletes the image and puts the server back as it was with a fault."""
    offload = False
    async with host.locks(instance_uuid):
        async with host.db.write() as conn:
            row = await instances.get_plain(conn, instance_uuid)
            if row is None or row["deleted"] or row["task_state"] != task_states.SHELVING:
                return
            await actions.event_start(conn, context, instance_uuid, SHELVE_EVENT, host=host.host)
        instance = host.driver_instance(row)

        async def update_task_state(task_state: str, expected: str) -> None:
            await advance(host, instance_uuid, {"task_state": _SHELVE_TASKS.get(task_state, task_state)},
                          _SHELVING)

        try:
            timeout, retry_interval = power_off_values(host, instance, clean_shutdown)
            await host.driver.power_off(instance, timeout, retry_interval)
            await host.driver.snapshot(context, instance, image_id, update_task_state)
        except Exception as exc:
            error = NotSupportedByDriver() if isinstance(exc, NotImplementedError) else exc
            LOG.warning("shelving %s on %s failed: %s", instance_uuid, host.host, error)
            if host.images is not None:
                try:
                    await host.images.delete(context, image_id)
                except Exception:
                    LOG.exception("deleting the shelve image %s", image_id)
            current = await power_state_of(host, instance)
            async with host.db.write() as conn:
                if await instances.update_instance(conn, instance_uuid, {"task_state": None, "power_state": current},
                                                   expected_task_state=_SHELVING):
                    await actions.add_fault(conn, instance_uuid, error, host=host.host)
                await actions.event_finish(conn, context, instance_uuid, SHELVE_EVENT, error=error)
            return
        offload = host.conf.shelved_offload_time == 0
        async with host.db.write() as conn:
            await instances.update_instance(
                conn, instance_uuid,
                {"vm_state": states.SHELVED, "power_state": power_state.SHUTDOWN,
                 "task_state": task_states.SHELVING_OFFLOADING if offload else None,
                 "system_metadata": _sysmeta(row, shelved_at=isotime_usec(utcnow()), shelved_image_id=image_id,
                                             shelved_host=host.host)},
                expected_task_state=_SHELVING)
            await actions.event_finish(conn, context, instance_uuid, SHELVE_EVENT)
    if offload:
        await shelve_offload_instance(host, context, instance_uuid)


async def shelve_offload_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    """Destroy the shelved server's guest and give back its claim: ``shelved_offloaded``, no host."""
    async with host.locks(instance_uuid):
        async with host.db.write() as conn:
            row = await instances.get_plain(conn, instance_uuid)
            if (row is None or row["deleted"] or row["vm_state"] != states.SHELVED
                    or row["task_state"] != task_states.SHELVING_OFFLOADING):
                return
            await actions.event_start(conn, context, instance_uuid, OFFLOAD_EVENT, host=host.host)
        error: Exception | None = None
        try:
            await host.driver.destroy(host.driver_instance(row), network_info=[])
        except Exception as exc:
            error = exc
        async with host.db.write() as conn:
            if error is None:
                # the lead calls network.neutron unbinding of the server's ports here (no host while offloaded)
                await placement.remove_allocations(conn, instance_uuid)
                await instances.update_instance(conn, instance_uuid, {
                    "vm_state": states.SHELVED_OFFLOADED, "task_state": None, "power_state": power_state.NOSTATE,
                    "host": None, "node": None}, expected_task_state=(task_states.SHELVING_OFFLOADING,))
                await host.report_stats(conn)
            else:
                await instances.update_instance(conn, instance_uuid, {"task_state": None},
                                                expected_task_state=(task_states.SHELVING_OFFLOADING,))
                await actions.add_fault(conn, instance_uuid, error, host=host.host)
            await actions.event_finish(conn, context, instance_uuid, OFFLOAD_EVENT, error=error)


async def unshelve_instance(host: ComputeHost, context: dict[str, Any], instance_uuid: str,
                            image_meta: dict[str, Any], node: str | None = None) -> None:
    """Start the server again: its guest here if only shelved, else spawned from the snapshot on this host
    (the conductor claimed it). Active after, the snapshot deleted. A failed spawn leaves it offloaded, as
    Nova's does, with its claim given back and a fault, so it can be unshelved again."""
    async with host.locks(instance_uuid):
        async with host.db.write() as conn:
            row = await instances.get_plain(conn, instance_uuid)
            if row is None or row["deleted"] or row["task_state"] != task_states.UNSHELVING:
                return
            await actions.event_start(conn, context, instance_uuid, UNSHELVE_EVENT, host=host.host)
            if row["vm_state"] == states.SHELVED_OFFLOADED:
                await instances.update_instance(conn, instance_uuid, {
                    "task_state": task_states.SPAWNING, "host": host.host,
                    "node": node or host.node.get("hypervisor_hostname", host.host)},
                    expected_task_state=(task_states.UNSHELVING,))
        offloaded = row["vm_state"] == states.SHELVED_OFFLOADED
        instance = host.driver_instance(row)
        image_id = (row["system_metadata"] or {}).get("shelved_image_id")
        error: Exception | None = None
        try:
            if offloaded:
                if image_id and host.images is not None:
                    # the snapshot's own record (its checksum, size and format; the properties it inherited), not
                    # the image the server was booted from, whose checksum the snapshot's data would fail
                    image_meta = {**image_meta, **await host.images.show(context, image_id)}
                network_info = await networking.bind_here(host, context, instance)
                drive = await config_drive.prepare(host.conf, host.db, host.driver, instance, image_meta)
                await host.driver.spawn(instance, image_meta, network_info=network_info, config_drive=drive)
            else:
                await host.driver.power_on(instance)
        except Exception as exc:
            error = NotSupportedByDriver() if isinstance(exc, NotImplementedError) else exc
        if error is not None:
            LOG.warning("unshelving %s on %s failed: %s", instance_uuid, host.host, error)
            if offloaded:
                try:
                    await host.driver.destroy(instance, network_info=[])
                except Exception:
                    LOG.exception("cleaning up the failed unshelve of %s", instance_uuid)
            async with host.db.write() as conn:
                values: dict[str, Any] = {"task_state": None}
                if offloaded:
                    await placement.remove_allocations(conn, instance_uuid)
                    values.update(host=None, node=None)
                await instances.update_instance(conn, instance_uuid, values)
                await actions.add_fault(conn, instance_uuid, error, host=host.host)
                await actions.event_finish(conn, context, instance_uuid, UNSHELVE_EVENT, error=error)
            return
        current = await power_state_of(host, instance)
        async with host.db.write() as conn:
            await instances.update_instance(conn, instance_uuid, {
                "vm_state": states.ACTIVE, "task_state": None, "power_state": current,
                "system_metadata": _sysmeta(row), "launched_at": utcnow() if offloaded else row["launched_at"]})
            await host.report_stats(conn)
            await actions.event_finish(conn, context, instance_uuid, UNSHELVE_EVENT)
    if image_id and host.images is not None:
        try:
            await host.images.delete(context, image_id)
        except Exception:
            LOG.warning("deleting the shelve image %s of %s failed", image_id, instance_uuid, exc_info=True)


async def offload_due(host: ComputeHost, context: dict[str, Any]) -> list[str]:
    """Nova's ``_poll_shelved_instances``: this host's shelved servers shelved longer ago than
    ``shelved_offload_time`` are offloaded. Returns them."""
    wait = host.conf.shelved_offload_time
    if wait <= 0:
        return []
    cutoff = utcnow() - datetime.timedelta(seconds=wait)
    async with host.db.read() as conn:
        rows = [r for r in await power_sync.host_instances(conn, host.host, full=True)
                if r["vm_state"] == states.SHELVED and r["task_state"] is None]
    done = []
    for row in rows:
        shelved_at = (row["system_metadata"] or {}).get("shelved_at")
        if shelved_at is None or parse_isotime(shelved_at) > cutoff:
            continue
        async with host.db.write() as conn:
            if not await instances.update_instance(conn, row["uuid"], {"task_state": task_states.SHELVING_OFFLOADING},
                                                   expected_task_state=(None,), expected_vm_state=(states.SHELVED,)):
                continue
        await shelve_offload_instance(host, context, row["uuid"])
        done.append(row["uuid"])
    return done
