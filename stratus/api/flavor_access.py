"""Placeholder: routes are filled in by the resource's implementation."""

from __future__ import annotations

from stratus.api.router import Route

ROUTES: list[Route] = []
