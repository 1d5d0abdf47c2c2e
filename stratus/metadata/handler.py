"""The metadata API: what Nova's ``MetadataRequestHandler`` serves on port 8775, as a pure ASGI app.

Every path but ``/`` names the instance asking. Behind Neutron's metadata proxy (``[neutron]
service_metadata_proxy``) the proxy says who it is in ``X-Instance-ID`` and ``X-Tenant-ID``, signed with
``[neutron] metadata_proxy_shared_secret`` in ``X-Instance-ID-Signature`` (HMAC-SHA256, compared in constant time);
otherwise the requester's own address is looked up among the instances' fixed IPs. A guest never gets another
guest's data: a bad signature is a 403, an instance that does not exist or belongs to another tenant a 404.
Errors are webob's plain-text bodies, as Nova's.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import posixpath
import time
from http import HTTPStatus
from typing import Any

from oslo_config import cfg

from stratus.db.engine import Database
from stratus.metadata import base, source

LOG = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Any
Send = Any

UNKNOWN_ERROR = "An unknown error has occurred. Please try your request again."
#: webob's default explanations, the body of an error raised without one
EXPLANATIONS = {404: "The resource could not be found.",
                409: "There was a conflict when trying to complete your request."}


class HTTPError(Exception):
    def __init__(self, status: int, explanation: str | None = None) -> None:
        super().__init__(explanation)
        self.status = status
        self.explanation = explanation or EXPLANATIONS.get(status, "")


class _Request:
    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self.method: str = scope["method"]
        self.path: str = scope.get("path") or "/"
        self.headers: dict[str, list[str]] = {}
        for name, value in scope.get("headers") or []:
            self.headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        client = scope.get("client")
        self.remote_addr: str | None = client[0] if client else None

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return ",".join(values) if values else None

    def count(self, name: str) -> int:
        return len(self.headers.get(name.lower()) or [])

    async def body(self, limit: int) -> bytes | None:
        """The body, or None as soon as it is longer than ``limit``."""
        out = b""
        while True:
            message = await self._receive()
            out += message.get("body", b"")
            if len(out) > limit:
                return None
            if not message.get("more_body"):
                return out


class _Cache:
    """``[api] metadata_cache_expiration``: what the database said about an instance (or an address), kept for
    that many seconds, as Nova's cache of InstanceMetadata objects."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return item[1]

    def set(self, key: str, value: Any) -> None:
        if self.seconds > 0:
            if len(self._items) > 10000:  # a flood of distinct keys must not grow without bound
                now = time.monotonic()
                self._items = {k: v for k, v in self._items.items() if v[0] >= now}
            self._items[key] = (time.monotonic() + self.seconds, value)

    def drop(self, key: str) -> None:
        self._items.pop(key, None)


