"""What compute and the API ask of the image service, whichever serves it (embedded store or Glance v2)."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any

from stratus import exception


class ImageClient(abc.ABC):
    @abc.abstractmethod
    async def show(self, context: dict[str, Any], image_id: str) -> dict[str, Any]:
        """The image as Glance v2 shows it; ``ImageNotFound`` if the caller cannot see it."""

    @abc.abstractmethod
    async def find(self, context: dict[str, Any], name_or_id: str) -> dict[str, Any]:
        """An image by id, or by exact name if unique; ``ImageNotFound`` otherwise."""

    @abc.abstractmethod
    def download(self, context: dict[str, Any], image_id: str) -> AsyncIterator[bytes]:
        """The image data, streamed."""


def only_match(found: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The one image of that name; none, or more than one, is ``ImageNotFound`` (ask for the ID)."""
    if len(found) == 1:
        return found[0]
    if found:
        raise exception.ImageNotFound(f"More than one image is named {name}; use its ID.")
    raise exception.ImageNotFound(image_id=name)
