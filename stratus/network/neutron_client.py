"""The Networking service's HTTP API (Neutron v2.0), as Nova's ``neutronclient`` wrapper uses it.

Two kinds of caller, as in Nova's ``get_client``: the user (the request's own token, so Neutron applies its own
policy and visibility), and Nova itself (``admin=True``: the token of the ``[neutron]`` keystoneauth options, for
port binding and for acting on ports a user cannot see). The endpoint is ``[neutron] endpoint_override``, else the
service catalog's ``network`` endpoint for ``valid_interfaces`` and ``region_name``, found by keystoneauth.

keystoneauth is synchronous (requests): it is asked for a token and the endpoint in a worker thread and caches both
(the plugin renews the token before it expires); the requests themselves go through one pooled httpx client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import urllib.parse
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from oslo_config import cfg
from starlette.types import ASGIApp

from stratus import conf as conf_mod
from stratus import exception
from stratus.network import in_process

if TYPE_CHECKING:
    from keystoneauth1 import plugin as ks_plugin
    from keystoneauth1 import session as ks_session

# keystoneauth (2.4 MiB of an all-in-one) is imported by the functions that use it: at the first request that needs
# a service token or the catalog, not when a process that may never send one starts

LOG = logging.getLogger(__name__)
GROUP = "neutron"
#: the embedded service's port, Neutron's default (the all-in-one overrides endpoint_override with its own)
DEFAULT_PORT = 9696
#: Nova's own token towards a noauth2 deployment's Networking API: its admin
NOAUTH2_ADMIN_TOKEN = "admin:admin"
#: seconds the list of the service's extensions is trusted (Nova's neutron extension cache refresh)
EXTENSIONS_TTL = 600


class NeutronClientError(exception.StratusException):
    """An error answer of the Networking service: its status, ``NeutronError`` type and message."""

    msg_fmt = "%(message)s"

    def __init__(self, message: str | None = None, *, status: int = 500, type_: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status
        self.type = type_


class NeutronUnavailable(exception.StratusException):
    """Nova's ``NetworkServiceUnavailable`` family: the service cannot be reached or authenticated against."""

    msg_fmt = "The Networking service is unavailable: %(reason)s"
    code = 503


def configured(conf: cfg.ConfigOpts) -> bool:
    """Servers get ports only when a Networking service is configured: ``[neutron] auth_type`` or
    ``endpoint_override`` (the all-in-one sets the latter to the service it serves)."""
    return bool(conf.neutron.auth_type or conf.neutron.endpoint_override)


def _auth_plugin(conf: cfg.ConfigOpts) -> ks_plugin.BaseAuthPlugin:
    """``[neutron] auth_type`` and its options, as Nova loads them; without one (an all-in-one), the identity the
    compute API itself runs with: the embedded admin with ``[api] auth_strategy = embedded``, the ``admin``
    token of noauth2 otherwise (only ever pointed at the service the process serves)."""
    from keystoneauth1 import exceptions as ks_exceptions
    from keystoneauth1 import token_endpoint
    from keystoneauth1.identity import v3

    if conf.neutron.auth_type:
        try:
            auth: ks_plugin.BaseAuthPlugin = conf_mod.load_auth_plugin(conf, GROUP)
        except ks_exceptions.ClientException as exc:
            raise NeutronUnavailable(reason=f"[{GROUP}] auth_type {conf.neutron.auth_type}: {exc}") from None
        return auth
    if conf.api.auth_strategy == "embedded":
        path = os.path.join(conf.state_path, "admin-password")
        try:
            with open(path, encoding="utf-8") as f:
                password = f.read().strip()
        except OSError as exc:
            raise NeutronUnavailable(reason=f"no [{GROUP}] auth_type and no embedded admin password ({exc})") from None
        auth_url = f"http://127.0.0.1:{conf.identity.listen_port}/v3"
        return v3.Password(auth_url=auth_url, username="admin", password=password, project_name="admin",
                           user_domain_id="default", project_domain_id="default")
    if conf.api.auth_strategy == "noauth2":
        return token_endpoint.Token(conf.neutron.endpoint_override, NOAUTH2_ADMIN_TOKEN)
    raise NeutronUnavailable(reason=f"[{GROUP}] auth_type (and its options) are needed with [api] auth_strategy = "
                                    f"{conf.api.auth_strategy}: the identity Nova acts as towards the Networking "
                                    "service")


