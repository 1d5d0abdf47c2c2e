"""The collaborators the API needs, injected once at start-up (no globals, no patching in tests)."""

from __future__ import annotations

import dataclasses

from oslo_config import cfg

from stratus.api.server_cache import RenderedServers
from stratus.db.engine import Database
from stratus.identity.auth import Authenticator
from stratus.image.client import ImageClient
from stratus.network.neutron import API as NetworkAPI
from stratus.rpc.transport import Transport


@dataclasses.dataclass
class ApiServices:
    conf: cfg.ConfigOpts
    db: Database
    transport: Transport
    auth: Authenticator
    images: ImageClient
    #: Nova's network API on the Networking service; None when none is configured (servers get no ports)
    network: NetworkAPI | None = None
    #: the detail listing's bodies, kept while what they are made of is unchanged (api/server_cache.py)
    rendered: RenderedServers = dataclasses.field(default_factory=RenderedServers)
