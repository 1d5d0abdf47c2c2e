"""Telling Nova about ports, as Neutron's nova notifier: ``network-vif-plugged`` when a port of a server becomes
ACTIVE, ``network-vif-unplugged`` when it goes DOWN, ``network-vif-deleted`` when it is deleted and
``network-changed`` when its addresses change, POSTed to ``/v2.1/os-server-external-events``.

Authenticated with Neutron's ``[nova]`` keystoneauth options (``auth_type``, ``auth_url``, ``username``, ...;
``region_name``, ``endpoint_type``); without them the all-in-one uses its own admin (the embedded identity's, or
the noauth2 admin) and its own compute API. Each POST runs in a worker thread (keystoneauth is synchronous) in the
background: the agent's RPC is answered first. A failure, a 404 from a compute API without the events API among
them, is logged and dropped, never raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

if TYPE_CHECKING:
    from keystoneauth1 import session as ks_session

LOG = logging.getLogger(__name__)
GROUP = "nova"
OPTS = [
    cfg.StrOpt("region_name", default=None, help="Region of the compute endpoint in the catalog (Neutron's [nova] "
                                                  "region_name)."),
    cfg.StrOpt("endpoint_type", default="public", choices=["public", "admin", "internal"],
               help="Interface of the compute endpoint in the catalog (Neutron's [nova] endpoint_type)."),
    cfg.BoolOpt("notify_nova_on_port_status_changes", default=True,
                help="Send network-vif-plugged/unplugged when a server's port goes ACTIVE or DOWN (Neutron's "
                     "[DEFAULT] option)."),
    cfg.BoolOpt("notify_nova_on_port_data_changes", default=True,
                help="Send network-changed/network-vif-deleted when a server's port changes or goes (Neutron's "
                     "[DEFAULT] option)."),
]

#: events in one POST at most: well inside the compute API's request size limit (``[oslo_middleware]
#: max_request_body_size``, 114688 bytes; an event is under 200)
MAX_BATCH = 200

Post = Callable[[list[dict[str, Any]]], int]


def session_from_conf(conf: cfg.ConfigOpts) -> ks_session.Session | None:
    """A keystoneauth session of ``[nova]``'s auth options; None when ``auth_type`` is not set."""
    from keystoneauth1 import loading as ks_loading

    ks_loading.register_auth_conf_options(conf, GROUP)
    ks_loading.register_session_conf_options(conf, GROUP)
    auth = ks_loading.load_auth_from_conf_options(conf, GROUP)
    if auth is None:
        return None
    return ks_loading.load_session_from_conf_options(conf, GROUP, auth=auth)


class NovaNotifier:
    """Sends the events; ``post`` does one POST (in a thread) and returns the HTTP status.

    Events are batched as Neutron's ``BatchNotifier`` does: the first goes at once, and those that come while a
    POST is on its way go together in the next one (``os-server-external-events`` takes a list, for any servers),
    so a burst of ports going ACTIVE costs a few POSTs, not one each. Unlike Neutron's ``send_events_interval``
    (2 s by default), there is no wait after a POST: a build waits for its ``network-vif-plugged``."""

    def __init__(self, conf: cfg.ConfigOpts, post: Post | None) -> None:
        self.conf = conf
        self.post = post
        self._pending: list[dict[str, Any]] = []
        self._sender: asyncio.Task[None] | None = None

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, fallback: Post | None) -> NovaNotifier:
        from keystoneauth1 import exceptions as ks_exceptions

        try:
            session = session_from_conf(conf)
        except (ks_exceptions.ClientException, cfg.Error) as exc:
            LOG.error("[nova] auth options unusable, Nova is not told of ports: %s", exc)
            return cls(conf, None)
        if session is None:
            return cls(conf, fallback)
        options = conf[GROUP]

        def post(events: list[dict[str, Any]]) -> int:
            resp = session.post("/os-server-external-events", json={"events": events}, raise_exc=False,
                                endpoint_filter={"service_type": "compute", "interface": options.endpoint_type,
                                                 "region_name": options.region_name})
            return int(resp.status_code)

        return cls(conf, post)

    def send(self, events: list[dict[str, Any]]) -> None:
        if self.post is None or not events:
            return
        self._pending += events
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_pending())

    async def _send_pending(self) -> None:
        """POST what is pending, again while more came meanwhile (one sender at a time, so events keep their
        order)."""
        while self._pending:
            events, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            await self._send(events)

    async def _send(self, events: list[dict[str, Any]]) -> None:
        assert self.post is not None
        try:
            status = await asyncio.to_thread(self.post, events)
        except Exception as exc:
            LOG.warning("could not send %s to Nova: %s", [e["name"] for e in events], exc)
            return
        if status == 404:
            LOG.warning("Nova answered 404 to os-server-external-events %s (no such API or server): ignored",
                        [(e["name"], e["server_uuid"]) for e in events])
        elif status >= 400:
            LOG.warning("Nova answered %s to os-server-external-events %s", status, events)
        else:
            LOG.info("Nova told: %s", [(e["name"], e["server_uuid"], e.get("tag")) for e in events])

    async def drain(self) -> None:
        while self._sender is not None and not self._sender.done():
            await asyncio.gather(self._sender, return_exceptions=True)


def event(name: str, port: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {"name": name, "server_uuid": port["device_id"], "tag": port["id"], "status": status}


def is_server_port(port: dict[str, Any]) -> bool:
    return bool(port.get("device_id")) and str(port.get("device_owner", "")).startswith("compute:")


def noauth_post(compute_url: str) -> Post:
    """POST as noauth2's admin to the deployment's own compute API."""
    import httpx

    # one pooled client (thread-safe): a new one per event built a TLS context each time, a quarter of the
    # process's CPU while servers were booting on networks
    client = httpx.Client(headers={"X-Auth-Token": "admin:admin"}, timeout=30, trust_env=False)

    def post(events: list[dict[str, Any]]) -> int:
        resp = client.post(compute_url + "/os-server-external-events", json={"events": events})
        return resp.status_code

    return post


def password_post(auth_url: str, username: str, password: Callable[[], str], interface: str,
                  region_name: str | None) -> Post:
    """POST as the embedded identity's admin (password read when first needed), the endpoint from its catalog."""
    sessions: list[ks_session.Session] = []

    def post(events: list[dict[str, Any]]) -> int:
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3

        if not sessions:
            auth = v3.Password(auth_url=auth_url, username=username, password=password(), project_name="admin",
                               user_domain_name="Default", project_domain_name="Default")
            sessions.append(ks_session.Session(auth=auth))
        resp = sessions[0].post("/os-server-external-events", json={"events": events}, raise_exc=False,
                                endpoint_filter={"service_type": "compute", "interface": interface,
                                                 "region_name": region_name})
        return int(resp.status_code)

    return post


def read_secret(state_path: str, name: str) -> str:
    with open(f"{state_path}/{name}") as f:
        return f.read().strip()