def _error(response: httpx.Response) -> NeutronClientError:
    """Neutron's ``{"NeutronError": {"type", "message", "detail"}}``, or whatever text a proxy answered."""
    type_, message = "", response.reason_phrase
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("NeutronError")
        if isinstance(err, dict):
            type_, message = str(err.get("type") or ""), str(err.get("message") or message)
        elif isinstance(err, str):
            message = err
        elif body.get("message"):
            message = str(body["message"])
    elif response.text.strip():
        message = response.text.strip()
    return NeutronClientError(message, status=response.status_code, type_=type_)


class NeutronClient:
    """Neutron's v2.0 resources over HTTP; a 4xx/5xx answer raises ``NeutronClientError``."""

    def __init__(self, conf: cfg.ConfigOpts, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.conf = conf
        opts = conf.neutron
        # configured options are checked at once; the all-in-one's own identity is found at the first request
        # (the embedded admin's password is written by the identity bootstrap, after this client is made)
        self._auth: ks_plugin.BaseAuthPlugin | None = _auth_plugin(conf) if opts.auth_type else None
        if self._auth is None and conf.api.auth_strategy == "keystone":
            _auth_plugin(conf)  # raises: a real Keystone needs [neutron] auth_type
        #: noauth2 without [neutron] auth_type: Nova's identity is the fixed ``admin`` token, known without
        #: keystoneauth (which _auth_plugin would import only to hand it back)
        self._fixed_token = NOAUTH2_ADMIN_TOKEN if not opts.auth_type and conf.api.auth_strategy == "noauth2" \
            else None
        self._ks_session: ks_session.Session | None = None  # made at its first use (_session)
        self._http = httpx.AsyncClient(timeout=opts.timeout or 60.0, transport=transport,
                                       verify=not opts.insecure and (opts.cafile or True),
                                       limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))
        self._endpoint: str | None = opts.endpoint_override.rstrip("/") if opts.endpoint_override else None
        self._transport_chosen = transport is not None  # else: in-process when the endpoint is this process's
        self._app: ASGIApp | None = None  # the application of this process's own endpoint (in_process.call)
        self._host = b""  # its Host header
        self._lock = asyncio.Lock()
        self._extensions: tuple[float, set[str]] | None = None

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._app is not None:
            await in_process.drain()

    @property
    def _session(self) -> ks_session.Session:
        """keystoneauth's session of the ``[neutron]`` TLS options and timeout, with the plugin once known."""
        if self._ks_session is None:
            from keystoneauth1 import session as ks_session

            opts = self.conf.neutron
            self._ks_session = ks_session.Session(auth=self._auth, verify=not opts.insecure and (opts.cafile or True),
                                                  timeout=opts.timeout)
        return self._ks_session

    def _plugin(self) -> ks_plugin.BaseAuthPlugin:
        if self._auth is None:
            self._auth = self._session.auth = _auth_plugin(self.conf)
        return self._auth

    def _invalidate(self) -> None:
        """The service token refused (401): the plugin forgets it, so the next ask fetches another."""
        if self._fixed_token is None:
            self._plugin().invalidate()

    async def _service_token(self) -> str:
        if self._fixed_token is not None:
            return self._fixed_token
        from keystoneauth1 import exceptions as ks_exceptions
        from keystoneauth1 import token_endpoint

        plugin = self._plugin()
        if isinstance(plugin, token_endpoint.Token):  # a fixed token: nothing to fetch, no thread
            return str(plugin.get_token(self._session))
        ref = getattr(plugin, "auth_ref", None)
        if ref is not None and not ref.will_expire_soon():  # cached by the plugin: no thread either
            return str(ref.auth_token)
        try:
            token = await asyncio.to_thread(plugin.get_token, self._session)
        except ks_exceptions.ClientException as exc:
            raise NeutronUnavailable(reason=f"cannot authenticate as [{GROUP}] says: {exc}") from exc
        if not token:
            raise NeutronUnavailable(reason=f"[{GROUP}] auth gave no token")
        return str(token)

    async def endpoint(self) -> str:
        """The Networking service's root URL (``http://host:9696``), found once."""
        if self._endpoint:
            return self._endpoint
        from keystoneauth1 import exceptions as ks_exceptions

        async with self._lock:
            if not self._endpoint:
                opts = self.conf.neutron
                try:
                    url = await asyncio.to_thread(
                        self._plugin().get_endpoint, self._session, service_type=opts.service_type,
                        interface=list(opts.valid_interfaces), region_name=opts.region_name)
                except ks_exceptions.ClientException as exc:
                    raise NeutronUnavailable(reason=f"no network endpoint: {exc}") from exc
                if not url:
                    raise NeutronUnavailable(reason="the service catalog has no network endpoint")
                self._endpoint = str(url).rstrip("/").removesuffix("/v2.0")
        return self._endpoint

    async def request(self, context: dict[str, Any] | None, method: str, path: str, *,
                      json: Any = None, params: Any = None) -> Any:
        """``method /v2.0{path}`` as the user of ``context`` (None: as Nova, with the ``[neutron]`` identity);
        the decoded body, None for 204."""
        token = context.get("auth_token") if context else None
        headers = {"Accept": "application/json",
                   "X-Auth-Token": str(token) if token else await self._service_token()}
        if context and str(context.get("request_id", "")).startswith("req-"):
            headers["X-OpenStack-Request-ID"] = str(context["request_id"])
        endpoint = await self.endpoint()
        if not self._transport_chosen:
            await self._choose_transport(endpoint)
        if self._app is not None:
            return await self._in_process(context, method, f"/v2.0{path}", json, params, headers)
        url = f"{endpoint}/v2.0{path}"
        last: Exception | None = None
        for _attempt in range(self.conf.neutron.http_retries + 1):
            try:
                response = await self._http.request(method, url, json=json, params=params, headers=headers)
            except httpx.TransportError as exc:
                LOG.warning("Networking service at %s unreachable: %s", url, exc)
                last = exc
                continue
            if response.status_code == 401 and context is None:
                self._invalidate()  # an expired or revoked service token: once more with a new one
                headers["X-Auth-Token"] = await self._service_token()
                response = await self._http.request(method, url, json=json, params=params, headers=headers)
            if response.status_code >= 400:
                raise _error(response)
            return response.json() if response.status_code != 204 and response.content else None
        raise NeutronUnavailable(reason=str(last))

    async def _choose_transport(self, endpoint: str) -> None:
        """The Networking API this process serves itself is asked in-process (``stratus.network.in_process``):
        the same requests and answers, without a socket; any other endpoint over HTTP."""
        self._transport_chosen = True
        app = in_process.served_at(endpoint)
        if app is None:
            return
        LOG.info("the Networking API at %s is this process's own: asked in-process", endpoint)
        self._app = app
        self._host = urllib.parse.urlsplit(endpoint).netloc.encode()

    async def _in_process(self, context: dict[str, Any] | None, method: str, path: str, json: Any, params: Any,
                          headers: dict[str, str]) -> Any:
        """The request of ``request``, to this process's own application (``in_process.call``): the same headers,
        query and JSON body an HTTP client sends, the same handling of the answer."""
        assert self._app is not None
        items = params.items() if isinstance(params, dict) else params or ()
        query = urllib.parse.urlencode([(k, v) for k, v in items], doseq=False)
        sent = [(b"host", self._host), *((k.lower().encode(), v.encode()) for k, v in headers.items())]
        body = b""
        if json is not None:
            body = orjson.dumps(json)
            sent += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        status, answer_headers, content = await in_process.call(self._app, method, path, query, sent, body)
        if status == 401 and context is None:
            self._invalidate()  # as over HTTP: once more with a new service token
            token = (await self._service_token()).encode()
            sent = [(k, token if k == b"x-auth-token" else v) for k, v in sent]
            status, answer_headers, content = await in_process.call(self._app, method, path, query, sent, body)
        if status >= 400:
            raise _error(httpx.Response(status, headers=answer_headers, content=content))
        return orjson.loads(content) if status != 204 and content else None

    # --- resources ------------------------------------------------------------------------------------------
    async def list(self, context: dict[str, Any] | None, collection: str, **filters: Any) -> list[dict[str, Any]]:
        """``GET /v2.0/{collection}`` with filters (a list value repeats the parameter, as Neutron reads it)."""
        params = [(k, str(x)) for k, v in filters.items() for x in (v if isinstance(v, list | tuple) else [v])]
        body = await self.request(context, "GET", f"/{collection}", params=params)
        items: list[dict[str, Any]] = body[collection.replace("-", "_")]
        return items

    async def show(self, context: dict[str, Any] | None, collection: str, resource_id: str) -> dict[str, Any]:
        body = await self.request(context, "GET", f"/{collection}/{_segment(resource_id)}")
        item: dict[str, Any] = body[_singular(collection)]
        return item

    async def create(self, context: dict[str, Any] | None, collection: str, values: dict[str, Any]
                     ) -> dict[str, Any]:
        key = _singular(collection)
        body = await self.request(context, "POST", f"/{collection}", json={key: values})
        item: dict[str, Any] = body[key]
        return item

    async def update(self, context: dict[str, Any] | None, collection: str, resource_id: str,
                     values: dict[str, Any]) -> dict[str, Any]:
        key = _singular(collection)
        body = await self.request(context, "PUT", f"/{collection}/{_segment(resource_id)}", json={key: values})
        item: dict[str, Any] = body[key]
        return item

    async def delete(self, context: dict[str, Any] | None, collection: str, resource_id: str) -> None:
        await self.request(context, "DELETE", f"/{collection}/{_segment(resource_id)}")

    async def extensions(self) -> set[str]:
        """The aliases of the service's extensions, read once every ``EXTENSIONS_TTL`` seconds (Nova's
        ``_refresh_neutron_extensions_cache``)."""
        now = asyncio.get_running_loop().time()
        if self._extensions is None or now - self._extensions[0] > EXTENSIONS_TTL:
            body = await self.request(None, "GET", "/extensions")
            self._extensions = (now, {str(e["alias"]) for e in body["extensions"]})
        return self._extensions[1]

    async def show_quota(self, project_id: str) -> dict[str, Any]:
        body = await self.request(None, "GET", f"/quotas/{_segment(project_id)}")
        quota: dict[str, Any] = body["quota"]
        return quota

    async def auto_allocated_topology(self, context: dict[str, Any] | None, project_id: str,
                                      dry_run: bool = False) -> dict[str, Any]:
        """``GET /v2.0/auto-allocated-topology/{project_id}``: the project's network, made on first use
        (``dry_run``: only whether it could be, ``fields=dry-run``)."""
        params = {"fields": "dry-run"} if dry_run else None
        body = await self.request(context, "GET", f"/auto-allocated-topology/{_segment(project_id)}", params=params)
        topology: dict[str, Any] = body["auto_allocated_topology"]
        return topology


def _segment(value: str) -> str:
    """An id as one path segment, percent-encoded: whatever a caller passed on (an id from a URL, control
    characters and slashes included) names one resource, and is the service's 404 rather than a bad URL here."""
    return urllib.parse.quote(str(value), safe="")


def _singular(collection: str) -> str:
    return {"security-groups": "security_group", "security-group-rules": "security_group_rule",
            "floatingips": "floatingip", "policies": "policy"}.get(collection, collection.rstrip("s"))
