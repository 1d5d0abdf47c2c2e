"""Tokens: issue, validate (with a short in-memory cache), revoke.

A token id is 32 random bytes in URL-safe text, handed to the client once (``X-Subject-Token``). The database keeps
only its SHA-256 with the user, the scope, a snapshot of the roles, the methods, audit ids and times; so a copy of
the database does not hold usable tokens. Validating reads one row by primary key. Valid tokens are cached for
``[identity] token_cache_time`` seconds; a revocation through this process clears the cache at once, one through
another process takes effect within that time.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import secrets
import time
import uuid
from typing import Any

from stratus.db import identity as db
from stratus.db.engine import Connection, Database
from stratus.utils import utcnow

PURGE_INTERVAL = 3600.0  # seconds between purges of long-expired tokens, done by whoever issues a token
EXPIRED_KEPT = datetime.timedelta(days=2)  # Keystone's allow_expired_window: expired tokens still shown on request
CACHE_MAX = 10000


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    """A stored token as validation sees it (never its id)."""

    id_hash: str
    user_id: str
    project_id: str | None
    domain_id: str | None
    roles: list[dict[str, str]]  # [{id, name}], implied roles included
    methods: list[str]
    audit_ids: list[str]
    application_credential_id: str | None
    issued_at: datetime.datetime
    expires_at: datetime.datetime
    revoked: bool = False

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Token:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    @property
    def role_names(self) -> list[str]:
        return [r["name"] for r in self.roles]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.role_names

    def valid(self, now: datetime.datetime) -> bool:
        return not self.revoked and now < self.expires_at


def new_audit_id() -> str:
    """Keystone's audit id form: 16 random bytes, URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class TokenStore:
    def __init__(self, db_: Database, expiration: int, cache_time: float) -> None:
        self.db = db_
        self.expiration = datetime.timedelta(seconds=expiration)
        self.cache_time = cache_time
        self._cache: dict[str, tuple[Token, float]] = {}
        #: when this store last purged (time.monotonic()), None before its first: monotonic time starts near 0 at
        #: boot, so "last purged at 0.0" would mean "just purged" for the first hour of a freshly booted host
        self._last_purge: float | None = None

    async def issue(self, conn: Connection, *, user_id: str, roles: list[dict[str, str]], methods: list[str],
                    project_id: str | None = None, domain_id: str | None = None,
                    application_credential_id: str | None = None, expires_at: datetime.datetime | None = None,
                    parent_audit_id: str | None = None) -> tuple[str, Token]:
        """Store a new token (in the caller's write transaction); returns its id and what validation will see.

        It expires after ``[identity] token_expiration``, or at ``expires_at`` if that is sooner (an application
        credential's expiry, or the original token's when rescoping)."""
        now = utcnow()
        expiry = (now + self.expiration).replace(microsecond=0)
        if expires_at is not None:
            expiry = min(expiry, expires_at)
        token_id = secrets.token_urlsafe(32)
        audit_ids = [new_audit_id()] + ([parent_audit_id] if parent_audit_id else [])
        values = {"id_hash": db.token_hash(token_id), "user_id": user_id, "project_id": project_id,
                  "domain_id": domain_id, "roles": roles, "methods": methods, "audit_ids": audit_ids,
                  "application_credential_id": application_credential_id, "issued_at": now, "expires_at": expiry}
        await db.insert_token(conn, values)
        clock = time.monotonic()
        if self._last_purge is None or clock - self._last_purge > PURGE_INTERVAL:
            self._last_purge = clock
            await db.purge_tokens(conn, now - EXPIRED_KEPT)
        return token_id, Token.from_row({**values, "revoked": False})

    async def validate(self, token_id: str, *, allow_expired: bool = False, cached: bool = True) -> Token | None:
        """The token if it is valid now (or, with ``allow_expired``, expired within the last two days but not
        revoked); else None. ``cached=False`` reads the database whatever the cache holds."""
        id_hash = db.token_hash(token_id)
        now = utcnow()
        if cached and self.cache_time > 0:
            hit = self._cache.get(id_hash)
            if hit is not None and time.monotonic() - hit[1] < self.cache_time and hit[0].valid(now):
                return hit[0]
        async with self.db.read() as conn:
            row = await db.get_token(conn, id_hash)
        if row is None:
            return None
        token = Token.from_row(row)
        if token.valid(now):
            if self.cache_time > 0:
                if len(self._cache) >= CACHE_MAX:
                    self._cache.clear()
                self._cache[id_hash] = (token, time.monotonic())
            return token
        if allow_expired and not token.revoked and now < token.expires_at + EXPIRED_KEPT:
            return token
        return None

    async def revoke(self, token_id: str) -> bool:
        """Revoke one token; False if it was unknown or revoked already."""
        id_hash = db.token_hash(token_id)
        self._cache.pop(id_hash, None)
        async with self.db.write() as conn:
            return await db.revoke_token(conn, id_hash)

    def forget_cached(self) -> None:
        """Drop every cached token: after a change that may have revoked tokens in bulk (a user disabled, a role
        taken back, a project deleted), so this process sees it at once."""
        self._cache.clear()
