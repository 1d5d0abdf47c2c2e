"""An image client for a real Glance v2 at ``[glance] api_servers``, acting with the caller's own token.

The token travels in the context dict as ``auth_token`` (sent as ``X-Auth-Token``); Glance then applies its own
visibility rules, so this client enforces none. Servers are tried in turn when one cannot be reached.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import httpx
import orjson

from stratus import exception
from stratus.image.client import ImageClient, only_match, set_patch
from stratus.image.embedded import (
    ImageBadRequest,
    ImageConflict,
    ImageCorrupt,
    ImageForbidden,
    ImageTooLarge,
    ImageUnavailable,
)

LOG = logging.getLogger(__name__)


class ImageServiceUnavailable(exception.StratusException):
    msg_fmt = "The image service is unavailable: %(reason)s"
    code = 503


_ERRORS: dict[int, type[exception.StratusException]] = {
    400: ImageBadRequest, 401: ImageForbidden, 403: ImageForbidden, 409: ImageConflict, 413: ImageTooLarge,
}


def _base_url(server: str) -> str:
    """``host:9292``, ``http://host:9292/`` and ``http://host:9292/v2`` all mean ``http://host:9292``."""
    url = server.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url[:-3] if url.endswith("/v2") else url


def _message(response: httpx.Response) -> str:
    """The message of a Glance error, JSON or webob's plain text."""
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    lines = [line.strip() for line in response.text.splitlines() if line.strip()]
    return " ".join(lines[1:] if len(lines) > 1 else lines) or response.reason_phrase


