"""Password and secret hashing: bcrypt in a worker thread (a check costs tens to hundreds of milliseconds by design,
which must not stall the event loop).

bcrypt reads at most 72 bytes, so the secret is first reduced to the base64 of its SHA-256 (44 bytes, no NUL): every
character of a long password counts (passlib's ``bcrypt_sha256`` idea).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets

import bcrypt


def _prepare(secret: str) -> bytes:
    return base64.b64encode(hashlib.sha256(secret.encode()).digest())


def hash_sync(secret: str, rounds: int) -> str:
    return bcrypt.hashpw(_prepare(secret), bcrypt.gensalt(rounds)).decode()


def check_sync(secret: str, hashed: str | None) -> bool:
    if not hashed:
        return False
    try:
        return bcrypt.checkpw(_prepare(secret), hashed.encode())
    except ValueError:  # not a bcrypt hash
        return False


class Hasher:
    """Hash and check secrets at one bcrypt cost (``[identity] password_hash_rounds``), in worker threads."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self._dummy: str | None = None

    async def hash(self, secret: str) -> str:
        return await asyncio.to_thread(hash_sync, secret, self.rounds)

    async def check(self, secret: str, hashed: str | None) -> bool:
        """True if ``secret`` matches ``hashed``. With no hash (unknown user, no password) the check still
        costs the same time, so timing does not tell which users exist."""
        if not hashed:
            if self._dummy is None:
                self._dummy = await self.hash(generate_secret())
            await asyncio.to_thread(check_sync, secret, self._dummy)
            return False
        return await asyncio.to_thread(check_sync, secret, hashed)


def generate_secret(nbytes: int = 32) -> str:
    """A random password or application credential secret (URL-safe text)."""
    return secrets.token_urlsafe(nbytes)
