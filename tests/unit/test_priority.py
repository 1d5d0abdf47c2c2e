"""The API-first gate: background steps wait while requests are served, a few at a time after, never forever."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from stratus.priority import ApiFirst


async def test_turn_is_immediate_while_no_request_is_served() -> None:
    gate = ApiFirst(max_wait=5)
    t0 = time.perf_counter()
    for _ in range(100):
        await gate.turn()
    assert time.perf_counter() - t0 < 0.5
    assert gate.waiting == 0


async def test_steps_wait_for_the_requests_then_go_in_their_order_a_few_per_loop_turn() -> None:
    gate = ApiFirst(max_wait=5, batch=1)
    gone: list[int] = []

    async def step(i: int) -> None:
        await gate.turn()
        gone.append(i)

    gate.started()
    tasks = [asyncio.create_task(step(i)) for i in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert gone == [] and gate.waiting == 10
    gate.finished()
    for _ in range(10):  # a turn of the loop at a time until the first went
        if gone:
            break
        await asyncio.sleep(0)
    assert len(gone) < 10  # not all at once: a request coming now is not queued behind them all
    gate.started()  # a request comes: the rest wait again
    so_far = list(gone)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(gone) <= len(so_far) + 1  # at most the one let go before the request came
    gate.finished()
    await asyncio.gather(*tasks)
    assert gone == list(range(10))


async def test_a_step_waits_at_most_max_wait_under_requests_that_never_end() -> None:
    gate = ApiFirst(max_wait=0.05)
    gate.started()
    t0 = time.perf_counter()
    await gate.turn()
    assert 0.04 <= time.perf_counter() - t0 < 1.0
    gate.finished()


async def test_under_requests_that_never_end_steps_past_their_deadline_go_a_batch_at_a_time() -> None:
    gate = ApiFirst(max_wait=0.05, batch=2)
    still_waiting: list[int] = []

    async def step() -> None:
        await gate.turn()
        still_waiting.append(gate.waiting)

    gate.started()
    t0 = time.perf_counter()
    await asyncio.gather(*(step() for _ in range(6)))
    assert time.perf_counter() - t0 >= 0.04
    assert still_waiting[0] == 4  # the first two went alone, the others after them
    gate.finished()


async def test_under_requests_that_never_end_batches_past_their_deadline_are_spaced_in_time() -> None:
    """However many turns of the loop the requests take, the steps past their deadline go a batch per
    ``busy_spacing``: the background's share of a busy loop is bounded, not a batch per turn."""
    gate = ApiFirst(max_wait=0.02, batch=2, busy_spacing=0.05)
    went: list[float] = []

    async def step() -> None:
        await gate.turn()
        went.append(time.perf_counter())

    async def spin() -> None:  # a request that keeps the loop turning
        for _ in range(100_000):
            if len(went) == 6:
                return
            await asyncio.sleep(0)

    gate.started()
    t0 = time.perf_counter()
    await asyncio.gather(spin(), *(step() for _ in range(6)))
    gate.finished()
    offsets = [round(t - t0, 3) for t in went]
    assert offsets[1] < 0.05  # the first batch at its deadline
    assert offsets[2] - offsets[1] >= 0.045 and offsets[4] - offsets[3] >= 0.045, offsets
    # the API rests: the rest of the waiters go at once, a batch per turn
    gate.started()
    tasks = [asyncio.create_task(step()) for _ in range(4)]
    await asyncio.sleep(0)
    t1 = time.perf_counter()
    gate.finished()
    await asyncio.gather(*tasks)
    assert went[-1] - t1 < 0.04


async def test_the_middleware_counts_a_request_until_its_app_returns() -> None:
    gate = ApiFirst()
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(gate.in_flight)
        if scope.get("fail"):
            raise RuntimeError("boom")

    wrapped = gate.wrap(app)
    await wrapped({"type": "http"}, None, None)
    try:
        await wrapped({"type": "http", "fail": True}, None, None)
    except RuntimeError:
        pass
    await wrapped({"type": "lifespan"}, None, None)
    assert seen == [1, 1, 0]
    assert gate.in_flight == 0


async def test_requests_commit_their_writes_at_once_and_background_steps_with_their_group() -> None:
    from stratus.db.group_commit import COMMIT_AT_ONCE
    from stratus.priority import background_turn

    gate = ApiFirst()
    seen: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(COMMIT_AT_ONCE.get())

        async def cast() -> None:  # a task the request starts copies its context; its first turn resets it
            await background_turn()
            seen.append(COMMIT_AT_ONCE.get())
        await asyncio.create_task(cast())

    await gate.wrap(app)({"type": "http"}, None, None)
    assert seen == [True, False]
    assert COMMIT_AT_ONCE.get() is False
