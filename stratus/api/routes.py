"""Every route of the compute API in one table, assembled from the resource modules.

Paths are relative to ``/v2.1``; each module declares its routes next to its handlers.
"""

from __future__ import annotations

from stratus.api import (
    flavor_access,
    flavors,
    flavors_extraspecs,
    keypairs,
    limits,
    server_metadata,
    server_tags,
    servers,
)
from stratus.api.router import Route

ROUTES: list[Route] = [
    *flavors.ROUTES,
    *flavors_extraspecs.ROUTES,
    *flavor_access.ROUTES,
    *keypairs.ROUTES,
    *limits.ROUTES,
    *servers.ROUTES,
    *server_metadata.ROUTES,
    *server_tags.ROUTES,
]