class MetadataApp:
    def __init__(self, conf: cfg.ConfigOpts, db: Database, vendordata: dict[str, Any]) -> None:
        self.conf = conf
        self.db = db
        self.vendordata = vendordata
        self.cache = _Cache(conf.api.metadata_cache_expiration)
        if conf.neutron.service_metadata_proxy and not conf.neutron.metadata_proxy_shared_secret:
            LOG.warning("metadata_proxy_shared_secret is not configured, the metadata information returned by the "
                        "proxy cannot be trusted")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        req = _Request(scope, receive)
        try:
            status, content_type, body = await self._handle(req)
        except HTTPError as exc:
            reason = HTTPStatus(exc.status).phrase
            status, content_type = exc.status, "text/plain; charset=UTF-8"
            body = f"{exc.status} {reason}\n\n{exc.explanation}\n\n   ".encode()
        except Exception:
            LOG.exception("metadata request %s %s failed", req.method, req.path)
            status, content_type = 500, "text/plain; charset=UTF-8"
            body = f"500 Internal Server Error\n\n{UNKNOWN_ERROR}\n\n   ".encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body if req.method != "HEAD" else b""})

    async def _handle(self, req: _Request) -> tuple[int, str, bytes]:
        if posixpath.normpath(req.path) == "/":
            return 200, "text/plain; charset=UTF-8", base.ec2_md_print([*base.VERSIONS, "latest"])
        if self.conf.neutron.service_metadata_proxy:
            if req.header("X-Metadata-Provider"):
                meta = await self._from_provider(req)
            else:
                meta = await self._from_instance_id(req)
        else:
            if req.header("X-Instance-ID"):
                LOG.warning("X-Instance-ID present in request headers. The 'service_metadata_proxy' option must be "
                            "enabled to process this header.")
            meta = await self._from_remote_address(req.remote_addr)
        if meta is None:
            raise HTTPError(404)
        try:
            data = meta.lookup(req.path)
        except base.InvalidMetadataPath:
            raise HTTPError(404) from None
        if data is base.PASSWORD:
            return await self._password(req, meta)
        content_type = "text/plain; charset=UTF-8" if meta.mimetype == base.MIME_TYPE_TEXT_PLAIN else meta.mimetype
        return 200, content_type, base.ec2_md_print(data)

    # --- who is asking ----------------------------------------------------------------------------------
    async def _from_instance_id(self, req: _Request) -> base.InstanceMetadata | None:
        instance_id = req.header("X-Instance-ID")
        tenant_id = req.header("X-Tenant-ID")
        signature = req.header("X-Instance-ID-Signature")
        if instance_id is None:
            msg = "X-Instance-ID header is missing from request."
        elif signature is None:
            msg = "X-Instance-ID-Signature header is missing from request."
        elif tenant_id is None:
            msg = "X-Tenant-ID header is missing from request."
        elif req.count("X-Instance-ID") > 1:
            msg = "Multiple X-Instance-ID headers found within request."
        elif req.count("X-Tenant-ID") > 1:
            msg = "Multiple X-Tenant-ID headers found within request."
        else:
            msg = None
        if msg:
            raise HTTPError(400, msg)
        assert instance_id is not None and tenant_id is not None
        address = req.header("X-Forwarded-For")
        self._validate_shared_secret(instance_id, signature, address)
        meta = await self._by_instance_id(instance_id, address)
        if meta is None:
            LOG.error("Failed to get metadata for instance id: %s", instance_id)
        elif meta.instance["project_id"] != tenant_id:
            LOG.warning("Tenant_id %s does not match tenant_id of instance %s.", tenant_id, instance_id)
            return None
        return meta

    async def _from_provider(self, req: _Request) -> base.InstanceMetadata | None:
        """A load balancer's request (``X-Metadata-Provider``): Nova finds the port among the provider's subnets
        in Neutron; Stratus has no such subnets yet, so the request ends as Nova's does with none."""
        address = req.header("X-Forwarded-For")
        if address is None:
            raise HTTPError(400, "X-Forwarded-For is missing from request.")
        provider_id = req.header("X-Metadata-Provider")
        assert provider_id is not None
        if self.conf.neutron.metadata_proxy_shared_secret:
            self._validate_shared_secret(provider_id, req.header("X-Metadata-Provider-Signature"),
                                         address.split(",")[0])
        LOG.error("Could not find any subnets for provider %s", provider_id)
        raise HTTPError(400, f"Could not find any subnets for provider {provider_id}")

    def _validate_shared_secret(self, requestor_id: str, signature: str | None, address: str | None) -> None:
        secret = self.conf.neutron.metadata_proxy_shared_secret
        expected = hmac.new(secret.encode(), requestor_id.encode(), hashlib.sha256).hexdigest()
        if not signature or not hmac.compare_digest(expected.encode(), signature.encode()):
            if requestor_id:
                LOG.warning("X-Instance-ID-Signature: %s does not match the expected signature for id: %s. Request "
                            "From: %s", signature, requestor_id, address)
            raise HTTPError(403, "Invalid proxy request signature.")

    async def _from_remote_address(self, address: str | None) -> base.InstanceMetadata | None:
        if not address:
            return None
        key = f"address-{address}"
        uuid = self.cache.get(key)
        if uuid is None:
            async with self.db.read() as conn:
                uuid = await source.instance_by_fixed_ip(conn, address)
            if uuid is None:
                LOG.error("Failed to get metadata for IP %s: no metadata", address)
                return None
            self.cache.set(key, uuid)
        return await self._by_instance_id(uuid, address)

    async def _by_instance_id(self, uuid: str, address: str | None) -> base.InstanceMetadata | None:
        key = f"metadata-{uuid}"
        found = self.cache.get(key)
        if found is None:
            async with self.db.read() as conn:
                found = await source.load_instance(conn, uuid)
            if found is None:
                return None
            self.cache.set(key, found)
        instance, keypair = found
        return source.build(self.conf, instance, keypair, self.vendordata, address=address)

    # --- password -----------------------------------------------------------------------------------------
    async def _password(self, req: _Request, meta: base.InstanceMetadata) -> tuple[int, str, bytes]:
        """Nova's ``handle_password``: GET reads what the guest posted (empty when nothing); POST sets it once
        (409 after), at most 1020 bytes."""
        html = "text/html; charset=UTF-8"  # webob's default for a handler's own response
        if req.method == "GET":
            return 200, html, (meta.password or "").encode()
        if req.method != "POST":
            raise HTTPError(400, "GET and POST only are supported.")
        if meta.password:
            raise HTTPError(409)
        length = req.header("Content-Length")
        if length is not None and length.isdigit() and int(length) > base.PASSWORD_MAX_SIZE:
            raise HTTPError(400, "Request is too large.")
        body = await req.body(base.PASSWORD_MAX_SIZE)
        if body is None:
            raise HTTPError(400, "Request is too large.")
        async with self.db.write() as conn:
            stored = await source.set_password(conn, meta.uuid, body.decode("utf-8", "replace"))
        self.cache.drop(f"metadata-{meta.uuid}")
        if stored is None:  # deleted since its metadata was cached
            raise HTTPError(400, f"Instance {meta.uuid} could not be found.")
        if not stored:  # set meanwhile (Nova's window while its cache is stale); the first one stays
            raise HTTPError(409)
        return 200, html, b""


def create_app(conf: cfg.ConfigOpts, db: Database, vendordata: dict[str, Any]) -> MetadataApp:
    return MetadataApp(conf, db, vendordata)
