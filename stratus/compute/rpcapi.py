"""Client side of the compute agent's RPC API: every message goes to one named host.

The errors a call can raise cross the wire by name, so they are defined here, where both sides import them.
"""

from __future__ import annotations

from typing import Any

from stratus import exception
from stratus.rpc.transport import Transport


class NotSupportedByDriver(exception.StratusException):
    """The host's virt driver cannot do this (Nova lets ``NotImplementedError`` through): the API's 501."""

    msg_fmt = "The requested functionality is not supported."
    code = 501


class ComputeAPI:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def build_and_run_instance(self, context: dict[str, Any], host: str, instance_uuid: str,
                                     request_spec: dict[str, Any], selection: dict[str, Any],
                                     alternates: list[dict[str, Any]], tried_hosts: list[str] | None = None
                                     ) -> None:
        await self.transport.cast("compute", "build_and_run_instance", context, server=host,
                                  instance_uuid=instance_uuid, request_spec=request_spec, selection=selection,
                                  alternates=alternates, tried_hosts=tried_hosts or [])

    async def terminate_instance(self, context: dict[str, Any], host: str, instance_uuid: str) -> None:
        await self.transport.cast("compute", "terminate_instance", context, server=host,
                                  instance_uuid=instance_uuid)

    async def cast_power_action(self, context: dict[str, Any], host: str, method: str, instance_uuid: str,
                                **kwargs: Any) -> None:
        """One of the power actions (``stop_instance``, ``start_instance``, ``reboot_instance`` with
        ``reboot_type``, ``pause_instance``, ``unpause_instance``, ``suspend_instance``, ``resume_instance``):
        a cast, as in Nova; the instance's task_state says it is under way and the host clears it."""
        await self.transport.cast("compute", method, context, server=host, instance_uuid=instance_uuid, **kwargs)

    async def get_console_output(self, context: dict[str, Any], host: str, instance_uuid: str,
                                 tail_length: int | None) -> str:
        """The guest's console log (its last ``tail_length`` lines): a call, answered by the host."""
        output: str = await self.transport.call("compute", "get_console_output", context, server=host,
                                                instance_uuid=instance_uuid, tail_length=tail_length)
        return output

    async def get_host_uptime(self, context: dict[str, Any], host: str) -> str:
        """The host's ``uptime`` output (Nova's ``get_host_uptime``): a call, answered by the host's driver."""
        uptime: str = await self.transport.call("compute", "get_host_uptime", context, server=host)
        return uptime

    async def cache_images(self, context: dict[str, Any], host: str, image_ids: list[str], timeout: float
                           ) -> dict[str, str]:
        """Nova's ``cache_images``: the host fetches the images into its image cache; a call (of ``[DEFAULT]
        long_rpc_timeout``, downloads take long), answered with each image's result (``cached``, ``existing``,
        ``unsupported``, ``error``)."""
        results: dict[str, str] = await self.transport.call("compute", "cache_images", context, server=host,
                                                            timeout=timeout, image_ids=image_ids)
        return results

    async def external_instance_event(self, context: dict[str, Any], host: str, events: list[dict[str, Any]]
                                      ) -> None:
        """Nova's ``external_instance_event``: the events of the host's instances, cast to it."""
        await self.transport.cast("compute", "external_instance_event", context, server=host, events=events)

    async def attach_interface(self, context: dict[str, Any], host: str, instance_uuid: str,
                               network_id: str | None, port_id: str | None, fixed_ip: str | None,
                               tag: str | None = None) -> dict[str, Any]:
        vif: dict[str, Any] = await self.transport.call(
            "compute", "attach_interface", context, server=host, instance_uuid=instance_uuid,
            network_id=network_id, port_id=port_id, fixed_ip=fixed_ip, tag=tag)
        return vif

    async def detach_interface(self, context: dict[str, Any], host: str, instance_uuid: str, port_id: str) -> None:
        await self.transport.call("compute", "detach_interface", context, server=host, instance_uuid=instance_uuid,
                                  port_id=port_id)
    # --- moves (compute/resize.py): casts, each to the host whose step it is ----------------------------------
    async def prep_resize(self, context: dict[str, Any], host: str, instance_uuid: str, migration_id: int,
                          request_spec: dict[str, Any], selection: dict[str, Any],
                          alternates: list[dict[str, Any]], tried_hosts: list[str], clean_shutdown: bool) -> None:
        await self.transport.cast("compute", "prep_resize", context, server=host, instance_uuid=instance_uuid,
                                  migration_id=migration_id, request_spec=request_spec, selection=selection,
                                  alternates=alternates, tried_hosts=tried_hosts, clean_shutdown=clean_shutdown)

    async def resize_instance(self, context: dict[str, Any], host: str, instance_uuid: str, migration_id: int,
                              clean_shutdown: bool) -> None:
        await self.transport.cast("compute", "resize_instance", context, server=host, instance_uuid=instance_uuid,
                                  migration_id=migration_id, clean_shutdown=clean_shutdown)

    async def finish_resize(self, context: dict[str, Any], host: str, instance_uuid: str, migration_id: int
                            ) -> None:
        await self.transport.cast("compute", "finish_resize", context, server=host, instance_uuid=instance_uuid,
                                  migration_id=migration_id)

    async def confirm_resize(self, context: dict[str, Any], host: str, instance_uuid: str, migration_id: int
                             ) -> None:
        await self.transport.cast("compute", "confirm_resize", context, server=host, instance_uuid=instance_uuid,
                                  migration_id=migration_id)

    async def revert_resize(self, context: dict[str, Any], host: str, instance_uuid: str, migration_id: int
                            ) -> None:
        await self.transport.cast("compute", "revert_resize", context, server=host, instance_uuid=instance_uuid,
                                  migration_id=migration_id)

    async def finish_revert_resize(self, context: dict[str, Any], host: str, instance_uuid: str,
                                   migration_id: int) -> None:
        await self.transport.cast("compute", "finish_revert_resize", context, server=host,
                                  instance_uuid=instance_uuid, migration_id=migration_id)

    async def cleanup_migration_source(self, context: dict[str, Any], host: str, instance_uuid: str) -> None:
        await self.transport.cast("compute", "cleanup_migration_source", context, server=host,
                                  instance_uuid=instance_uuid)

    # --- live migration (compute/live_migration.py) -----------------------------------------------------------
    async def check_can_live_migrate_destination(self, context: dict[str, Any], host: str, instance_uuid: str,
                                                 block_migration: bool | None) -> bool:
        """A call to the destination: the block_migration to use, or its refusal."""
        result: bool = await self.transport.call("compute", "check_can_live_migrate_destination", context,
                                                 server=host, instance_uuid=instance_uuid,
                                                 block_migration=block_migration)
        return result

    async def pre_live_migration(self, context: dict[str, Any], host: str, instance_uuid: str,
                                 block_migration: bool) -> dict[str, Any]:
        """A call to the destination: what its driver made ready, for the source's driver (Nova's
        ``migrate_data``)."""
        migrate_data: dict[str, Any] = await self.transport.call(
            "compute", "pre_live_migration", context, server=host, instance_uuid=instance_uuid,
            block_migration=block_migration)
        return migrate_data

    async def live_migration(self, context: dict[str, Any], host: str, instance_uuid: str, migration_id: int,
                             block_migration: bool) -> None:
        await self.transport.cast("compute", "live_migration", context, server=host, instance_uuid=instance_uuid,
                                  migration_id=migration_id, block_migration=block_migration)

    async def post_live_migration_at_destination(self, context: dict[str, Any], host: str, instance_uuid: str,
                                                 migration_id: int, power: int) -> None:
        await self.transport.cast("compute", "post_live_migration_at_destination", context, server=host,
                                  instance_uuid=instance_uuid, migration_id=migration_id, power=power)

    async def rollback_live_migration_at_destination(self, context: dict[str, Any], host: str,
                                                     instance_uuid: str) -> None:
        await self.transport.cast("compute", "rollback_live_migration_at_destination", context, server=host,
                                  instance_uuid=instance_uuid)

    async def live_migration_abort(self, context: dict[str, Any], host: str, instance_uuid: str,
                                   migration_id: int) -> None:
        await self.transport.cast("compute", "live_migration_abort", context, server=host,
                                  instance_uuid=instance_uuid, migration_id=migration_id)

    async def live_migration_force_complete(self, context: dict[str, Any], host: str, migration_id: int) -> None:
        await self.transport.cast("compute", "live_migration_force_complete", context, server=host,
                                  migration_id=migration_id)

    # --- rebuild: in place (compute/rebuild.py) or an evacuation (compute/evacuate.py) ---------------------
    async def rebuild_instance(self, context: dict[str, Any], host: str, instance_uuid: str,
                               image_meta: dict[str, Any], admin_password: str | None,
                               migration_id: int | None = None, on_shared_storage: bool | None = None,
                               preserve_ephemeral: bool = False, injected_files: list[dict[str, str]] | None = None
                               ) -> None:
        """Nova's one method for both: with ``migration_id`` the evacuation it records, else in place (with the
        rebuild's ``personality`` as ``injected_files``)."""
        extra = {"injected_files": injected_files} if injected_files else {}
        await self.transport.cast("compute", "rebuild_instance", context, server=host, instance_uuid=instance_uuid,
                                  image_meta=image_meta, admin_password=admin_password, migration_id=migration_id,
                                  on_shared_storage=on_shared_storage, preserve_ephemeral=preserve_ephemeral,
                                  **extra)

    # --- shelve (compute/shelve.py) --------------------------------------------------------------------
    async def shelve_instance(self, context: dict[str, Any], host: str, instance_uuid: str, image_id: str,
                              clean_shutdown: bool = True) -> None:
        await self.transport.cast("compute", "shelve_instance", context, server=host, instance_uuid=instance_uuid,
                                  image_id=image_id, clean_shutdown=clean_shutdown)

    async def shelve_offload_instance(self, context: dict[str, Any], host: str, instance_uuid: str) -> None:
        await self.transport.cast("compute", "shelve_offload_instance", context, server=host,
                                  instance_uuid=instance_uuid)

    async def unshelve_instance(self, context: dict[str, Any], host: str, instance_uuid: str,
                                image_meta: dict[str, Any], node: str | None = None) -> None:
        await self.transport.cast("compute", "unshelve_instance", context, server=host, instance_uuid=instance_uuid,
                                  image_meta=image_meta, node=node)

    async def set_admin_password(self, context: dict[str, Any], host: str, instance_uuid: str, new_pass: str
                                 ) -> None:
        """A call, as Nova's: the driver's refusal is the request's answer."""
        await self.transport.call("compute", "set_admin_password", context, server=host,
                                  instance_uuid=instance_uuid, new_pass=new_pass)

    async def get_instance_diagnostics(self, context: dict[str, Any], host: str, instance_uuid: str
                                       ) -> dict[str, Any]:
        diag: dict[str, Any] = await self.transport.call("compute", "get_instance_diagnostics", context,
                                                         server=host, instance_uuid=instance_uuid)
        return diag
