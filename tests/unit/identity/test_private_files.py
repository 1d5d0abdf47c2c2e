"""What holds secrets is private on disk: the state directory 0700, the SQLite database and its -wal/-shm/-journal
files 0600 (password, secret and token hashes), the admin password 0600 and never printed where it could be
logged."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from stratus import conf as conf_mod
from stratus import service
from stratus.identity import bootstrap
from stratus.identity.common import IdentityServices


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_state_dir_and_database_files_are_private(tmp_path: Path, loose_umask: None) -> None:
    state = tmp_path / "data"
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(state)}})
    db = await service.open_database(conf)
    try:
        async with db.write() as conn:  # WAL mode: the -wal and -shm files appear with the first write
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        files = [state / "stratus.sqlite", state / "stratus.sqlite-wal", state / "stratus.sqlite-shm"]
        assert all(f.exists() for f in files)
        assert mode(state) == 0o700
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        await db.dispose()


async def test_existing_loose_files_are_tightened(tmp_path: Path, loose_umask: None) -> None:
    state = tmp_path / "data"
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(state)}})
    await (await service.open_database(conf)).dispose()
    os.chmod(state, 0o755)
    for name in ("stratus.sqlite", "stratus.sqlite-journal"):
        (state / name).touch()
        os.chmod(state / name, 0o644)
    await (await service.open_database(conf, sync_schema=False)).dispose()
    assert mode(state) == 0o700
    assert mode(state / "stratus.sqlite") == 0o600 and mode(state / "stratus.sqlite-journal") == 0o600


def test_state_dir_stays_traversable_for_libvirt_disks_inside_it(tmp_path: Path) -> None:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    assert service.state_dir_mode(conf) == 0o700
    conf.set_override("compute_driver", "libvirt.LibvirtDriver")
    assert service.state_dir_mode(conf) == 0o711  # qemu (another user) must reach instances/<uuid>/disk
    conf.set_override("instances_path", str(tmp_path.parent / "elsewhere"))
    assert service.state_dir_mode(conf) == 0o700


async def test_generated_admin_password_is_shown_only_on_a_terminal(services: IdentityServices,
                                                                   tmp_path: Path) -> None:
    out = io.StringIO()  # a log file, a pipe, a journal
    result = await bootstrap.bootstrap(services, out=out)
    assert result.generated and result.password
    assert result.password not in out.getvalue()
    assert f"password saved in {tmp_path / 'admin-password'}" in out.getvalue()
    assert mode(tmp_path / "admin-password") == 0o600
    primary, secondary = os.openpty()  # a real terminal
    with os.fdopen(secondary, "w") as terminal:
        bootstrap.announce(result, terminal)
    shown = os.read(primary, 4096).decode()
    os.close(primary)
    assert f"password {result.password} (saved in {tmp_path / 'admin-password'}" in shown
