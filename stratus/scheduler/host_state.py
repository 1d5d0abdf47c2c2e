"""What the scheduler knows of one host: its provider's capacity and usage, and its service's health."""

from __future__ import annotations

import dataclasses
from typing import Any

from stratus.db import placement


@dataclasses.dataclass
class HostState:
    host: str
    nodename: str
    provider_id: int
    provider_uuid: str
    inventories: dict[str, dict[str, Any]]
    usages: dict[str, int]
    service_up: bool
    service_disabled: bool
    availability_zone: str = "nova"

    def free(self, rc: str) -> int:
        inv = self.inventories.get(rc)
        if inv is None:
            return 0
        return placement.capacity(inv) - self.usages.get(rc, 0)

    def fits(self, resources: dict[str, int]) -> bool:
        return placement.fits({"inventories": self.inventories, "usages": self.usages}, resources)

    def consume(self, resources: dict[str, int]) -> None:
        for rc, amount in resources.items():
            self.usages[rc] = self.usages.get(rc, 0) + amount
