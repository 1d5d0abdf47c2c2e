"""Telling Nova about ports, as Neutron's nova notifier: ``network-vif-plugged`` when a port of a server becomes
ACTIVE, ``network-vif-unplugged`` when it goes DOWN, ``network-vif-deleted`` when it is deleted and
``network-changed`` when its addresses change, POSTed to ``/v2.1/os-server-external-events``.

Authenticated with Neutron's ``[nova]`` keystoneauth options (``auth_type``, ``auth_url``, ``username``, ...;
``region_name``, ``endpoint_type``); without them the all-in-one uses its own admin (the embedded identity's, or
the noauth2 admin) and its own compute API. The POSTs go in the background: the agent's RPC is answered first. A
failure, a 404 from a compute API without the events API among them, is logged and dropped, never raised.

When the compute API the endpoint names is served by this very process (the all-in-one), a POST is handed to that
application in-process (``stratus.network.in_process.call``), as the HTTP server would hand it: the same path,
the same token (``[nova]``'s or the deployment's admin's, found as over HTTP) checked by the same authentication
and policy (``os_compute_api:os-server-external-events:create``), the same answer, without a socket, a worker
thread and the HTTP parsing on both sides. A compute API elsewhere (a real Nova, another process) is POSTed to
over HTTP by keystoneauth (or httpx for noauth2) in a worker thread, keystoneauth being synchronous.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
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

#: one POST of a batch of events; its HTTP status
Post = Callable[[list[dict[str, Any]]], Awaitable[int]]


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
    """Sends the events; ``post`` does one POST (in-process or over HTTP: ``EventPoster``) and returns its status.

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
        """keystoneauth's session of ``[nova]``'s plugin when one is named, else ``fallback`` (this deployment's own
        admin and compute API), and then keystoneauth is not even imported."""
        options = conf[GROUP]
        if not (options.auth_type or options.auth_section):
            return cls(conf, fallback)
        from keystoneauth1 import exceptions as ks_exceptions

        try:
            session = session_from_conf(conf)
        except (ks_exceptions.ClientException, cfg.Error) as exc:
            LOG.error("[nova] auth options unusable, Nova is not told of ports: %s", exc)
            return cls(conf, None)
        if session is None:
            return cls(conf, fallback)
        return cls(conf, EventPoster(SessionTarget(lambda: session, options.endpoint_type, options.region_name)))

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
            status = await self.post(events)
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


class Target(ABC):
    """Where the events go and as whom: the compute API's root URL and a token it takes (found by blocking calls,
    keystoneauth's), and the POST over HTTP to a compute API that is not this process's."""

    @abstractmethod
    def endpoint(self) -> str:
        """The compute API's root URL (``http://127.0.0.1:8774/v2.1``)."""

    @abstractmethod
    def cached_token(self) -> str | None:
        """The token when it is at hand without a blocking call (not about to expire), else None."""

    @abstractmethod
    def token(self) -> str:
        """A token, fetched if need be (blocking)."""

    def invalidate(self) -> None:
        """The token was refused (401): the next one is fetched anew."""

    @abstractmethod
    def http_post(self, events: list[dict[str, Any]]) -> int:
        """The POST over HTTP (blocking); its status."""


class NoAuthTarget(Target):
    """noauth2's admin (``admin:admin``, a token its authentication takes as such) and a known compute URL."""

    TOKEN = "admin:admin"

    def __init__(self, compute_url: str) -> None:
        self.compute_url = compute_url.rstrip("/")
        self._client: Any = None

    def endpoint(self) -> str:
        return self.compute_url

    def cached_token(self) -> str | None:
        return self.TOKEN

    def token(self) -> str:
        return self.TOKEN

    def http_post(self, events: list[dict[str, Any]]) -> int:
        if self._client is None:
            import httpx

            # one pooled client (thread-safe): a new one per event built a TLS context each time, a quarter of
            # the process's CPU while servers were booting on networks
            self._client = httpx.Client(headers={"X-Auth-Token": self.TOKEN}, timeout=30, trust_env=False)
        resp = self._client.post(self.compute_url + "/os-server-external-events", json={"events": events})
        return int(resp.status_code)


