"""Client side of the conductor's RPC API."""

from __future__ import annotations

from typing import Any

from stratus.rpc.transport import Transport


class ConductorAPI:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def schedule_and_build_instances(self, context: dict[str, Any], request_spec: dict[str, Any],
                                           instance_uuids: list[str]) -> None:
        await self.transport.cast("conductor", "schedule_and_build_instances", context,
                                  request_spec=request_spec, instance_uuids=instance_uuids)

    async def build_instances(self, context: dict[str, Any], instance_uuid: str, request_spec: dict[str, Any],
                              alternates: list[dict[str, Any]], failed_host: str, reason: str,
                              tried_hosts: list[str] | None = None) -> None:
        await self.transport.cast("conductor", "build_instances", context, instance_uuid=instance_uuid,
                                  request_spec=request_spec, alternates=alternates, failed_host=failed_host,
                                  reason=reason, tried_hosts=tried_hosts or [failed_host])

    async def migrate_server(self, context: dict[str, Any], instance_uuid: str, flavor: dict[str, Any] | None,
                             requested_host: str | None, clean_shutdown: bool = True) -> int:
        """Resize (``flavor``) or cold-migrate (None) an instance the API put in ``resize_prep``: a call, as
        Nova's, so that a move no host can take is the request's 400; returns the migration's id."""
        migration_id: int = await self.transport.call(
            "conductor", "migrate_server", context, instance_uuid=instance_uuid, flavor=flavor,
            requested_host=requested_host, clean_shutdown=clean_shutdown)
        return migration_id

    async def resize_reschedule(self, context: dict[str, Any], instance_uuid: str, migration_id: int,
                                request_spec: dict[str, Any], alternates: list[dict[str, Any]], failed_host: str,
                                reason: str, tried_hosts: list[str], clean_shutdown: bool = True) -> None:
        await self.transport.cast("conductor", "resize_reschedule", context, instance_uuid=instance_uuid,
                                  migration_id=migration_id, request_spec=request_spec, alternates=alternates,
                                  failed_host=failed_host, reason=reason, tried_hosts=tried_hosts,
                                  clean_shutdown=clean_shutdown)

    async def live_migrate_instance(self, context: dict[str, Any], instance_uuid: str, migration_id: int,
                                    host: str | None, block_migration: bool | None, force: bool,
                                    wait: bool) -> None:
        """Start a live migration the API accepted; ``wait`` (before 2.34) makes it a call, so that its
        pre-checks' errors are the request's."""
        kwargs = {"instance_uuid": instance_uuid, "migration_id": migration_id, "host": host,
                  "block_migration": block_migration, "force": force}
        if wait:
            await self.transport.call("conductor", "live_migrate_instance", context, **kwargs)
        else:
            await self.transport.cast("conductor", "live_migrate_instance", context, **kwargs)

    async def evacuate_server(self, context: dict[str, Any], instance_uuid: str, migration_id: int,
                              host: str | None, force: bool, admin_password: str | None,
                              on_shared_storage: bool | None) -> None:
        await self.transport.cast("conductor", "evacuate_server", context, instance_uuid=instance_uuid,
                                  migration_id=migration_id, host=host, force=force, admin_password=admin_password,
                                  on_shared_storage=on_shared_storage)

    async def unshelve_instance(self, context: dict[str, Any], instance_uuid: str, availability_zone: str | None,
                                host: str | None) -> None:
        await self.transport.cast("conductor", "unshelve_instance", context, instance_uuid=instance_uuid,
                                  availability_zone=availability_zone, host=host)

    async def cache_images(self, context: dict[str, Any], hosts: list[str], image_ids: list[str]) -> None:
        """Nova's ``cache_images``: the aggregate's ``hosts`` fetch ``image_ids`` into their image caches; a cast
        (the API answers 202 at once)."""
        await self.transport.cast("conductor", "cache_images", context, hosts=hosts, image_ids=image_ids)
