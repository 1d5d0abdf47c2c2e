"""Real external components for integration tests, started by the project's own scripts."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratus.local_cloud import free_port

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server (scripts/postgres.sh), torn down after the session."""
    if os.geteuid() != 0 and not shutil.which("pg_ctl"):
        pytest.skip("PostgreSQL needs root to install and start here (runuser, apt-get)")
    parent = Path(tempfile.mkdtemp(prefix="stratus-pg-"))  # not under pytest's 0700 tree: postgres must enter it
    parent.chmod(0o755)
    data = parent / "data"
    proc = subprocess.run([str(SCRIPTS / "postgres.sh"), "start", str(data), str(free_port())],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"postgres.sh failed:\n{proc.stdout}\n{proc.stderr}")
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(SCRIPTS / "postgres.sh"), "stop", str(data)], check=False, timeout=120)
        shutil.rmtree(parent, ignore_errors=True)
