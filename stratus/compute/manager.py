"""The compute agent of one host: the RPC endpoint its messages arrive at, and nothing more.

Each message is handed to the module of its flow (build.py, delete.py, power.py, snapshot.py, console.py,
resize.py for resizes and cold migrations, live_migration.py, evacuate.py, shelve.py, rebuild.py, rescue.py,
soft_delete.py, image_cache.py for image pre-caching); the start-up reconciliation (startup.py), the periodic
tasks (periodic.py), the power-state sync (power_sync.py) and the hypervisor's health (hypervisor.py) have modules
of their own. They all work on the host's shared state (host.py), which this class is; none of them imports this
module.

Every state change is a compare-and-swap on (vm_state, task_state), so a delete that lands while a build or a
power action is under way wins: the action notices at its next step and stops there. A hypervisor that stops
answering disables the service (with Nova's ``AUTO: `` reason) instead of crashing it; the first periodic pass
that reaches it again enables the service back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from stratus.compute import (
    build,
    console,
    delete,
    evacuate,
    hypervisor,
    image_cache,
    live_migration,
    networking,
    periodic,
    power,
    rebuild,
    rescue,
    resize,
    shelve,
    snapshot,
    soft_delete,
)
from stratus.compute.host import ComputeHost
from stratus.db import services as services_db
from stratus.virt.driver import LifecycleEvent

LOG = logging.getLogger(__name__)


class ComputeManager(ComputeHost):
    # --- start-up, periodic tasks, stop ------------------------------------------------------------------
    async def init_host(self) -> None:
        """Register the service, then bring the database in step with the hypervisor (Nova's ``init_host``). A
        hypervisor that cannot be reached leaves the service registered but disabled; the rest waits for it."""
        self.driver.register_event_listener(self._lifecycle_event)
        async with self.db.write() as conn:
            service = await services_db.register(conn, self.host, "nova-compute", "compute")
            self.service_id = service["id"]
        # disabled by an earlier run of this service that lost its hypervisor: enabled again once it answers
        prefix = hypervisor.DISABLE_PREFIX
        self_disabled = bool(service["disabled"]) and (service["disabled_reason"] or "").startswith(prefix)
        await hypervisor.reach(self, at_start=self_disabled)
        periodic.schedule_first(self)

    async def periodic_tasks(self, now: float | None = None) -> None:
        """Whatever periodic task is due (compute/periodic.py); called every heartbeat."""
        await periodic.run_due(self, now)

    def _lifecycle_event(self, event: LifecycleEvent) -> None:
        hypervisor.lifecycle_event(self, event)

    async def cleanup_host(self) -> None:
        """Service stop: no more events, background actions cancelled, the driver's connection released."""
        self.driver.register_event_listener(None)
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*list(self.background), return_exceptions=True)
        try:
            await self.driver.cleanup_host()
        except Exception:
            LOG.exception("driver cleanup of %s failed", self.host)

    # --- build and delete ----------------------------------------------------------------------------------
    async def build_and_run_instance(self, context: dict[str, Any], instance_uuid: str,
                                     request_spec: dict[str, Any], selection: dict[str, Any],
                                     alternates: list[dict[str, Any]], tried_hosts: list[str] | None = None
                                     ) -> None:
        await build.build_and_run_instance(self, context, instance_uuid, request_spec, alternates, tried_hosts)

    async def terminate_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        await delete.terminate_instance(self, context, instance_uuid)

    async def soft_delete_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        await soft_delete.soft_delete_instance(self, context, instance_uuid)

    async def restore_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        await soft_delete.restore_instance(self, context, instance_uuid)

    # --- power actions (casts from the API; the instance is already in the action's task_state) ----------
    async def stop_instance(self, context: dict[str, Any], instance_uuid: str, clean_shutdown: bool = True) -> None:
        await power.stop_instance(self, context, instance_uuid, clean_shutdown)

    async def start_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        await power.start_instance(self, context, instance_uuid)

    async def reboot_instance(self, context: dict[str, Any], instance_uuid: str, reboot_type: str = "SOFT") -> None:
        await power.reboot_instance(self, context, instance_uuid, reboot_type)

    async def pause_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        await power.pause_instance(self, context, instance_uuid)

    async def unpause_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        await power.unpause_instance(self, context, instance_uuid)

    async def suspend_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        await power.suspend_instance(self, context, instance_uuid)

    async def resume_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        await power.resume_instance(self, context, instance_uuid)

    async def trigger_crash_dump(self, context: dict[str, Any], instance_uuid: str) -> None:
        await power.trigger_crash_dump(self, context, instance_uuid)

    # --- resize and cold migration (compute/resize.py): each step on the host whose step it is -------------
    async def prep_resize(self, context: dict[str, Any], instance_uuid: str, migration_id: int,
                          request_spec: dict[str, Any], selection: dict[str, Any], alternates: list[dict[str, Any]],
                          tried_hosts: list[str], clean_shutdown: bool = True) -> None:
        await resize.prep_resize(self, context, instance_uuid, migration_id, request_spec, selection, alternates,
                                 tried_hosts, clean_shutdown)

    async def resize_instance(self, context: dict[str, Any], instance_uuid: str, migration_id: int,
                              clean_shutdown: bool = True) -> None:
        await resize.resize_instance(self, context, instance_uuid, migration_id, clean_shutdown)

    async def finish_resize(self, context: dict[str, Any], instance_uuid: str, migration_id: int) -> None:
        await resize.finish_resize(self, context, instance_uuid, migration_id)

    async def confirm_resize(self, context: dict[str, Any], instance_uuid: str, migration_id: int) -> None:
        await resize.confirm_resize(self, context, instance_uuid, migration_id)

    async def revert_resize(self, context: dict[str, Any], instance_uuid: str, migration_id: int) -> None:
        await resize.revert_resize(self, context, instance_uuid, migration_id)

    async def finish_revert_resize(self, context: dict[str, Any], instance_uuid: str, migration_id: int) -> None:
        await resize.finish_revert_resize(self, context, instance_uuid, migration_id)

    async def cleanup_migration_source(self, context: dict[str, Any], instance_uuid: str) -> None:
        await resize.cleanup_migration_source(self, context, instance_uuid)

    # --- live migration (compute/live_migration.py) ---------------------------------------------------------
    async def check_can_live_migrate_destination(self, context: dict[str, Any], instance_uuid: str,
                                                 block_migration: bool | None) -> bool:
        return await live_migration.check_can_live_migrate_destination(self, context, instance_uuid,
                                                                       block_migration)

    async def pre_live_migration(self, context: dict[str, Any], instance_uuid: str, block_migration: bool
                                 ) -> dict[str, Any]:
        return await live_migration.pre_live_migration(self, context, instance_uuid, block_migration)

    async def live_migration(self, context: dict[str, Any], instance_uuid: str, migration_id: int,
                             block_migration: bool) -> None:
        await live_migration.live_migration(self, context, instance_uuid, migration_id, block_migration)

    async def post_live_migration_at_destination(self, context: dict[str, Any], instance_uuid: str,
                                                 migration_id: int, power: int) -> None:
        await live_migration.post_live_migration_at_destination(self, context, instance_uuid, migration_id, power)

    async def rollback_live_migration_at_destination(self, context: dict[str, Any], instance_uuid: str) -> None:
        await live_migration.rollback_live_migration_at_destination(self, context, instance_uuid)

    async def live_migration_abort(self, context: dict[str, Any], instance_uuid: str, migration_id: int) -> None:
        await live_migration.abort(self, context, instance_uuid, migration_id)

    async def live_migration_force_complete(self, context: dict[str, Any], migration_id: int) -> None:
        live_migration.force_complete(self, migration_id)

    # --- rebuild: in place (compute/rebuild.py) or an evacuation to this host (compute/evacuate.py) --------
    async def rebuild_instance(self, context: dict[str, Any], instance_uuid: str, image_meta: dict[str, Any],
                               admin_password: str | None, migration_id: int | None = None,
                               on_shared_storage: bool | None = None, preserve_ephemeral: bool = False,
                               injected_files: list[dict[str, str]] | None = None) -> None:
        if migration_id is not None:
            await evacuate.rebuild_instance(self, context, instance_uuid, migration_id, image_meta, admin_password,
                                            on_shared_storage)
        else:
            await rebuild.rebuild_instance(self, context, instance_uuid, image_meta, admin_password,
                                           preserve_ephemeral, injected_files)

    # --- shelve (compute/shelve.py) --------------------------------------------------------------------
    async def shelve_instance(self, context: dict[str, Any], instance_uuid: str, image_id: str,
                              clean_shutdown: bool = True) -> None:
        await shelve.shelve_instance(self, context, instance_uuid, image_id, clean_shutdown)

    async def shelve_offload_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        await shelve.shelve_offload_instance(self, context, instance_uuid)

    async def unshelve_instance(self, context: dict[str, Any], instance_uuid: str, image_meta: dict[str, Any],
                                node: str | None = None) -> None:
        await shelve.unshelve_instance(self, context, instance_uuid, image_meta, node)

    # --- rescue and the admin password (compute/rescue.py) ---------------------------------------------
    async def rescue_instance(self, context: dict[str, Any], instance_uuid: str, rescue_image: dict[str, Any],
                              admin_password: str | None = None) -> None:
        await rescue.rescue_instance(self, context, instance_uuid, rescue_image, admin_password)

    async def unrescue_instance(self, context: dict[str, Any], instance_uuid: str) -> None:
        await rescue.unrescue_instance(self, context, instance_uuid)

    async def set_admin_password(self, context: dict[str, Any], instance_uuid: str, new_pass: str) -> None:
        await rescue.set_admin_password(self, context, instance_uuid, new_pass)

    # --- images and reads ----------------------------------------------------------------------------------
    async def snapshot_instance(self, context: dict[str, Any], instance_uuid: str, image_id: str) -> None:
        await snapshot.snapshot_instance(self, context, instance_uuid, image_id)

    async def backup_instance(self, context: dict[str, Any], instance_uuid: str, image_id: str, backup_type: str,
                              rotation: int) -> None:
        await snapshot.backup_instance(self, context, instance_uuid, image_id, backup_type, rotation)

    async def get_console_output(self, context: dict[str, Any], instance_uuid: str, tail_length: int | None = None
                                 ) -> str:
        return await console.get_console_output(self, context, instance_uuid, tail_length)

    async def get_instance_diagnostics(self, context: dict[str, Any], instance_uuid: str) -> dict[str, Any]:
        return await console.get_instance_diagnostics(self, context, instance_uuid)

    async def get_host_uptime(self, context: dict[str, Any]) -> str:
        return await console.get_host_uptime(self, context)

    async def cache_images(self, context: dict[str, Any], image_ids: list[str]) -> dict[str, str]:
        """Image pre-caching (compute/image_cache.py): a call from the conductor; each image's result."""
        return await image_cache.cache_images(self, context, image_ids)

    # --- networking (compute/networking.py) ------------------------------------------------------------------
    async def external_instance_event(self, context: dict[str, Any], events: list[dict[str, Any]]) -> None:
        """Events of ``os-server-external-events`` for instances on this host (a cast)."""
        await networking.external_instance_event(self, context, events)

    async def inject_network_info(self, context: dict[str, Any], instance_uuid: str) -> None:
        """The injectNetworkInfo action (a cast): the info cache refreshed and handed to the driver."""
        await networking.inject_network_info(self, context, instance_uuid)

    async def attach_interface(self, context: dict[str, Any], instance_uuid: str, network_id: str | None,
                               port_id: str | None, fixed_ip: str | None, tag: str | None = None) -> dict[str, Any]:
        """os-interface POST (a call: the API answers with the new interface)."""
        return await networking.attach_interface_of(self, context, instance_uuid, network_id, port_id, fixed_ip,
                                                    tag)

    async def detach_interface(self, context: dict[str, Any], instance_uuid: str, port_id: str) -> None:
        """os-interface DELETE (a call, as Nova's API waits for the host to take it)."""
        await networking.detach_interface_of(self, context, instance_uuid, port_id)