class GlanceClient(ImageClient):
    def __init__(self, api_servers: list[str], timeout: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not api_servers:
            raise ValueError("GlanceClient needs at least one API server")
        self.servers = [_base_url(s) for s in api_servers]
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._first = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    @staticmethod
    def _headers(context: dict[str, Any]) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if context.get("auth_token"):
            headers["X-Auth-Token"] = str(context["auth_token"])
        if str(context.get("request_id", "")).startswith("req-"):
            headers["X-OpenStack-Request-ID"] = str(context["request_id"])
        return headers

    async def _send(self, context: dict[str, Any], path: str, params: dict[str, Any] | None = None,
                    stream: bool = False, method: str = "GET", json: Any = None, content: Any = None,
                    headers: dict[str, str] | None = None) -> httpx.Response:
        """``method path`` on the first server that answers; an error status becomes an exception. A streamed
        upload (``content`` an async iterable) can be sent once only, so it tries the last server that answered."""
        last: Exception | None = None
        servers = 1 if content is not None and not isinstance(content, bytes) else len(self.servers)
        for i in range(servers):
            index = (self._first + i) % len(self.servers)
            request = self._http.build_request(method, self.servers[index] + path, params=params, json=json,
                                               content=content, headers={**self._headers(context), **(headers or {})})
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                LOG.warning("image service %s unreachable: %s", self.servers[index], exc)
                last = exc
                continue
            self._first = index
            if response.status_code >= 400:
                if stream:
                    await response.aread()
                    await response.aclose()
                raise self._error(response)
            return response
        raise ImageServiceUnavailable(reason=str(last))

    @staticmethod
    def _error(response: httpx.Response) -> exception.StratusException:
        message = _message(response)
        if response.status_code == 404:
            return exception.ImageNotFound(message)
        cls = _ERRORS.get(response.status_code)
        return cls(message) if cls else ImageServiceUnavailable(reason=f"{response.status_code} {message}")

    async def show(self, context: dict[str, Any], image_id: str) -> dict[str, Any]:
        response = await self._send(context, f"/v2/images/{image_id}")
        image: dict[str, Any] = response.json()
        return image

    async def find(self, context: dict[str, Any], name_or_id: str) -> dict[str, Any]:
        try:
            uuid.UUID(name_or_id)
        except ValueError:
            pass
        else:
            try:
                return await self.show(context, name_or_id)
            except exception.ImageNotFound:
                pass
        response = await self._send(context, "/v2/images", {"name": name_or_id, "visibility": "all", "limit": 2})
        found: list[dict[str, Any]] = response.json().get("images", [])
        return only_match(found, name_or_id)

    async def list_by_properties(self, context: dict[str, Any], properties: dict[str, str]) -> list[dict[str, Any]]:
        params = {**properties, "visibility": "all", "sort_key": "created_at", "sort_dir": "desc", "limit": 1000}
        found: list[dict[str, Any]] = (await self._send(context, "/v2/images", params)).json().get("images", [])
        return found

    async def create(self, context: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        image: dict[str, Any] = (await self._send(context, "/v2/images", method="POST", json=body)).json()
        return image

    async def update(self, context: dict[str, Any], image_id: str, values: dict[str, Any]) -> dict[str, Any]:
        patch = set_patch(await self.show(context, image_id), values)
        response = await self._send(context, f"/v2/images/{image_id}", method="PATCH", content=orjson.dumps(patch),
                                    headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
        image: dict[str, Any] = response.json()
        return image

    async def list(self, context: dict[str, Any], params: dict[str, str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self._send(context, "/v2/images", params)).json().get("images", [])
        return found

    async def patch(self, context: dict[str, Any], image_id: str, values: dict[str, Any],
                    remove: list[str]) -> dict[str, Any]:
        ops = set_patch(await self.show(context, image_id), values, remove)
        response = await self._send(context, f"/v2/images/{image_id}", method="PATCH", content=orjson.dumps(ops),
                                    headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
        image: dict[str, Any] = response.json()
        return image

    async def upload(self, context: dict[str, Any], image_id: str, chunks: AsyncIterable[bytes]) -> None:
        await self._send(context, f"/v2/images/{image_id}/file", method="PUT", content=chunks,
                         headers={"Content-Type": "application/octet-stream"})

    async def delete(self, context: dict[str, Any], image_id: str) -> None:
        with contextlib.suppress(exception.ImageNotFound):
            await self._send(context, f"/v2/images/{image_id}", method="DELETE")

    async def locations(self, context: dict[str, Any], image: dict[str, Any]) -> list[dict[str, Any]]:
        shown = image.get("locations") or []
        if shown:
            return [{"url": loc.get("url"), "store": (loc.get("metadata") or {}).get("store")}
                    for loc in shown if loc.get("url")]
        return [{"url": image["direct_url"], "store": None}] if image.get("direct_url") else []

    async def copy_to_store(self, context: dict[str, Any], image_id: str, store: str) -> None:
        await self._send(context, f"/v2/images/{image_id}/import", method="POST",
                         json={"method": {"name": "copy-image"}, "stores": [store]})

    async def add_location(self, context: dict[str, Any], image_id: str, url: str, store: str | None) -> None:
        """Glance's (pre-2.17) location API: a JSON patch adding the location; the image becomes active."""
        value: dict[str, Any] = {"url": url, "metadata": {"store": store} if store else {}}
        await self._send(context, f"/v2/images/{image_id}", method="PATCH",
                         content=orjson.dumps([{"op": "add", "path": "/locations/-", "value": value}]),
                         headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})

    async def download(self, context: dict[str, Any], image_id: str) -> AsyncIterator[bytes]:
        """The data as Glance sends it, checked against its ``Content-MD5`` at the end."""
        response = await self._send(context, f"/v2/images/{image_id}/file", stream=True)
        try:
            if response.status_code == 204:
                raise ImageUnavailable(image_id=image_id)
            expected = response.headers.get("content-md5")
            digest = hashlib.md5(usedforsecurity=False)
            async for chunk in response.aiter_bytes():
                digest.update(chunk)
                yield chunk
            if expected and digest.hexdigest() != expected:
                raise ImageCorrupt(image_id=image_id)
        finally:
            await response.aclose()
