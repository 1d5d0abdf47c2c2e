"""Shared test fixtures: a real all-in-one cloud in a subprocess, reached over HTTP like any user would."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud

__all__ = ["Cloud"]


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """One all-in-one cloud shared by the functional tests (4 simulated hosts, default flavors)."""
    c = start_cloud(tmp_path_factory.mktemp("cloud"))
    try:
        yield c
    finally:
        stop_cloud(c)
        if os.environ.get("STRATUS_SHOW_LOG"):
            print(c.log())


@pytest.fixture(scope="session")
def embedded_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """An all-in-one with the embedded identity service (Keystone v3 tokens, bootstrap admin, clouds.yaml); cheap
    bcrypt so that logging in many times stays fast."""
    c = start_cloud(tmp_path_factory.mktemp("embedded"), "[identity]\npassword_hash_rounds = 4\n",
                    auth_strategy="embedded")
    try:
        yield c
    finally:
        stop_cloud(c)
        if os.environ.get("STRATUS_SHOW_LOG"):
            print(c.log())
