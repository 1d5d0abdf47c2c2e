"""Quotas of the networking service: ``/v2.0/quotas`` (Neutron's ``quotas`` and ``quota_details``), limits per
project over the ``[quotas]`` defaults, and their enforcement: a create that would pass a limit is 409
``OverQuota``. Counting happens in the create's write transaction (SQLite serialises writers; on PostgreSQL two
creates racing for the last unit may both pass, as with Neutron's own counting without reservations)."""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from stratus.db import network as db
from stratus.db.engine import Connection
from stratus.network.server import attributes as a
from stratus.network.server import errors
from stratus.network.server.options import QUOTA_GROUP as GROUP
from stratus.network.server.options import QUOTA_RESOURCES as RESOURCES
from stratus.network.server.resource import NetworkRequest


def defaults(conf: cfg.ConfigOpts) -> dict[str, int]:
    return {name: int(conf[GROUP][f"quota_{name}"]) for name in RESOURCES}


async def limits(req: NetworkRequest, conn: Connection, project_id: str) -> dict[str, int]:
    return {**defaults(req.services.conf), **(await db.quotas_of(conn, project_id)).get(project_id, {})}


async def check(req: NetworkRequest, conn: Connection, resource: str, project_id: str, adding: int = 1) -> None:
    """409 OverQuota when ``project_id`` would have more ``resource`` than its limit (its own, else the default;
    both and the count read in one statement)."""
    own, used = await db.limit_and_count(conn, resource, project_id)
    enforce(req, resource, own, used, adding)


def enforce(req: NetworkRequest, resource: str, own: int | None, used: int, adding: int = 1) -> None:
    """:func:`check` with the project's own limit (None: the default) and count read already."""
    limit = int(req.services.conf[GROUP][f"quota_{resource}"]) if own is None else own
    if limit >= 0 and used + adding > limit:
        raise errors.conflict("OverQuota", f"Quota exceeded for resources: ['{resource}'].")


def _authorize(req: NetworkRequest, action: str, project_id: str) -> None:
    if not req.services.policy.check(req.ctx, action, {"project_id": project_id, "tenant_id": project_id}):
        if action == "get_quota":
            raise errors.NeutronError(404, "HTTPNotFound", "The resource could not be found.")
        raise errors.policy_denied([action])


def _body(project_id: str, values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "project_id": project_id, "tenant_id": project_id}


async def list_quotas(req: NetworkRequest) -> dict[str, Any]:
    """The projects with limits of their own (admins), each with all its limits."""
    if not req.ctx.is_admin:
        raise errors.policy_denied(["get_quota"])
    async with req.services.db.read() as conn:
        found = await db.quotas_of(conn)
    base = defaults(req.services.conf)
    return {"quotas": [_body(p, {**base, **v}) for p, v in sorted(found.items())]}


async def show_quota(req: NetworkRequest) -> dict[str, Any]:
    project_id = req.path["project_id"]
    _authorize(req, "get_quota", project_id)
    async with req.services.db.read() as conn:
        return {"quota": await limits(req, conn, project_id)}


async def show_defaults(req: NetworkRequest) -> dict[str, Any]:
    project_id = req.path["project_id"]
    _authorize(req, "get_quota", project_id)
    return {"quota": defaults(req.services.conf)}


async def show_details(req: NetworkRequest) -> dict[str, Any]:
    """Each resource's limit and use; the project's own limits and its counts read in one statement (Nova asks
    the details before every boot on a network)."""
    project_id = req.path["project_id"]
    _authorize(req, "get_quota", project_id)
    async with req.services.db.read() as conn:
        own, counts = await db.limits_and_counts(conn, project_id, list(RESOURCES))
    found = {**defaults(req.services.conf), **own}
    return {"quota": {name: {"limit": limit, "used": counts[name], "reserved": 0} for name, limit in found.items()}}


async def update_quota(req: NetworkRequest) -> dict[str, Any]:
    project_id = req.path["project_id"]
    _authorize(req, "update_quota", project_id)
    attrs = {name: a.Attr(a.integer(-1, 2**31 - 1), post=False) for name in RESOURCES}
    values = a.parse_body(await req.body(), "quota", attrs, create=False)
    async with req.services.db.write() as conn:
        for name, limit in values.items():
            await db.set_quota(conn, project_id, name, limit)
        return {"quota": await limits(req, conn, project_id)}


async def delete_quota(req: NetworkRequest) -> None:
    project_id = req.path["project_id"]
    _authorize(req, "delete_quota", project_id)
    async with req.services.db.write() as conn:
        await db.delete_quotas(conn, project_id)
