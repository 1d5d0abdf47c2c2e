"""POST /servers' own helpers: the generated admin password and the hostname made from a server's name."""

from __future__ import annotations

import collections
import string

from stratus.api import servers_create


def test_a_generated_password_is_twelve_letters_and_digits_drawn_evenly() -> None:
    alphabet = set(string.ascii_letters + string.digits)
    drawn = [servers_create._admin_password(None) for _ in range(3000)]
    assert all(len(p) == 12 and set(p) <= alphabet for p in drawn)
    assert len(set(drawn)) == len(drawn)
    counts = collections.Counter("".join(drawn))
    assert set(counts) == alphabet
    expected = 12 * 3000 / 62
    assert all(0.75 * expected < n < 1.25 * expected for n in counts.values()), counts  # no character favoured
    assert servers_create._admin_password("given") == "given"


def test_the_hostname_of_a_name_as_novas_sanitize_hostname() -> None:
    cases = {"My Server_1": "my-server-1", "..web..": "web", "ÄÖ-x": "x", "": "server", "__": "server",
             "a.b-c": "a.b-c", "x" * 70: "x" * 63, "-" * 62 + "ab": "ab"}
    assert {name: servers_create._hostname(name) for name in cases} == cases
