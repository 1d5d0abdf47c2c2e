"""docs/configuration.md lists every option as the code defines it."""

from __future__ import annotations

from pathlib import Path

from stratus import conf


def test_configuration_reference_is_current() -> None:
    doc = Path(__file__).parents[2] / "docs" / "configuration.md"
    assert doc.read_text() == conf.reference_markdown(), "regenerate: python -m stratus.conf > docs/configuration.md"
