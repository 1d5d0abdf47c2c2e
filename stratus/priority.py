"""API requests first, background work after, on the one event loop of a process.

The all-in-one serves the API and runs every build on one event loop. asyncio runs what is ready first come first
served, so a request, which suspends a dozen times between its first byte and its last (the body, the database's
lock, the cast, the response), waits at each of those behind every build step that became ready before it: with
a hundred builds under way a 5 ms request took 200 ms, and the burst of readers waited seconds.

So background work (the conductor's and the compute hosts' casts: builds, deletes) passes a *turn* before each of
its units of work (a transaction, a driver call): while any request of the process's API servers is being
served, it waits until none is, and when they are all answered the waiting steps are let through a few at a time
(``BATCH`` per turn of the loop, in the order they came), so that a request arriving meanwhile is never queued
behind all of them. No step waits much more than ``MAX_WAIT`` while the background keeps up: under an API that never
rests, the steps past their deadline go ``BATCH`` every ``BUSY_SPACING`` seconds, so builds still move, and take a
bounded share of the loop however many turns the requests take (a request suspends several times between its
first byte and its last: a batch per turn of the loop let a hundred queued builds take half the loop from ten
clients' boots, and every request waited behind them).

A request's database writes commit at the end of their block (``COMMIT_AT_ONCE``, stratus/db/group_commit.py); the
background's wait for their group's commit, a turn of the loop, so that one commit serves many steps.

A turn is only taken outside transactions and locks a request could need (a step waiting for the API to rest
while the API waits for that step would last ``MAX_WAIT``), and never by code a request awaits (an RPC call):
only by casts, whose callers are not waiting for them.
"""

from __future__ import annotations

import asyncio
from collections import deque

from starlette.types import ASGIApp, Receive, Scope, Send

from stratus.db.group_commit import COMMIT_AT_ONCE

#: seconds a background step waits at most for the API to rest
MAX_WAIT = 0.25
#: background steps let through per turn of the event loop once the API rests
BATCH = 2
#: seconds between two batches of steps past their deadline while the API is serving requests
BUSY_SPACING = 0.005


class ApiFirst:
    """Counts the requests being served; ``turn()`` holds background steps while there are any."""

    def __init__(self, max_wait: float = MAX_WAIT, batch: int = BATCH, busy_spacing: float = BUSY_SPACING) -> None:
        self.max_wait = max_wait
        self.batch = batch
        self.busy_spacing = busy_spacing
        self.in_flight = 0
        #: (deadline, waiter) in arrival order, so deadlines are in order too
        self._waiters: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._soon: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` with its HTTP requests counted (from the call of the app to its return: the whole response)."""
        return _Counted(app, self)

    def started(self) -> None:
        self.in_flight += 1

    def finished(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        if self.in_flight == 0 and self._waiters:
            self._release_soon()

    async def turn(self) -> None:
        """Return at once while the API rests and nothing waits; otherwise wait for the API to rest (and the steps
        that came first to go), ``max_wait`` at most."""
        if self.in_flight == 0 and not self._waiters:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append((loop.time() + self.max_wait, waiter))
        if self.in_flight == 0:
            self._release_soon()
        elif self._timer is None:
            self._timer = loop.call_at(self._waiters[0][0], self._release)
        await waiter

    @property
    def waiting(self) -> int:
        """Background steps waiting for their turn now."""
        return len(self._waiters)

    def _release_soon(self) -> None:
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_soon(self._release)

    def _release(self) -> None:
        """Let ``batch`` waiters go: any while the API rests, else only those past their deadline. The next ones
        go at the next turn of the loop while the API rests (after the steps just let go have run up to their next
        wait), ``busy_spacing`` later while it serves requests, or at the next deadline; so neither the API's rest
        nor a deadline lets a crowd into the loop at once."""
        self._soon = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        released = 0
        while self._waiters and released < self.batch:
            deadline, waiter = self._waiters[0]
            if self.in_flight and deadline > now:
                break
            self._waiters.popleft()
            if not waiter.done():  # a step cancelled while it waited has nothing to let go
                waiter.set_result(None)
                released += 1
        if not self._waiters:
            return
        if not self.in_flight:
            self._release_soon()
        else:  # the next batch past its deadline goes after a pause that the requests have to themselves
            self._timer = loop.call_at(max(self._waiters[0][0], now + self.busy_spacing), self._release)


class _Counted:
    """Pure ASGI: an HTTP request counts from its call into the app until the app returns."""

    def __init__(self, app: ASGIApp, gate: ApiFirst) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.gate.started()
        urgent = COMMIT_AT_ONCE.set(True)
        try:
            await self.app(scope, receive, send)
        finally:
            COMMIT_AT_ONCE.reset(urgent)
            self.gate.finished()


#: the process's gate: its API servers count their requests on it, its builds and deletes take turns at it
API_FIRST = ApiFirst()


async def background_turn() -> None:
    """A background step's turn at the process's gate (see the module's docstring). Its writes commit with their
    group from here on, also in a task a request started (a cast copies the request's context)."""
    COMMIT_AT_ONCE.set(False)
    await API_FIRST.turn()
