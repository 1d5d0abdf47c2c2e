"""Key pair queries. Key pairs belong to a user (not a project) and are unique per user by name."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from stratus.db.engine import Connection
from stratus.db.models import key_pairs
from stratus.utils import utcnow


class MarkerNotFound(Exception):
    """The ``marker`` of a list names no key pair of this user."""


class KeyPairExists(Exception):
    """The user already has a key pair with this name."""


def _to_dict(row: Any) -> dict[str, Any]:
    """Every attribute Nova shows; key pairs are hard-deleted here, so ``deleted`` is always False."""
    return {"id": row.id, "name": row.name, "user_id": row.user_id, "fingerprint": row.fingerprint,
            "public_key": row.public_key, "type": row.type, "created_at": row.created_at,
            "updated_at": row.updated_at, "deleted": False, "deleted_at": None}


async def get(conn: Connection, user_id: str, name: str) -> dict[str, Any] | None:
    """The user's key pair called ``name``, or None (server create uses this for ``key_name``)."""
    row = (await conn.execute(select(key_pairs).where(key_pairs.c.user_id == user_id,
                                                      key_pairs.c.name == name))).first()
    return None if row is None else _to_dict(row)


async def list_by_user(conn: Connection, user_id: str, limit: int | None = None,
                       marker: str | None = None) -> list[dict[str, Any]]:
    """The user's key pairs ordered by name, the page after ``marker`` (a name); raises ``MarkerNotFound``."""
    query = select(key_pairs).where(key_pairs.c.user_id == user_id)
    if marker is not None:
        found = (await conn.execute(select(key_pairs.c.id).where(key_pairs.c.user_id == user_id,
                                                                 key_pairs.c.name == marker))).scalar()
        if found is None:
            raise MarkerNotFound(marker)
        query = query.where(or_(key_pairs.c.name > marker,
                                (key_pairs.c.name == marker) & (key_pairs.c.id > found)))
    query = query.order_by(key_pairs.c.name, key_pairs.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [_to_dict(r) for r in await conn.execute(query)]


async def count(conn: Connection, user_id: str) -> int:
    return int((await conn.execute(select(func.count()).select_from(key_pairs)
                                   .where(key_pairs.c.user_id == user_id))).scalar() or 0)


async def create(conn: Connection, *, user_id: str, name: str, public_key: str, fingerprint: str,
                 key_type: str = "ssh") -> dict[str, Any]:
    """Insert a key pair; raises ``KeyPairExists`` when the user already has one of that name."""
    if await get(conn, user_id, name) is not None:
        raise KeyPairExists(name)
    values = {"user_id": user_id, "name": name, "public_key": public_key, "fingerprint": fingerprint,
              "type": key_type, "created_at": utcnow(), "updated_at": None}
    try:  # a concurrent creator on a server database; the caller's transaction rolls back
        result = await conn.execute(insert(key_pairs).values(**values).returning(key_pairs.c.id))
    except IntegrityError:
        raise KeyPairExists(name) from None
    return {"id": result.scalar_one(), **values, "deleted": False, "deleted_at": None}


async def delete_keypair(conn: Connection, user_id: str, name: str) -> bool:
    """Delete the user's key pair; False if there was none."""
    result = await conn.execute(delete(key_pairs).where(key_pairs.c.user_id == user_id, key_pairs.c.name == name))
    return cast("CursorResult[Any]", result).rowcount > 0
