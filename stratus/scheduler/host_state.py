"""What the scheduler knows of one host (one compute node): a view into the host manager's arrays.

Capacity and usage live in the host manager's numpy arrays so that fitting, filtering and weighing ten
thousand hosts are a few vector operations; a ``HostState`` reads its own row of them, with the attribute
names Nova's ``HostState`` has, so per-host filters read like Nova's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stratus.db.placement import DISK_GB, MEMORY_MB, VCPU

if TYPE_CHECKING:
    from stratus.scheduler.host_manager import HostManager


class HostState:
    __slots__ = ("aggregates", "availability_zone", "cpu_info", "host", "host_ip", "hypervisor_hostname",
                 "hypervisor_type", "hypervisor_version", "index", "manager", "nodename", "provider_id",
                 "provider_uuid", "service_id", "stats", "supported_instances")

    def __init__(self, manager: HostManager, index: int, *, host: str, nodename: str, provider_id: int,
                 provider_uuid: str, service_id: int) -> None:
        self.manager = manager
        self.index = index
        self.host = host
        self.nodename = nodename
        self.hypervisor_hostname = nodename
        self.provider_id = provider_id
        self.provider_uuid = provider_uuid
        self.service_id = service_id
        self.hypervisor_type = ""
        self.hypervisor_version = 0
        self.host_ip: str | None = None
        self.cpu_info: dict[str, Any] = {}
        self.supported_instances: list[tuple[str, str, str]] = []
        self.stats: dict[str, Any] = {}
        #: metadata of every aggregate the host belongs to (Nova filters read ``aggregate.metadata``)
        self.aggregates: list[Mapping[str, str]] = []
        self.availability_zone = ""

    def __repr__(self) -> str:
        return f"HostState({self.host!r}, {self.nodename!r})"

    # --- placement view --------------------------------------------------------------------------------
    def _col(self, rc: str) -> int | None:
        return self.manager.rc_index.get(rc)

    def capacity(self, rc: str) -> int:
        col = self._col(rc)
        return 0 if col is None else int(self.manager.capacity[col, self.index])

    def used(self, rc: str) -> int:
        col = self._col(rc)
        return 0 if col is None else int(self.manager.used[col, self.index])

    def free(self, rc: str) -> int:
        return self.capacity(rc) - self.used(rc)

    @property
    def generation(self) -> int:
        return int(self.manager.generation[self.index])

    @property
    def usages(self) -> dict[str, int]:
        return {rc: self.used(rc) for rc in self.manager.rc_index}

    # --- Nova's HostState attribute names ----------------------------------------------------------------
    @property
    def free_ram_mb(self) -> int:
        return self.free(MEMORY_MB)

    @property
    def total_usable_ram_mb(self) -> int:
        return self.capacity(MEMORY_MB)

    @property
    def free_disk_mb(self) -> int:
        return self.free(DISK_GB) * 1024

    @property
    def total_usable_disk_gb(self) -> int:
        return self.capacity(DISK_GB)

    @property
    def vcpus_total(self) -> int:
        return self.capacity(VCPU)

    @property
    def vcpus_used(self) -> int:
        return self.used(VCPU)

    @property
    def num_instances(self) -> int:
        return int(self.manager.num_instances[self.index])

    @property
    def num_io_ops(self) -> int:
        return int(self.manager.io_ops[self.index])

    @property
    def failed_builds(self) -> int:
        return int(self.manager.failed_builds[self.index])

    @property
    def service_up(self) -> bool:
        return bool(self.manager.service_up[self.index])

    @property
    def service_disabled(self) -> bool:
        return bool(self.manager.service_disabled[self.index])
