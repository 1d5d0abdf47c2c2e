"""``GET /limits``: the project's absolute limits and what it uses, in Nova's names. ``rate`` is always empty.

2.36 drops the nova-network items (floating IPs, security groups), 2.39 ``maxImageMeta`` and 2.57 the personality
limits (``maxPersonality``, ``maxPersonalitySize``), as Nova does.
Admins may read another project's limits with ``?tenant_id=``.
"""

from __future__ import annotations

from starlette.responses import Response

from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, json_response
from stratus.api.router import Route
from stratus.db import quotas
from stratus.identity.policy import authorize

_V236 = APIVersion.parse("2.36")  # no more proxy (network) limits
_V239 = APIVersion.parse("2.39")  # no more image metadata limit
_V257 = APIVersion.parse("2.57")  # no more personality (injected files) limits

# Quota resource -> the limit names it is reported under.
ABSOLUTE_NAMES = {
    "ram": ["maxTotalRAMSize"],
    "instances": ["maxTotalInstances"],
    "cores": ["maxTotalCores"],
    "key_pairs": ["maxTotalKeypairs"],
    "floating_ips": ["maxTotalFloatingIps"],
    "metadata_items": ["maxServerMeta", "maxImageMeta"],
    "injected_files": ["maxPersonality"],
    "injected_file_content_bytes": ["maxPersonalitySize"],
    "security_groups": ["maxSecurityGroups"],
    "security_group_rules": ["maxSecurityGroupRules"],
    "server_groups": ["maxServerGroups"],
    "server_group_members": ["maxServerGroupMembers"],
}
# Usage name -> quota resource. nova-network resources are never used here: always 0.
USED_NAMES = {
    "totalRAMUsed": "ram",
    "totalCoresUsed": "cores",
    "totalInstancesUsed": "instances",
    "totalFloatingIpsUsed": "floating_ips",
    "totalSecurityGroupsUsed": "security_groups",
    "totalServerGroupsUsed": "server_groups",
}
_NETWORK = {"floating_ips", "security_groups", "security_group_rules"}
_PERSONALITY = {"injected_files", "injected_file_content_bytes"}


def build(hard: dict[str, int], used: dict[str, int], with_network: bool, with_image_meta: bool,
          with_personality: bool) -> dict[str, int]:
    """The ``absolute`` dict for a version: limits first, then usage."""
    absolute: dict[str, int] = {}
    for resource, names in ABSOLUTE_NAMES.items():
        if (resource in _NETWORK and not with_network) or (resource in _PERSONALITY and not with_personality):
            continue
        for name in names:
            if name != "maxImageMeta" or with_image_meta:
                absolute[name] = hard[resource]
    for name, resource in USED_NAMES.items():
        if resource not in _NETWORK or with_network:
            absolute[name] = used.get(resource, 0)
    return absolute


async def index(req: ApiRequest) -> Response:
    ctx = req.context
    authorize(ctx, "os_compute_api:limits", {})
    project_id = ctx.project_id
    if "tenant_id" in req.query:
        project_id = req.query.getlist("tenant_id")[0]
        authorize(ctx, "os_compute_api:limits:other_project", {"project_id": project_id})
    async with req.services.db.read() as conn:
        hard = await quotas.limits(conn, req.services.conf, project_id)
        used = await quotas.usage(conn, project_id)
    absolute = build(hard, used, with_network=not req.at_least(_V236), with_image_meta=not req.at_least(_V239),
                     with_personality=not req.at_least(_V257))
    return json_response({"limits": {"rate": [], "absolute": absolute}})


ROUTES: list[Route] = [Route("/limits", "GET", index)]
