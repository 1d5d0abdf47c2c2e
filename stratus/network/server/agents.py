"""``/v2.0/agents`` (admins only, as Neutron's default policy): the agents that reported, whether each is alive
(a report within ``[network_server] agent_down_time``), and their removal."""

from __future__ import annotations

import datetime
from typing import Any

from stratus.db import network as db
from stratus.network.server import attributes as a
from stratus.network.server import binding, errors, listing
from stratus.network.server.resource import NetworkRequest
from stratus.utils import utcnow

_ATTRS: dict[str, a.Attr] = {"admin_state_up": a.Attr(a.boolean, post=False),
                             "description": a.Attr(a.nullable(a.string(255)), post=False)}
VIEW_ATTRIBUTES = {"id", "agent_type", "binary", "topic", "host", "admin_state_up", "created_at", "started_at",
                   "heartbeat_timestamp", "description", "alive", "configurations", "availability_zone",
                   "resources_synced"}
_CONVERTERS: dict[str, listing.Converter] = {"admin_state_up": a.boolean, "alive": a.boolean}


def _time(value: datetime.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def view(agent: dict[str, Any], down_time: int, now: datetime.datetime) -> dict[str, Any]:
    return {"id": agent["id"], "agent_type": agent["agent_type"], "binary": agent["binary"], "topic": agent["topic"],
            "host": agent["host"], "admin_state_up": agent["admin_state_up"],
            "created_at": _time(agent["created_at"]), "started_at": _time(agent["started_at"]),
            "heartbeat_timestamp": _time(agent["heartbeat_timestamp"]), "description": agent["description"],
            "alive": binding.is_alive(agent, down_time, now), "configurations": agent["configurations"],
            "availability_zone": agent["availability_zone"], "resources_synced": None}


def _allowed(req: NetworkRequest, action: str) -> bool:
    return req.services.policy.check(req.ctx, action, {"project_id": req.ctx.project_id})


def _authorize(req: NetworkRequest, action: str) -> None:
    if not _allowed(req, action):
        raise errors.policy_denied([action])


async def _get(req: NetworkRequest, agent_id: str) -> dict[str, Any]:
    """The agent, or 404 when there is none or the caller may not see agents (as Neutron hides them)."""
    async with req.services.db.read() as conn:
        found = await db.agents(conn, id=agent_id)
    if not found or not _allowed(req, "get_agent"):
        raise errors.NeutronError(404, "AgentNotFound", f"Agent {agent_id} could not be found.")
    return found[0]


async def list_agents(req: NetworkRequest) -> dict[str, Any]:
    """Those the caller may see: none but for admins (Neutron filters a list by its get rule)."""
    async with req.services.db.read() as conn:
        found = await db.agents(conn) if _allowed(req, "get_agent") else []
    now, down = utcnow(), req.services.options.agent_down_time
    views = listing.filtered([view(x, down, now) for x in found], req.query, VIEW_ATTRIBUTES, _CONVERTERS)
    views, links = listing.page(req.full_url, "agent", views, req.query, VIEW_ATTRIBUTES,
                                req.services.options.pagination_max_limit)
    body: dict[str, Any] = {"agents": [listing.only_fields(v, req.query) for v in views]}
    if links:
        body["agents_links"] = links
    return body


async def show_agent(req: NetworkRequest) -> dict[str, Any]:
    agent = await _get(req, req.path["agent_id"])
    return {"agent": listing.only_fields(view(agent, req.services.options.agent_down_time, utcnow()), req.query)}


async def update_agent(req: NetworkRequest) -> dict[str, Any]:
    values = a.parse_body(await req.body(), "agent", _ATTRS, create=False)
    agent = await _get(req, req.path["agent_id"])
    _authorize(req, "update_agent")
    async with req.services.db.write() as conn:
        await db.update_agent(conn, agent["id"], values)
    agent.update(values)
    return {"agent": view(agent, req.services.options.agent_down_time, utcnow())}


async def delete_agent(req: NetworkRequest) -> None:
    agent = await _get(req, req.path["agent_id"])
    _authorize(req, "delete_agent")
    async with req.services.db.write() as conn:
        await db.delete_agent(conn, agent["id"])
