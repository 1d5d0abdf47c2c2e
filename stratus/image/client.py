"""What compute and the API ask of the image service, whichever serves it (embedded store or Glance v2)."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from stratus import exception


class ImageClient(abc.ABC):
    @abc.abstractmethod
    async def show(self, context: dict[str, Any], image_id: str) -> dict[str, Any]:
        """The image as Glance v2 shows it; ``ImageNotFound`` if the caller cannot see it."""

    @abc.abstractmethod
    async def find(self, context: dict[str, Any], name_or_id: str) -> dict[str, Any]:
        """An image by id, or by exact name if unique; ``ImageNotFound`` otherwise."""

    async def list_by_properties(self, context: dict[str, Any], properties: dict[str, str]) -> list[dict[str, Any]]:
        """The caller's images whose properties include all of ``properties``, newest first (Glance's property
        filters on ``GET /v2/images``): createBackup's rotation."""
        raise NotImplementedError

    @abc.abstractmethod
    def download(self, context: dict[str, Any], image_id: str) -> AsyncIterator[bytes]:
        """The image data, streamed."""

    @abc.abstractmethod
    async def create(self, context: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """A new (queued) image owned by the caller's project, from a Glance v2 create body."""

    @abc.abstractmethod
    async def update(self, context: dict[str, Any], image_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """Set (add or replace) top-level attributes and properties."""

    @abc.abstractmethod
    async def list(self, context: dict[str, Any], params: dict[str, str]) -> list[dict[str, Any]]:
        """One page of the images the caller may see, for a Glance v2 ``GET /v2/images`` query (filters, ``limit``,
        ``marker``); a query Glance refuses is ``ImageBadRequest``."""

    @abc.abstractmethod
    async def patch(self, context: dict[str, Any], image_id: str, values: dict[str, Any],
                    remove: list[str]) -> dict[str, Any]:
        """Set ``values`` and remove the properties named in ``remove``, in one change (Nova's ``purge_props``)."""

    @abc.abstractmethod
    async def upload(self, context: dict[str, Any], image_id: str, chunks: AsyncIterable[bytes]) -> None:
        """The image's data; the image becomes active."""

    @abc.abstractmethod
    async def delete(self, context: dict[str, Any], image_id: str) -> None:
        """Remove the image and its data; one already gone is fine."""

    @abc.abstractmethod
    async def locations(self, context: dict[str, Any], image: dict[str, Any]) -> list[dict[str, Any]]:
        """Where the data of ``image`` (as ``show`` returned it) is: ``{"url", "store"}`` each, as far as the
        image service tells (a Glance shows them only with ``show_multiple_locations`` or
        ``show_image_direct_url``)."""

    @abc.abstractmethod
    async def copy_to_store(self, context: dict[str, Any], image_id: str, store: str) -> None:
        """Ask the image service to copy the image's data into ``store`` (Glance's ``copy-image`` import);
        returns once asked: the copy runs in the image service, ``stores`` shows when it is there."""

    async def wait_changed(self, context: dict[str, Any], image_id: str, timeout: float) -> None:
        """Return once the image may have changed (a ``copy_to_store`` finished or failed), at the latest after
        ``timeout`` seconds; callers look with ``show`` after each wait. A Glance cannot tell its clients, so
        by default this only waits; the embedded service wakes its waiters when a copy ends."""
        await asyncio.sleep(timeout)

    @abc.abstractmethod
    async def add_location(self, context: dict[str, Any], image_id: str, url: str, store: str | None) -> None:
        """Make a queued image active with data already at ``url`` (Nova's direct snapshot)."""


def set_patch(current: dict[str, Any], values: dict[str, Any], remove: list[str] | None = None
              ) -> list[dict[str, Any]]:
    """The JSON patch (Glance v2's) that sets ``values`` on an image shown as ``current`` and removes the keys of
    ``remove`` it has."""
    ops = [{"op": "replace" if key in current else "add", "path": f"/{key}", "value": value}
           for key, value in values.items()]
    return ops + [{"op": "remove", "path": f"/{key}"} for key in remove or [] if key in current and key not in values]


def only_match(found: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The one image of that name; none, or more than one, is ``ImageNotFound`` (ask for the ID)."""
    if len(found) == 1:
        return found[0]
    if found:
        raise exception.ImageNotFound(f"More than one image is named {name}; use its ID.")
    raise exception.ImageNotFound(image_id=name)
