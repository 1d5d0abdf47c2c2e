"""The standard attributes' times as Neutron shows them (``2026-01-02T03:04:05Z``), whatever way they are spelled."""

from __future__ import annotations

import datetime

from stratus.network.server.resource import timestamp


def test_a_stored_time_is_neutrons_spelling() -> None:
    stored = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901)
    assert timestamp(stored) == "2026-01-02T03:04:05Z" == stored.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert timestamp(datetime.datetime(2026, 12, 31, 23, 59, 59)) == "2026-12-31T23:59:59Z"
    assert timestamp(None) is None


def test_an_aware_time_is_spelled_as_strftime_does() -> None:
    aware = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert timestamp(aware) == "2026-01-02T03:04:05Z"
