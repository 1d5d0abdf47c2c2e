"""Password and secret hashing: bcrypt in a few worker threads of its own, shared fairly between accounts.

A check costs tens to hundreds of milliseconds by design, so it never runs on the event loop; and since a flood of
wrong passwords would otherwise queue ahead of everyone else's login (100 guesses at 0.4 s each: 40 s for the next
person), the checks go through a ``FairGate``: a few slots (one bcrypt each, on an executor of that size, so a
flood takes no thread anything else uses), handed out round-robin by key. The key is the account being tried, so a
flood against one account (or against names that do not exist, which share a key) waits behind itself, and any
other account's login waits for at most one check per busy account. Within one key the newest waiter goes first
(adaptive LIFO, as Facebook's "Fail at Scale" describes it): a burst takes as long either way, but under a sustained
flood against an account the oldest waiters are the flood's backlog, and the owner's login need not wait for all of
it.

bcrypt reads at most 72 bytes, so the secret is first reduced to the base64 of its SHA-256 (44 bytes, no NUL): every
character of a long password counts (passlib's ``bcrypt_sha256`` idea).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import bcrypt

UNKNOWN = "?"  # the fairness key of logins naming no existing account


def _prepare(secret: str) -> bytes:
    return base64.b64encode(hashlib.sha256(secret.encode(errors="surrogatepass")).digest())


def hash_sync(secret: str, rounds: int) -> str:
    return bcrypt.hashpw(_prepare(secret), bcrypt.gensalt(rounds)).decode()


def check_sync(secret: str, hashed: str | None) -> bool:
    if not hashed:
        return False
    try:
        return bcrypt.checkpw(_prepare(secret), hashed.encode())
    except ValueError:  # not a bcrypt hash
        return False


def default_workers() -> int:
    """One bcrypt per core but one (the event loop keeps a core), at least one, at most eight."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


class FairGate:
    """At most ``slots`` holders at once; when all are taken, waiters are served one per key in turn (round-robin
    over the keys that are waiting, the newest first within a key)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._free = slots
        self._waiting: dict[str, collections.deque[asyncio.Future[None]]] = {}  # insertion order: the ring

    @property
    def free(self) -> int:
        return self._free

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    async def acquire(self, key: str) -> None:
        """Wait for a slot (the turn of ``key``); the caller must ``release`` it."""
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, collections.deque()).append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # granted just as the waiter was cancelled: pass the slot on
            else:
                self._forget(key, granted)
            raise

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        await self.acquire(key)
        try:
            yield
        finally:
            self.release()

    def _forget(self, key: str, granted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(key)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(granted)
            if not queue:
                del self._waiting[key]

    def release(self) -> None:
        while self._waiting:
            key = next(iter(self._waiting))
            queue = self._waiting.pop(key)
            granted = queue.pop()
            if queue:
                self._waiting[key] = queue  # to the back of the ring
            if not granted.done():
                granted.set_result(None)
                return
        self._free += 1


class Hasher:
    """Hash and check secrets at one bcrypt cost (``[identity] password_hash_rounds``), ``workers`` at a time."""

    def __init__(self, rounds: int, workers: int | None = None) -> None:
        self.rounds = rounds
        self.gate = FairGate(workers or default_workers())
        self._pool = ThreadPoolExecutor(max_workers=self.gate.slots, thread_name_prefix="bcrypt")
        self._dummy: str | None = None  # what a check without a hash compares against, made at the first need
        self._dummy_lock = threading.Lock()

    async def _run(self, key: str, before: Callable[[], Awaitable[None]] | None, func: Callable[..., object],
                   *args: object) -> object:
        """``func`` in a worker thread at ``key``'s turn. The slot is held until the thread is done, even if the
        request goes away meanwhile (a thread cannot be stopped), so no more than ``slots`` checks ever run."""
        await self.gate.acquire(key)
        try:
            if before is not None:
                await before()
            running = asyncio.get_running_loop().run_in_executor(self._pool, func, *args)
        except BaseException:
            self.gate.release()
            raise
        running.add_done_callback(self._finished)
        return await asyncio.shield(running)

    def _finished(self, running: asyncio.Future[object]) -> None:
        self.gate.release()
        if not running.cancelled():
            running.exception()  # seen, even when the request that wanted it went away

    async def hash(self, secret: str, key: str = "") -> str:
        return str(await self._run(key, None, hash_sync, secret, self.rounds))

    async def check(self, secret: str, hashed: str | None, key: str = UNKNOWN,
                    before: Callable[[], Awaitable[None]] | None = None) -> bool:
        """True if ``secret`` matches ``hashed``. With no hash (unknown user, no password) the check still
        costs the same time, so timing does not tell which users exist. ``key`` names the account for fairness;
        ``before`` runs once this check's turn has come, just before the hash (it may raise: a lockout)."""
        ok = await self._run(key, before, self._check_or_pretend, secret, hashed)
        return bool(ok) and bool(hashed)

    def _check_or_pretend(self, secret: str, hashed: str | None) -> bool:
        if not hashed:
            with self._dummy_lock:
                if self._dummy is None:
                    self._dummy = hash_sync(generate_secret(), self.rounds)
            hashed = self._dummy
        return check_sync(secret, hashed)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def generate_secret(nbytes: int = 32) -> str:
    """A random password or application credential secret (URL-safe text)."""
    return secrets.token_urlsafe(nbytes)
