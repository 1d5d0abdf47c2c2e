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
from typing import Any

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ks_session
from oslo_config import cfg

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

Post = Callable[[list[dict[str, Any]]], int]


def session_from_conf(conf: cfg.ConfigOpts) -> ks_session.Session | None:
    """A keystoneauth session of ``[nova]``'s auth options; None when ``auth_type`` is not set."""
    ks_loading.register_auth_conf_options(conf, GROUP)
    ks_loading.register_session_conf_options(conf, GROUP)
    auth = ks_loading.load_auth_from_conf_options(conf, GROUP)
    if auth is None:
        return None
    return ks_loading.load_session_from_conf_options(conf, GROUP, auth=auth)


class NovaNotifier:
    """Sends the events; ``post`` does one POST (in a thread) and returns the HTTP status."""

    def __init__(self, conf: cfg.ConfigOpts, post: Post | None) -> None:
        self.conf = conf
        self.post = post
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, fallback: Post | None) -> NovaNotifier:
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
        task = asyncio.get_running_loop().create_task(self._send(events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def event(name: str, port: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {"name": name, "server_uuid": port["device_id"], "tag": port["id"], "status": status}


def is_server_port(port: dict[str, Any]) -> bool:
    return bool(port.get("device_id")) and str(port.get("device_owner", "")).startswith("compute:")


def noauth_post(compute_url: str) -> Post:
    """POST as noauth2's admin to the deployment's own compute API."""
    import httpx

    # one pooled client for every event: a client per POST costs a TLS context and a connection each time
    client = httpx.Client(timeout=30)

    def post(events: list[dict[str, Any]]) -> int:
        resp = client.post(compute_url + "/os-server-external-events", json={"events": events},
                           headers={"X-Auth-Token": "admin:admin"})
        return resp.status_code

    return post


def password_post(auth_url: str, username: str, password: Callable[[], str], interface: str,
                  region_name: str | None) -> Post:
    """POST as the embedded identity's admin (password read when first needed), the endpoint from its catalog."""
    from keystoneauth1.identity import v3

    sessions: list[ks_session.Session] = []

    def post(events: list[dict[str, Any]]) -> int:
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