class SessionTarget(Target):
    """A keystoneauth session (made when first needed): its token, the compute endpoint of its catalog."""

    def __init__(self, make_session: Callable[[], ks_session.Session], interface: str,
                 region_name: str | None) -> None:
        self._make_session = make_session
        self._session: ks_session.Session | None = None
        self.endpoint_filter = {"service_type": "compute", "interface": interface, "region_name": region_name}

    @property
    def session(self) -> ks_session.Session:
        if self._session is None:
            self._session = self._make_session()
        return self._session

    def endpoint(self) -> str:
        from keystoneauth1 import exceptions as ks_exceptions

        url = self.session.get_endpoint(**self.endpoint_filter)
        if not url:
            raise ks_exceptions.EndpointNotFound("the service catalog has no compute endpoint")
        return str(url)

    def cached_token(self) -> str | None:
        ref = getattr(self._session.auth, "auth_ref", None) if self._session is not None else None
        if ref is None or ref.will_expire_soon():
            return None
        return str(ref.auth_token)

    def token(self) -> str:
        from keystoneauth1 import exceptions as ks_exceptions

        token = self.session.get_token()
        if not token:
            raise ks_exceptions.AuthorizationFailure("[nova] auth gave no token")
        return str(token)

    def invalidate(self) -> None:
        self.session.invalidate()

    def http_post(self, events: list[dict[str, Any]]) -> int:
        resp = self.session.post("/os-server-external-events", json={"events": events}, raise_exc=False,
                                 endpoint_filter=self.endpoint_filter)
        return int(resp.status_code)


class EventPoster:
    """The ``Post`` of a ``Target``: in-process when this process serves the compute API its endpoint names, over
    HTTP (in a worker thread) otherwise. The endpoint is looked up at the first POST (the compute API of the same
    process is served by then) and again after a failed lookup."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._chosen = False
        self._app: Any = None  # the ASGI application of this process's compute API, when the endpoint is it
        self._path = ""
        self._host = b""

    @property
    def in_process(self) -> bool | None:
        """Whether the events go in-process (None until the first POST chose)."""
        return (self._app is not None) if self._chosen else None

    async def __call__(self, events: list[dict[str, Any]]) -> int:
        if not self._chosen:
            await self._choose()
        if self._app is None:
            return await asyncio.to_thread(self.target.http_post, events)
        return await self._in_process(events)

    async def _choose(self) -> None:
        import urllib.parse

        from stratus.network import in_process

        target = self.target
        endpoint = target.endpoint() if isinstance(target, NoAuthTarget) else await asyncio.to_thread(
            target.endpoint)
        self._app = in_process.served_at(endpoint)
        self._chosen = True
        if self._app is None:
            LOG.info("the compute API at %s is elsewhere: Nova's events go over HTTP", endpoint)
            return
        parts = urllib.parse.urlsplit(endpoint)
        self._path = parts.path.rstrip("/") + "/os-server-external-events"
        self._host = parts.netloc.encode()
        LOG.info("the compute API at %s is this process's own: Nova's events go in-process", endpoint)

    async def _in_process(self, events: list[dict[str, Any]]) -> int:
        """The POST an HTTP client sends, to the application itself; a refused token (401) is fetched anew and
        the POST made once more, as keystoneauth does over HTTP."""
        import orjson

        from stratus.network import in_process

        body = orjson.dumps({"events": events})
        status = await in_process.call(self._app, "POST", self._path, "", self._headers(await self._token(), body),
                                       body)
        if status[0] == 401:
            self.target.invalidate()
            token = await asyncio.to_thread(self.target.token)
            status = await in_process.call(self._app, "POST", self._path, "", self._headers(token, body), body)
        return status[0]

    async def _token(self) -> str:
        return self.target.cached_token() or await asyncio.to_thread(self.target.token)

    def _headers(self, token: str, body: bytes) -> list[tuple[bytes, bytes]]:
        return [(b"host", self._host), (b"x-auth-token", token.encode()), (b"accept", b"application/json"),
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]


def noauth_post(compute_url: str) -> EventPoster:
    """POST as noauth2's admin to the deployment's own compute API."""
    return EventPoster(NoAuthTarget(compute_url))


def password_post(auth_url: str, username: str, password: Callable[[], str], interface: str,
                  region_name: str | None) -> EventPoster:
    """POST as the embedded identity's admin (password read when first needed), the endpoint from its catalog."""

    def session() -> ks_session.Session:
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3

        auth = v3.Password(auth_url=auth_url, username=username, password=password(), project_name="admin",
                           user_domain_name="Default", project_domain_name="Default")
        return ks_session.Session(auth=auth)

    return EventPoster(SessionTarget(session, interface, region_name))


def read_secret(state_path: str, name: str) -> str:
    with open(f"{state_path}/{name}") as f:
        return f.read().strip()
