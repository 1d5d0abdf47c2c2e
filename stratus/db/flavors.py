"""Flavor queries (placeholder until the flavors API lands)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection


async def ensure_defaults(conn: AsyncConnection) -> None:
    """Create the default flavors once, on an empty table."""
