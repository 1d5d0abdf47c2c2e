"""Root disk backends by ``[libvirt] images_type``: how an instance's disk is made from a cached base image."""

from __future__ import annotations

from stratus.image.backends.base import Backend, DiskInfo, backend_for

__all__ = ["Backend", "DiskInfo", "backend_for"]
