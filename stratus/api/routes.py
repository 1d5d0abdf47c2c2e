"""Every route of the compute API in one table, assembled from the resource modules.

Paths are relative to ``/v2.1``; each module declares its routes next to its handlers.
"""

from __future__ import annotations

from stratus.api import (
    aggregates,
    availability_zones,
    flavor_access,
    flavors,
    flavors_extraspecs,
    hypervisors,
    instance_actions,
    keypairs,
    limits,
    migrations,
    quota_classes,
    quota_sets,
    server_actions,
    server_diagnostics,
    server_groups,
    server_metadata,
    server_migrations,
    server_tags,
    servers,
    services_api,
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
    *server_diagnostics.ROUTES,
    *server_metadata.ROUTES,
    *server_tags.ROUTES,
    *instance_actions.ROUTES,
    *migrations.ROUTES,
    *server_migrations.ROUTES,
    *services_api.ROUTES,
    *hypervisors.ROUTES,
    *availability_zones.ROUTES,
]
