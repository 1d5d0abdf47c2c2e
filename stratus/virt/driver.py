"""The virt driver interface: what a hypervisor must do for a compute host.

Each docstring is a contract: the state a method leaves behind and what it cleans up when it fails.
Hypervisor identifiers never leave the driver; callers name instances by their uuid and the instance dict.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a driver can do; checked before a call, and turned into scheduler traits."""

    supports_pause: bool = False
    supports_suspend: bool = False
    supports_console_output: bool = False
    supports_multiattach: bool = False
    supports_image_type_qcow2: bool = True
    supports_image_type_raw: bool = True

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
class InstanceInfo:
    """What the hypervisor says about one instance right now."""

    power_state: int
    internal_id: str = ""


class ComputeDriver(abc.ABC):
    capabilities = Capabilities()

    @abc.abstractmethod
    async def init_host(self, host: str) -> None:
        """Prepare the hypervisor connection for ``host``; called once before anything else."""

    @abc.abstractmethod
    def get_available_resources(self) -> HostResources:
        """The node's total resources (the resource tracker subtracts usage itself)."""

    async def prepare_networks_before_block_device_mapping(self, instance: dict[str, Any],
                                                           network_info: list[dict[str, Any]]) -> None:
        """The build's networking step: plug what the guest's NICs need on this host (nothing by default)."""

    async def prepare_for_spawn(self, instance: dict[str, Any]) -> None:
        """The build's block_device_mapping step: get disks ready (nothing by default). Whatever it makes,
        ``destroy`` removes, so a build interrupted after this step leaves nothing behind."""

    @abc.abstractmethod
    async def spawn(self, instance: dict[str, Any], image_meta: dict[str, Any], *,
                    network_info: list[dict[str, Any]], block_device_info: dict[str, Any] | None = None,
                    admin_password: str | None = None) -> None:
        """Create and start the guest; on return it is RUNNING.

        On failure it raises and leaves nothing behind (no guest, no disk, no console log), so the build
        can be retried on another host; ``ImageUnacceptable`` (or ``BuildAbortException``) says no host could
        succeed, and the build is not retried.
        """

    @abc.abstractmethod
    async def destroy(self, instance: dict[str, Any], *, network_info: list[dict[str, Any]],
                      destroy_disks: bool = True) -> None:
        """Stop the guest and remove it (and its disks when asked); a guest that is already gone is fine."""

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

    async def cleanup_host(self) -> None:
        """Release the hypervisor connection; called at service stop."""
