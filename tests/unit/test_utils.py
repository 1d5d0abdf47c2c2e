"""The small helpers: ``utcnow`` is naive UTC with microseconds, the time the database stores."""

from __future__ import annotations

import datetime

from stratus.utils import utcnow


def test_utcnow_is_naive_utc_now_to_the_microsecond() -> None:
    before = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    now = utcnow()
    after = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    assert now.tzinfo is None
    slack = datetime.timedelta(microseconds=1)  # the floor of the microseconds here, their rounding there
    assert before - slack <= now <= after + slack
    stamps = {utcnow().microsecond for _ in range(1000)}
    assert len(stamps) > 1  # microseconds, not whole seconds
