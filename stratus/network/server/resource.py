"""What every handler of the Networking API works with: the deployment's parts (``NetworkServices``) and one
request (``NetworkRequest``: the caller, the query, the JSON body), plus the standard attributes Neutron gives
every resource (project, description, tags, timestamps, revision)."""

from __future__ import annotations

import dataclasses
import datetime
import functools
from typing import Any

import orjson
from oslo_config import cfg
from starlette.requests import Request

from stratus.context import RequestContext
from stratus.db.engine import Database
from stratus.network.server import errors
from stratus.network.server.policy import NetworkPolicy
from stratus.utils import utcnow

MAX_JSON_DEPTH = 32


@dataclasses.dataclass
class NetworkServices:
    conf: cfg.ConfigOpts
    db: Database
    policy: NetworkPolicy
    notifier: Any = None  # stratus.network.server.notify.Notifier: agents and Nova told of changes

    @property
    def options(self) -> Any:
        return self.conf.network_server

    @functools.cached_property
    def zones(self) -> list[str]:
        """``[network_server] default_availability_zones``, read once: every network's view shows them, and an
        option read through oslo.config costs more than the view."""
        return list(self.options.default_availability_zones)

    @functools.cached_property
    def page_limit(self) -> int:
        """``[network_server] pagination_max_limit``, read once (every list pages by it)."""
        return int(self.options.pagination_max_limit)


class NetworkRequest:
    def __init__(self, request: Request, ctx: RequestContext, services: NetworkServices) -> None:
        self.request = request
        self.ctx = ctx
        self.services = services
        self.query = request.query_params
        self.path = dict(request.path_params)
        self._body: Any = None

    def derived(self, body: Any = None, **path: str) -> NetworkRequest:
        """The same request with another body (one item of a bulk create) or path (its undoing)."""
        other = NetworkRequest(self.request, self.ctx, self.services)
        other._body = body
        other.path.update(path)
        return other

    def full_url(self) -> str:
        """The request's URL (building it costs more than a small list's answer: asked for when needed)."""
        return str(self.request.url)

    async def body(self) -> Any:
        if self._body is not None:
            return self._body
        raw = await self.request.body()  # its size is bounded by the size limit in front of the API
        if not raw:
            raise errors.bad_request("Resource body required")
        if b"\\u0000" in raw:  # PostgreSQL stores no NUL in text
            raise errors.bad_request("NUL characters are not allowed in the request body")
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise errors.bad_request("Malformed request body") from None
        if _depth(value) > MAX_JSON_DEPTH:
            raise errors.bad_request(f"Request body nests more than {MAX_JSON_DEPTH} levels")
        return value

    def enforce(self, action: str, target: dict[str, Any], attributes: Any = ()) -> None:
        self.services.policy.enforce(self.ctx, action, target, attributes)

    def project_of(self, given: dict[str, Any]) -> str:
        """The project a create is for: the caller's, or for an admin the ``project_id``/``tenant_id`` given."""
        tenant, project = given.pop("tenant_id", None), given.pop("project_id", None)
        if tenant is not None and project is not None and tenant != project:
            raise errors.bad_request("'project_id' and 'tenant_id' do not match")
        wanted = project if project is not None else tenant
        if wanted is None or wanted == self.ctx.project_id:
            return self.ctx.project_id
        if not self.ctx.is_admin:
            raise errors.bad_request("Specifying 'project_id' or 'tenant_id' other than the authenticated project "
                                     "in request requires admin privileges")
        return str(wanted)


def _depth(value: Any) -> int:
    deepest, pending = 0, [(value, 0)]
    while pending and deepest <= MAX_JSON_DEPTH:
        item, level = pending.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            pending += [(v, level + 1) for v in item.values()]
        elif isinstance(item, list):
            pending += [(v, level + 1) for v in item]
    return deepest


def timestamp(value: datetime.datetime | None) -> str | None:
    """Neutron's ``2026-01-02T03:04:05Z`` of a stored (naive UTC) time: ``isoformat``, a third of ``strftime``'s
    cost (every view shows two)."""
    if value is None:
        return None
    if value.tzinfo is not None or value.year < 1000:  # not a stored time: strftime spells it as before
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat(timespec="seconds") + "Z"


def new_standard(project_id: str) -> dict[str, Any]:
    now = utcnow()
    return {"project_id": project_id, "created_at": now, "updated_at": now, "revision_number": 0, "tags": []}


def touch(record: dict[str, Any]) -> None:
    """An update: a new revision and updated_at (Neutron's standard attributes)."""
    record["revision_number"] = int(record.get("revision_number") or 0) + 1
    record["updated_at"] = utcnow()


def standard_view(record: dict[str, Any]) -> dict[str, Any]:
    return {"tenant_id": record["project_id"], "project_id": record["project_id"],
            "description": record.get("description", ""), "tags": list(record.get("tags") or []),
            "created_at": timestamp(record["created_at"]), "updated_at": timestamp(record.get("updated_at")),
            "revision_number": record.get("revision_number", 0)}


STANDARD_ATTRIBUTES = {"tenant_id", "project_id", "description", "tags", "created_at", "updated_at",
                       "revision_number"}
