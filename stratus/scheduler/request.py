"""One scheduling request as the filters and weighers see it: the request spec plus what the database says
about the instances it names (the server group's members and the hosts of same_host/different_host hints)."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any

from sqlalchemy import select

from stratus.db import placement
from stratus.db.engine import Connection
from stratus.db.models import instance_group_members, instance_groups, instances

AFFINITY = "affinity"
ANTI_AFFINITY = "anti-affinity"
SOFT_AFFINITY = "soft-affinity"
SOFT_ANTI_AFFINITY = "soft-anti-affinity"


def resources_from_flavor(flavor: dict[str, Any]) -> dict[str, int]:
    """The resource classes a flavor asks for, as Nova's scheduler utils compute them."""
    disk = int(flavor.get("root_gb", 0)) + int(flavor.get("ephemeral_gb", 0))
    disk += math.ceil(int(flavor.get("swap", 0) or 0) / 1024)
    return {placement.VCPU: int(flavor["vcpus"]), placement.MEMORY_MB: int(flavor["memory_mb"]),
            placement.DISK_GB: disk}


def _uuids(hint: Any) -> list[str]:
    if hint is None:
        return []
    return [hint] if isinstance(hint, str) else [str(h) for h in hint]


@dataclasses.dataclass
class SchedulingRequest:
    spec: dict[str, Any]
    instance_uuids: list[str]
    resources: dict[str, int]
    extra_specs: dict[str, str]
    image_props: dict[str, Any]
    availability_zone: str | None = None
    force_hosts: list[str] = dataclasses.field(default_factory=list)
    force_nodes: list[str] = dataclasses.field(default_factory=list)
    #: Nova's ``requested_destination``: the host and node asked for at boot (2.74) or of a move (migrate ``host``,
    #: 2.56); unlike a forced host, the filters still have their say
    requested_host: str | None = None
    requested_node: str | None = None
    #: hosts this instance already failed to build on (a reschedule): never chosen again
    ignore_hosts: set[str] = dataclasses.field(default_factory=set)
    group_uuid: str | None = None
    group_policy: str | None = None
    group_rules: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: members of the server group per host, counting the hosts already chosen in this request
    group_hosts: Counter[str] = dataclasses.field(default_factory=Counter)
    #: hosts of the instances named by the same_host / different_host hints (None: no hint)
    same_host: set[str] | None = None
    different_host: set[str] | None = None

    @property
    def max_server_per_host(self) -> int:
        try:
            return max(1, int(self.group_rules.get("max_server_per_host", 1)))
        except (TypeError, ValueError):
            return 1

    def chose(self, host: str) -> None:
        """An instance of this request went to ``host``: later instances of it see it (Nova does the same)."""
        if self.group_policy:
            self.group_hosts[host] += 1


async def build(conn: Connection | None, spec: dict[str, Any], instance_uuids: list[str]) -> SchedulingRequest:
    """The request for ``spec``; ``conn`` is needed (and used) only when the spec names a group or instances."""
    flavor = spec.get("flavor") or {}
    image = spec.get("image") or {}
    req = SchedulingRequest(
        spec=spec, instance_uuids=list(instance_uuids),
        resources=spec.get("resources") or resources_from_flavor(flavor),
        extra_specs={str(k): str(v) for k, v in (flavor.get("extra_specs") or {}).items()},
        image_props={**(image.get("properties") or {}), **image},
        availability_zone=spec.get("availability_zone"),
        force_hosts=list(spec.get("force_hosts") or []), force_nodes=list(spec.get("force_nodes") or []),
        ignore_hosts=set(spec.get("ignore_hosts") or []),
        requested_host=spec.get("requested_host") or (spec.get("requested_destination") or {}).get("host"),
        requested_node=(spec.get("requested_destination") or {}).get("node"))
    hints = spec.get("scheduler_hints") or {}
    if conn is None:
        return req
    group = spec.get("instance_group")
    if group is None and hints.get("group"):
        row = (await conn.execute(select(instance_groups.c.uuid, instance_groups.c.policy, instance_groups.c.rules)
                                  .where(instance_groups.c.uuid == hints["group"]))).first()
        if row is not None:
            group = {"uuid": row.uuid, "policy": row.policy, "rules": row.rules or {}}
    if group:
        req.group_uuid = group["uuid"]
        req.group_policy = group.get("policy")
        req.group_rules = group.get("rules") or {}
        rows = await conn.execute(
            select(instances.c.host)
            .join(instance_group_members, instance_group_members.c.instance_uuid == instances.c.uuid)
            .join(instance_groups, instance_groups.c.id == instance_group_members.c.group_id)
            .where(instance_groups.c.uuid == req.group_uuid, instances.c.deleted == 0,
                   instances.c.host.is_not(None), instances.c.uuid.not_in(req.instance_uuids)))
        req.group_hosts = Counter(r.host for r in rows)
    for hint, attr in (("same_host", "same_host"), ("different_host", "different_host")):
        uuids = _uuids(hints.get(hint))
        if uuids:
            rows = await conn.execute(select(instances.c.host).where(
                instances.c.uuid.in_(uuids), instances.c.deleted == 0, instances.c.host.is_not(None)))
            setattr(req, attr, {r.host for r in rows})
    return req
