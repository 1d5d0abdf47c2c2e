"""Driver call timings for benchmarks: a compute process started with ``STRATUS_DRIVER_TIMINGS=<file>`` in its
environment appends one JSON line per call of its driver's interface (``{"host", "method", "instance", "start",
"end"}``, wall-clock seconds) to that file, so that a benchmark can tell how much of a flow the hypervisor took
and how much the controller (everything outside the driver calls: API, conductor, scheduler, RPC, database).
Unset (always, outside benchmarks), the driver is left as it is.

Several processes may share the file: each line is one ``write`` to a file opened for appending.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable
from typing import Any

import orjson

from stratus.virt.driver import ComputeDriver

ENV = "STRATUS_DRIVER_TIMINGS"


def instrument(driver: ComputeDriver, host: str, path: str | None = None) -> None:
    """Time every coroutine method of the driver interface on this driver object, if ``path`` (default: the
    environment's ``STRATUS_DRIVER_TIMINGS``) names a file."""
    path = path if path is not None else os.environ.get(ENV)
    if not path:
        return
    for name, _ in inspect.getmembers(ComputeDriver, inspect.iscoroutinefunction):
        if not name.startswith("_"):
            setattr(driver, name, _timed(getattr(driver, name), name, host, path))


def _timed(method: Callable[..., Any], name: str, host: str, path: str) -> Callable[..., Any]:
    @functools.wraps(method)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            return await method(*args, **kwargs)
        finally:
            instance = args[0] if args and isinstance(args[0], dict) else kwargs.get("instance") or {}
            line = orjson.dumps({"host": host, "method": name, "instance": instance.get("uuid"), "start": start,
                                 "end": time.time()}) + b"\n"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    return timed


def load(path: str) -> list[dict[str, Any]]:
    """The calls a file holds, in the order they ended."""
    with open(path, "rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]


def busy_seconds(calls: list[dict[str, Any]], start: float, end: float, instance: str | None = None) -> float:
    """Seconds within [start, end] during which some driver call (of ``instance``, if named) ran, on any host:
    the union of the calls' intervals, so that nested and concurrent calls count once."""
    spans = sorted((max(c["start"], start), min(c["end"], end)) for c in calls
                   if (instance is None or c["instance"] == instance) and c["end"] > start and c["start"] < end)
    total, cursor = 0.0, start
    for s, e in spans:
        s = max(s, cursor)
        if e > s:
            total += e - s
            cursor = e
    return total
