"""Every route of the compute API in one table, assembled from the resource modules.

Paths are relative to ``/v2.1``; each module declares its routes next to its handlers.
"""

from __future__ import annotations

from stratus.api import (
    aggregates,
    availability_zones,
    extensions,
    flavor_access,
    flavors,
    flavors_extraspecs,
    gone,
    hypervisors,
    image_metadata,
    images,
    instance_actions,
    instance_usage_audit_log,
    keypairs,
    limits,
    os_hosts,
    quota_classes,
    quota_sets,
    server_actions,
    server_groups,
    server_metadata,
    server_tags,
    server_topology,
    servers,
    services_api,
    simple_tenant_usage,
)
from stratus.api.router import Route

ROUTES: list[Route] = [
    *flavors.ROUTES,
    *flavors_extraspecs.ROUTES,
    *flavor_access.ROUTES,
    *keypairs.ROUTES,
    *aggregates.ROUTES,
    *server_groups.ROUTES,
    *limits.ROUTES,
    *quota_sets.ROUTES,
    *quota_classes.ROUTES,
    *servers.ROUTES,
    *server_actions.ROUTES,
    *server_metadata.ROUTES,
    *server_tags.ROUTES,
    *server_topology.ROUTES,
    *instance_actions.ROUTES,
    *services_api.ROUTES,
    *hypervisors.ROUTES,
    *availability_zones.ROUTES,
    *gone.ROUTES,
    *extensions.ROUTES,
    *simple_tenant_usage.ROUTES,
    *instance_usage_audit_log.ROUTES,
    *os_hosts.ROUTES,
    *images.ROUTES,
    *image_metadata.ROUTES,
]
