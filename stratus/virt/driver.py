"""The virt driver interface: what a hypervisor must do for a compute host.

Each docstring is a contract: the state a method leaves behind and what it cleans up when it fails.
Hypervisor identifiers never leave the driver; callers name instances by their uuid and the instance dict.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from stratus import exception

if TYPE_CHECKING:
    from stratus.image.cache import ImageCache
    from stratus.image.client import ImageClient


class InterfaceNotSupported(exception.StratusException):
    """The driver cannot plug or unplug interfaces of a running guest (Nova's 501 of os-interface)."""

    msg_fmt = "Network driver does not support this function."
    code = 501


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a driver can do; checked before a call, and turned into scheduler traits."""

    supports_pause: bool = False
    supports_suspend: bool = False
    supports_console_output: bool = False
    supports_multiattach: bool = False
    supports_image_type_qcow2: bool = True
    supports_image_type_raw: bool = True
    #: the driver attaches a config drive (``spawn(config_drive=...)``); a build that needs one fails elsewhere
    supports_config_drive: bool = False

    def traits(self) -> set[str]:
        out = set()
        if self.supports_multiattach:
            out.add("COMPUTE_VOLUME_MULTI_ATTACH")
        if self.supports_image_type_qcow2:
            out.add("COMPUTE_IMAGE_TYPE_QCOW2")
        if self.supports_image_type_raw:
            out.add("COMPUTE_IMAGE_TYPE_RAW")
        return out


@dataclasses.dataclass(frozen=True)
class HostResources:
    """The node a driver manages, as the resource tracker reports it to placement."""

    hypervisor_hostname: str
    hypervisor_type: str
    hypervisor_version: int
    vcpus: int
    memory_mb: int
    local_gb: int
    cpu_info: str = "{}"
    host_ip: str = "127.0.0.1"
    #: (architecture, hypervisor type, vm mode) triples the node can run, for ImagePropertiesFilter.
    supported_instances: tuple[tuple[str, str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class ConfigDrive:
    """The files of an instance's config drive ((path, content), e.g. ``openstack/latest/meta_data.json``), which
    the driver writes as the ``config-2`` volume ``disk.config`` and attaches read-only."""

    files: tuple[tuple[str, bytes], ...]

    FILE_NAME = "disk.config"


@dataclasses.dataclass(frozen=True)
class InstanceInfo:
    """What the hypervisor says about one instance right now."""

    power_state: int
    internal_id: str = ""


#: lifecycle transitions a driver reports on its own (Nova's virt events): the guest changed state without us
EVENT_STARTED = "started"
EVENT_STOPPED = "stopped"
EVENT_PAUSED = "paused"
EVENT_RESUMED = "resumed"
EVENT_SUSPENDED = "suspended"


@dataclasses.dataclass(frozen=True)
class LifecycleEvent:
    """A guest changed power state (it powered itself off, crashed, was resumed…); the compute manager syncs
    that one instance at once instead of waiting for the periodic power-state sync."""

    instance_uuid: str
    transition: str


class HypervisorUnavailable(exception.StratusException):
    """The hypervisor cannot be reached (libvirtd down): the compute service disables itself until it is back."""

    msg_fmt = "Connection to the hypervisor is broken on host: %(host)s"


@dataclasses.dataclass
class LiveMigrationControl:
    """What a caller may ask of a live migration under way (the API's abort and force_complete)."""

    abort: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    force_complete: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    #: the guest's memory and (block migration) local disks in bytes, in all and copied so far (the server
    #: migration's progress fields)
    memory_total: int = 0
    memory_processed: int = 0
    disk_total: int = 0
    disk_processed: int = 0


class ComputeDriver(abc.ABC):
    capabilities = Capabilities()
    #: the image service, set by the loader: drivers that build disks from images download through it
    images: ImageClient | None = None
    #: the host's cache of base images (``instances_path/_base``), for drivers that build disks from one: set by
    #: the driver once it knows the image service; None: the driver keeps no cache
    cache: ImageCache | None = None
    _event_listener: Callable[[LifecycleEvent], None] | None = None

    def register_event_listener(self, callback: Callable[[LifecycleEvent], None] | None) -> None:
        """Who hears lifecycle events; called from the event loop's thread (drivers hop threads themselves)."""
        self._event_listener = callback

    def emit_event(self, event: LifecycleEvent) -> None:
        if self._event_listener is not None:
            self._event_listener(event)

    @abc.abstractmethod
    async def init_host(self, host: str) -> None:
        """Prepare the hypervisor connection for ``host``; called once before anything else."""

    @abc.abstractmethod
    def get_available_resources(self) -> HostResources:
        """The node's total resources (the resource tracker subtracts usage itself)."""

    async def read_available_resources(self) -> HostResources:
        """What the resource tracker awaits, outside any database transaction: drivers whose hypervisor calls
        block (libvirt) run ``get_available_resources`` in a worker thread."""
        return self.get_available_resources()

    async def prepare_networks_before_block_device_mapping(self, instance: dict[str, Any],
                                                           network_info: list[dict[str, Any]]) -> None:
        """The build's networking step: plug what the guest's NICs need on this host (nothing by default)."""

    async def prepare_for_spawn(self, instance: dict[str, Any]) -> None:
        """The build's block_device_mapping step: get disks ready (nothing by default). Whatever it makes,
        ``destroy`` removes, so a build interrupted after this step leaves nothing behind."""

    @abc.abstractmethod
    async def spawn(self, instance: dict[str, Any], image_meta: dict[str, Any], *,
                    network_info: list[dict[str, Any]], block_device_info: dict[str, Any] | None = None,
                    admin_password: str | None = None, config_drive: ConfigDrive | None = None) -> None:
        """Create and start the guest; on return it is RUNNING. With ``config_drive`` (only asked of a driver
        whose capabilities say ``supports_config_drive``), the guest has it attached.

        On failure it raises and leaves nothing behind (no guest, no disk, no console log), so the build
        can be retried on another host; ``ImageUnacceptable`` (or ``BuildAbortException``) says no host could
        succeed, and the build is not retried.
        """

    @abc.abstractmethod
    async def destroy(self, instance: dict[str, Any], *, network_info: list[dict[str, Any]],
                      destroy_disks: bool = True) -> None:
        """Stop the guest and remove it (and its disks when asked); a guest that is already gone is fine."""

    async def attach_interface(self, instance: dict[str, Any], vif: dict[str, Any]) -> None:
        """Plug one more VIF (a network info entry) into the running guest (os-interface POST); on failure the
        guest is as it was. Drivers that cannot hot plug leave this refusing."""
        raise InterfaceNotSupported()

    async def detach_interface(self, instance: dict[str, Any], vif: dict[str, Any]) -> None:
        """Unplug the VIF from the guest; one that is not plugged is fine."""
        raise InterfaceNotSupported()

    async def inject_network_info(self, instance: dict[str, Any], network_info: list[dict[str, Any]]) -> None:
        """Write the network info into the guest, for guests that cannot learn it themselves (Nova's, once for
        Xen). Nothing by default: the guests here take their addresses by DHCP and the metadata service."""

    @abc.abstractmethod
    async def get_info(self, instance: dict[str, Any]) -> InstanceInfo:
        """The guest's power state; ``InstanceNotFound`` when the hypervisor has no such guest."""

    @abc.abstractmethod
    async def list_instance_uuids(self) -> list[str]:
        """Uuids of every guest the hypervisor runs for this host."""

    async def power_off(self, instance: dict[str, Any], timeout: int = 0, retry_interval: int = 0) -> None:
        """Stop the guest (gracefully within ``timeout``, then forcibly); it stays defined. SHUTDOWN after."""
        raise NotImplementedError

    async def power_on(self, instance: dict[str, Any]) -> None:
        """Start a stopped guest. RUNNING after."""
        raise NotImplementedError

    async def reboot(self, instance: dict[str, Any], reboot_type: str) -> None:
        """SOFT (ACPI, falling back to HARD) or HARD reboot. RUNNING after."""
        raise NotImplementedError

    async def pause(self, instance: dict[str, Any]) -> None:
        """Freeze the guest's CPUs in memory. PAUSED after."""
        raise NotImplementedError

    async def unpause(self, instance: dict[str, Any]) -> None:
        """Let a paused guest run again. RUNNING after."""
        raise NotImplementedError

    async def suspend(self, instance: dict[str, Any]) -> None:
        """Save the guest's memory to disk and stop it (it no longer holds host RAM). SUSPENDED after."""
        raise NotImplementedError

    async def resume(self, instance: dict[str, Any]) -> None:
        """Restore a suspended guest from its saved memory. RUNNING after."""
        raise NotImplementedError

    async def snapshot(self, context: dict[str, Any], instance: dict[str, Any], image_id: str,
                       update_task_state: Callable[[str, str], Awaitable[None]]) -> None:
        """Copy the guest's root disk into the queued image ``image_id`` (format, then data, through
        ``self.images``), calling ``update_task_state(image_pending_upload, image_snapshot)`` once the copy is
        being made and ``(image_uploading, image_pending_upload)`` before the upload. The guest ends in the
        power state it had."""
        raise NotImplementedError

    # --- moves (resize and cold migration): compute/resize.py calls these in Nova's order ----------------------
    async def prepare_migration_destination(self, instance: dict[str, Any], flavor: dict[str, Any]) -> None:
        """On the destination, before anything moves (Nova's ``prep_resize``): raise to refuse the instance
        (with ``flavor``, its flavor after the move) and the conductor tries an alternate host. Nothing by
        default."""

    async def migrate_disk_and_power_off(self, instance: dict[str, Any], dest_host: str, flavor: dict[str, Any],
                                         timeout: int = 0, retry_interval: int = 0) -> None:
        """On the source: power the guest off (cleanly within ``timeout``) and hand its disks to ``dest_host``
        (resized to ``flavor``). The source keeps what it needs to undo the move until ``confirm_migration`` or
        ``finish_revert_migration``; the guest no longer counts as this host's running guest."""
        raise NotImplementedError

    async def finish_migration(self, instance: dict[str, Any], image_meta: dict[str, Any], *,
                               power_on: bool, network_info: list[dict[str, Any]] | None = None) -> None:
        """On the destination: the guest made from the disks that came over, with the instance's new flavor and
        the NICs of ``network_info`` (its ports bound here); RUNNING if ``power_on``, else SHUTDOWN. On failure it
        leaves nothing on this host (the move is reverted to the source)."""
        raise NotImplementedError

    async def confirm_migration(self, instance: dict[str, Any]) -> None:
        """On the source, once the move is confirmed: remove what was kept to undo it (fine if nothing is)."""
        raise NotImplementedError

    async def finish_revert_migration(self, instance: dict[str, Any], *, power_on: bool,
                                      network_info: list[dict[str, Any]] | None = None) -> None:
        """On the source: the guest back as it was before the move (old flavor, old disks, the NICs of
        ``network_info`` plugged); RUNNING if ``power_on``, else SHUTDOWN."""
        raise NotImplementedError

    # --- live migration: compute/live_migration.py calls these in Nova's order --------------------------------
    async def check_can_live_migrate_destination(self, instance: dict[str, Any], block_migration: bool | None
                                                 ) -> bool:
        """On the destination: whether the instance can come here while it runs, and how. Returns the
        ``block_migration`` to use (asked as None: Nova's ``auto``, the driver decides from whether the hosts
        share storage); raises ``MigrationPreCheckError`` to refuse."""
        raise NotImplementedError

    async def pre_live_migration(self, instance: dict[str, Any], block_migration: bool, *,
                                 network_info: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """On the destination, before the copy: what the guest needs here (disks for a block migration, and the
        VIFs of ``network_info`` plugged, so that its NICs have their bridges when it arrives, as Nova's
        ``pre_live_migration`` plugs them). Returns what the source's ``live_migration`` needs to know of this
        host (Nova's ``migrate_data``: plain JSON values); nothing by default."""
        return {}

    async def live_migration(self, instance: dict[str, Any], dest_host: str, block_migration: bool,
                             control: LiveMigrationControl, migrate_data: dict[str, Any]) -> int:
        """On the source: move the running guest to ``dest_host`` (``migrate_data``: what its
        ``pre_live_migration`` returned) and return its power state there. Watches
        ``control``: ``abort`` set stops the move (``LiveMigrationAborted``, the guest still running here),
        ``force_complete`` set finishes it now (Nova pauses the guest for the last copy). On return the guest
        is gone from this host."""
        raise NotImplementedError

    async def post_live_migration_at_destination(self, instance: dict[str, Any], power: int) -> None:
        """On the destination, once the copy is done: the guest is this host's, in power state ``power``."""
        raise NotImplementedError

    async def post_live_migration_at_source(self, instance: dict[str, Any],
                                            network_info: list[dict[str, Any]]) -> None:
        """On the source, once the guest is gone from it: what its VIFs left here unplugged (Nova's
        ``post_live_migration_at_source``). Nothing by default; fine if nothing is left."""

    async def rollback_live_migration_at_destination(self, instance: dict[str, Any]) -> None:
        """On the destination after a failed or aborted live migration: remove what ``pre_live_migration``
        made (fine if nothing)."""

    async def rescue(self, instance: dict[str, Any], rescue_image: dict[str, Any], admin_password: str | None
                     ) -> None:
        """Boot the guest from ``rescue_image`` with its own disk attached as a second disk. RUNNING after."""
        raise NotImplementedError

    async def unrescue(self, instance: dict[str, Any]) -> None:
        """Boot the rescued guest from its own disk again (the rescue disk goes). RUNNING after."""
        raise NotImplementedError

    async def set_admin_password(self, instance: dict[str, Any], new_pass: str) -> None:
        """Set the guest's administrator password (through a guest agent); NotImplementedError where the driver
        cannot (the API's 409)."""
        raise NotImplementedError

    async def get_instance_diagnostics(self, instance: dict[str, Any]) -> dict[str, Any]:
        """The guest's diagnostics in Nova's standard form (``state``, ``driver``, ``hypervisor``,
        ``hypervisor_os``, ``uptime``, ``config_drive``, ``num_cpus``/``nics``/``disks``, ``cpu_details``,
        ``nic_details``, ``disk_details``, ``memory_details``); ``InstanceNotFound`` without a guest."""
        raise NotImplementedError

    async def trigger_crash_dump(self, instance: dict[str, Any]) -> None:
        """Inject an NMI into the guest (its kernel writes a crash dump, if set up to). The power state is the
        guest's business afterwards."""
        raise NotImplementedError

    async def get_console_output(self, instance: dict[str, Any]) -> bytes:
        """The guest's serial console log so far (the caller cuts it to the lines asked for)."""
        raise NotImplementedError

    async def get_host_uptime(self) -> str:
        """What the host's ``uptime`` prints (`` 08:32:11 up 93 days, 18:25, 12 users,  load average: 0.20,
        0.12, 0.14``), for ``GET /os-hypervisors/{id}/uptime``; it needs no hypervisor connection."""
        raise NotImplementedError

    async def list_power_states(self) -> dict[str, int]:
        """Power state of every guest the hypervisor runs for this host, by instance uuid: one call for the
        periodic sync (drivers override it with one hypervisor round trip)."""
        out = {}
        for uuid in await self.list_instance_uuids():
            try:
                out[uuid] = (await self.get_info({"uuid": uuid})).power_state
            except exception.InstanceNotFound:
                continue
        return out

    async def manage_image_cache(self, instances: list[dict[str, Any]]) -> list[str]:
        """Drop cached images none of ``instances`` (every live instance of this host) uses and that have been
        idle long enough (``[image_cache]``); returns what went. Nothing by default: no cache."""
        return []

    async def cache_image(self, context: dict[str, Any], image_id: str) -> bool:
        """Fetch image ``image_id`` into this host's image cache ahead of any boot (Nova's ``cache_image``, for
        ``POST /os-aggregates/{id}/images``): True if it was fetched now, False if the cache had it already.
        Raises NotImplementedError where the driver keeps no cache; a failed download leaves nothing behind
        (the cache renames a file into place only once complete)."""
        if self.cache is None or self.images is None:
            raise NotImplementedError
        if await asyncio.to_thread(os.path.exists, self.cache.path_of(image_id)):
            return False
        await self.cache.fetch(await self.images.show(context, image_id), context)
        return True

    async def cleanup_host(self) -> None:
        """Release the hypervisor connection; called at service stop."""
