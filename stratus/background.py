"""Work a service starts and does not wait for: a compute host's sync stops and start-up retries, a conductor's
release of a timed-out build's ports. Each task is referenced until it ends (the event loop keeps only weak
references) and a failure is logged, since nobody awaits it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

LOG = logging.getLogger(__name__)


class BackgroundTasks:
    """Mixed into a service's shared state; ``background_name`` says whose tasks a log line is about."""

    background_name = "service"

    def __init__(self) -> None:
        self.background: set[asyncio.Task[Any]] = set()

    def dispatch(self, action: Coroutine[Any, Any, Any]) -> None:
        """Run ``action`` in the background, as a cast to this service would."""
        task = asyncio.get_running_loop().create_task(action)
        self.background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            LOG.error("background action of %s failed", self.background_name, exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until no background action runs (tests use it to see the outcome of what a pass started)."""
        while self.background:
            await asyncio.gather(*list(self.background), return_exceptions=True)
