"""Flavor, key pair and quota queries against a real SQLite database, without the API in front."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert

from stratus import conf as conf_mod
from stratus.db import flavors, keypairs, quotas
from stratus.db.engine import Database
from stratus.db.models import instances, quota_classes
from stratus.db.models import quotas as quotas_table
from stratus.service import open_database
from stratus.utils import utcnow


async def _db(tmp_path: Path) -> tuple[Database, Any]:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    db = await open_database(conf)
    async with db.write() as conn:
        await flavors.ensure_defaults(conn)
    return db, conf


async def test_defaults_once_and_boot_lookup(tmp_path: Path) -> None:
    db, _ = await _db(tmp_path)
    async with db.write() as conn:
        await flavors.delete_flavor(conn, "5")
        await flavors.ensure_defaults(conn)  # not empty: the operator's deletion stays
        private = await flavors.create(conn, flavorid="p1", name="private", memory_mb=64, vcpus=1, root_gb=0,
                                       is_public=False)
        await flavors.update_extra_specs(conn, private["id"], {"hw:cpu_policy": "dedicated", "hw:numa_nodes": "1"})
        await flavors.add_access(conn, private["id"], "granted")
    async with db.read() as conn:
        assert [f["flavorid"] for f in await flavors.list_flavors(conn, project_id="x", is_admin=False)] == [
            "1", "2", "3", "4", "42", "84"]
        tiny = await flavors.get_for_boot(conn, "1", "anyone", False)
        assert tiny is not None
        json.dumps(tiny)  # stored as is in the instance record
        assert {k: tiny[k] for k in ("flavorid", "name", "vcpus", "memory_mb", "root_gb", "extra_specs")} == {
            "flavorid": "1", "name": "m1.tiny", "vcpus": 1, "memory_mb": 512, "root_gb": 1, "extra_specs": {}}
        assert await flavors.get_for_boot(conn, "p1", "other", False) is None
        assert await flavors.get_for_boot(conn, "nope", "other", True) is None
        seen: list[str] = []
        assert db.sync_engine is not None
        event.listen(db.sync_engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
        for project, admin in (("granted", False), ("other", True)):
            found = await flavors.get_for_boot(conn, "p1", project, admin)
            assert found is not None
            assert found["extra_specs"] == {"hw:cpu_policy": "dedicated", "hw:numa_nodes": "1"}
            assert found["is_public"] is False
        assert len(seen) == 2  # the flavor with its extra specs: one statement each time
    await db.dispose()


async def test_pages_cost_fixed_queries(tmp_path: Path) -> None:
    db, _ = await _db(tmp_path)
    async with db.write() as conn:
        for f in await flavors.list_flavors(conn, project_id="p", is_admin=True):
            await flavors.update_extra_specs(conn, f["id"], {"k": f["flavorid"]})
    statements: list[str] = []
    assert db.sync_engine is not None
    event.listen(db.sync_engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    async with db.read() as conn:
        page = await flavors.list_flavors(conn, project_id="p", is_admin=False, marker="2", limit=3,
                                          with_extra_specs=True)
    assert [f["flavorid"] for f in page] == ["3", "4", "42"]
    assert [f["extra_specs"] for f in page] == [{"k": "3"}, {"k": "4"}, {"k": "42"}]
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 3  # marker, page, specs
    async with db.read() as conn:
        with pytest.raises(flavors.MarkerNotFound):
            await flavors.list_flavors(conn, project_id="p", is_admin=False, marker="nope")
        with pytest.raises(ValueError, match="sort_key"):
            await flavors.list_flavors(conn, project_id="p", is_admin=False, sort_key="secret")
    await db.dispose()


async def test_sort_ties_break_on_id(tmp_path: Path) -> None:
    db, _ = await _db(tmp_path)
    async with db.read() as conn:
        ones = await flavors.list_flavors(conn, project_id="p", is_admin=True, sort_key="vcpus")
        first = await flavors.list_flavors(conn, project_id="p", is_admin=True, sort_key="vcpus", limit=2)
        rest = await flavors.list_flavors(conn, project_id="p", is_admin=True, sort_key="vcpus",
                                          marker=first[-1]["flavorid"])
    assert first + rest == ones
    await db.dispose()


async def test_conflicts(tmp_path: Path) -> None:
    db, _ = await _db(tmp_path)
    async with db.write() as conn:
        with pytest.raises(flavors.FlavorConflict) as by_id:
            await flavors.create(conn, flavorid="1", name="fresh", memory_mb=1, vcpus=1, root_gb=0)
        with pytest.raises(flavors.FlavorConflict) as by_name:
            await flavors.create(conn, flavorid="fresh", name="m1.tiny", memory_mb=1, vcpus=1, root_gb=0)
        await keypairs.create(conn, user_id="u", name="k", public_key="ssh-rsa x", fingerprint="f")
        with pytest.raises(keypairs.KeyPairExists):
            await keypairs.create(conn, user_id="u", name="k", public_key="ssh-rsa y", fingerprint="g")
        await keypairs.create(conn, user_id="v", name="k", public_key="ssh-rsa y", fingerprint="g")
    assert (by_id.value.column, by_name.value.column) == ("flavorid", "name")
    async with db.read() as conn:
        got = await keypairs.get(conn, "u", "k")
        assert got is not None and got["public_key"] == "ssh-rsa x"
        assert await keypairs.get(conn, "w", "k") is None
    await db.dispose()


async def test_quota_precedence_and_usage(tmp_path: Path) -> None:
    db, conf = await _db(tmp_path)
    now = utcnow()
    async with db.write() as conn:
        await conn.execute(insert(quota_classes), [
            {"class_name": "default", "resource": "cores", "hard_limit": 8, "created_at": now},
            {"class_name": "default", "resource": "ram", "hard_limit": 1000, "created_at": now}])
        await conn.execute(insert(quotas_table), [
            {"project_id": "p", "user_id": "", "resource": "cores", "hard_limit": 4, "created_at": now},
            {"project_id": "p", "user_id": "u", "resource": "cores", "hard_limit": 2, "created_at": now},
            {"project_id": "q", "user_id": "", "resource": "key_pairs", "hard_limit": -1, "created_at": now}])
        rows = [("active", 0), ("building", 0), ("soft-delete", 0), ("deleted", 99)]
        await conn.execute(insert(instances), [
            {"uuid": str(uuid.uuid4()), "project_id": "p", "user_id": "u", "flavor": {}, "vcpus": 2,
             "memory_mb": 256, "root_gb": 1, "vm_state": state, "reservation_id": "r", "deleted": deleted,
             "created_at": now, "updated_at": now} for state, deleted in rows])
        await keypairs.create(conn, user_id="u", name="k", public_key="ssh-rsa x", fingerprint="f")
    async with db.read() as conn:
        project = await quotas.limits(conn, conf, "p")
        user = await quotas.limits(conn, conf, "p", user_id="u")
        other = await quotas.limits(conn, conf, "q")
        used = await quotas.usage(conn, "p", user_id="u")
        assert await quotas.usage(conn, "empty") == {"instances": 0, "cores": 0, "ram": 0, "server_groups": 0,
                                                     "key_pairs": 0}
    assert (project["cores"], user["cores"], other["cores"]) == (4, 2, 8)
    assert (project["ram"], project["instances"], other["key_pairs"]) == (1000, 10, -1)
    assert project["floating_ips"] == -1 and project["injected_file_path_bytes"] == 255
    assert used == {"instances": 2, "cores": 4, "ram": 512, "server_groups": 0, "key_pairs": 1}
    assert quotas.headroom(project, used, {"instances": 1, "cores": 1}) == ["cores"]
    assert not quotas.over(-1, 10**6, 1)
    # a boot's quota check: its limits (the class's, the project's and the user's rows) and its usage, one query
    # each
    seen: list[str] = []
    assert db.sync_engine is not None
    event.listen(db.sync_engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    async with db.write() as conn:
        await quotas.check_deltas(conn, conf, "p", "u", {"instances": 1, "ram": 488})
        assert len(seen) == 2
        with pytest.raises(quotas.OverQuota) as refused:
            await quotas.check_deltas(conn, conf, "p", "u", {"ram": 489})
    assert (refused.value.scope, refused.value.quotas["cores"], refused.value.quotas["ram"]) == ("project", 4, 1000)
    # unlimited everywhere: nothing to count (the limits alone); one limited resource counts them all again
    seen.clear()
    async with db.write() as conn:
        await quotas.set_limits(conn, "p", {"instances": -1, "ram": -1})
        await quotas.set_limits(conn, "p", {"instances": -1}, user_id="u")
        seen.clear()
        await quotas.check_deltas(conn, conf, "p", "u", {"instances": 10**6, "ram": 10**9})
        assert len(seen) == 1
        with pytest.raises(quotas.OverQuota, match="cores"):
            await quotas.check_deltas(conn, conf, "p", "u", {"instances": 10**6, "cores": 1})
        assert len(seen) == 3
    await db.dispose()


async def test_quota_writes_ranges_and_checks(tmp_path: Path) -> None:
    db, conf = await _db(tmp_path)
    now = utcnow()
    async with db.write() as conn:
        await quotas.lock_project(conn, "p")  # nothing to take on SQLite: the write transaction is the lock
        await quotas.set_limits(conn, "p", {"instances": 5, "cores": 8})
        await quotas.set_limits(conn, "p", {"instances": 4})  # an update
        await quotas.set_limits(conn, "p", {"instances": 2, "floating_ips": 2}, user_id="u")
        await quotas.set_limits(conn, "p", {"instances": 1}, user_id="v")
        await quotas.set_class(conn, "gold", {"cores": 99})
        await quotas.set_class(conn, "gold", {"cores": 98})
        await conn.execute(insert(instances), [
            {"uuid": str(uuid.uuid4()), "project_id": "p", "user_id": user, "flavor": {}, "vcpus": 2,
             "memory_mb": 256, "root_gb": 1, "vm_state": "active", "reservation_id": "r", "deleted": 0,
             "created_at": now, "updated_at": now} for user in ("u", "u", "w")])
    async with db.read() as conn:
        assert await quotas.overrides(conn, "p") == {"instances": 4, "cores": 8, "floating_ips": 2}
        assert await quotas.overrides(conn, "p", "u") == {"instances": 2}
        assert (await quotas.class_limits(conn, conf, "gold"))["cores"] == 98
        assert (await quotas.defaults(conn, conf))["cores"] == 20  # another class is not the default
        assert await quotas.counts(conn, "p", "u") == {
            "project": {"instances": 3, "cores": 6, "ram": 768, "server_groups": 0},
            "user": {"instances": 2, "cores": 4, "ram": 512, "server_groups": 0}}
        project = await quotas.settable(conn, conf, "p")
        # not under the users' 2 + 1 instances nor the 3 used; not under the 6 cores used
        assert (project["instances"], project["cores"], project["ram"]) == ((3, -1), (6, -1), (768, -1))
        user = await quotas.settable(conn, conf, "p", "u")
        # the project's 4 instances minus 2 + 1 given, plus u's own 2
        assert (user["instances"], user["cores"]) == ((2, 3), (4, 8))
        detail = await quotas.detail(conn, conf, "p", "u")
        assert detail["instances"] == {"limit": 2, "in_use": 2, "reserved": 0}
        assert detail["key_pairs"]["in_use"] == 0
        await quotas.check_deltas(conn, conf, "p", "w", {"instances": 1, "cores": 2})
        with pytest.raises(quotas.OverQuota) as user_over:
            await quotas.check_deltas(conn, conf, "p", "u", {"instances": 1, "cores": 2})
        assert (user_over.value.overs, user_over.value.scope, user_over.value.usages["instances"]) == (
            ["instances"], "user", 2)
        with pytest.raises(quotas.OverQuota) as project_over:
            await quotas.check_deltas(conn, conf, "p", "w", {"instances": 2, "cores": 4})
        assert (project_over.value.overs, project_over.value.scope) == (["cores", "instances"], "project")
        await quotas.limit_check(conn, conf, "p", "u", {"metadata_items": 128})
        with pytest.raises(quotas.OverQuota):
            await quotas.limit_check(conn, conf, "p", "u", {"metadata_items": 129})
    async with db.write() as conn:
        await quotas.delete_limits(conn, "p", "u")
        assert await quotas.overrides(conn, "p", "u") == {}
        assert await quotas.overrides(conn, "p", "v") == {"instances": 1}
        await quotas.delete_limits(conn, "p")
        assert (await quotas.overrides(conn, "p"), await quotas.overrides(conn, "p", "v")) == ({}, {})
    await db.dispose()


async def test_a_flavor_reads_the_same_from_a_list_and_a_boot(tmp_path: Path) -> None:
    """The fields of a flavor taken by position from rows of different shapes (a list's, a boot's with its
    extra specs): the same dict as by name, types and all."""
    db, _ = await _db(tmp_path)
    async with db.read() as conn:
        listed = {f["flavorid"]: f for f in await flavors.list_flavors(conn, project_id=None, is_admin=True)}
        for flavorid in ("1", "42"):
            booted = await flavors.get_for_boot(conn, flavorid, None, True)
            assert booted == listed[flavorid]
            rows = (await conn.execute(flavors._FLAVOR, {"b_flavorid": flavorid})).all()
            by_name = {name: rows[0]._mapping[name] for name in flavors._FIELDS}
            assert {k: booted[k] for k in flavors._FIELDS if k not in ("is_public", "disabled", "rxtx_factor")} \
                == {k: v for k, v in by_name.items() if k not in ("is_public", "disabled", "rxtx_factor")}
            assert booted["is_public"] is True and booted["disabled"] is False
            assert isinstance(booted["rxtx_factor"], float)
    await db.dispose()


async def test_configured_limits_follow_every_change_of_the_options(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``[quota]`` read once and reused, until an override, a cleared override or a new default changes it;
    each caller gets a dict of its own."""
    db, conf = await _db(tmp_path)
    reads: list[int] = []
    read = quotas._read_configured

    def counted(conf_: Any) -> dict[str, int]:
        reads.append(1)
        return read(conf_)

    monkeypatch.setattr(quotas, "_read_configured", counted)
    first = quotas._configured(conf)
    assert quotas._configured(conf) == first and len(reads) == 1
    assert first["cores"] == 20 and first["instances"] == 10
    first["cores"] = 1  # the caller's copy
    assert quotas._configured(conf)["cores"] == 20
    conf.set_override("cores", 7, group="quota")
    assert quotas._configured(conf)["cores"] == 7 and len(reads) == 2
    async with db.read() as conn:
        assert (await quotas.defaults(conn, conf))["cores"] == 7
        assert (await quotas.limits(conn, conf, "p1"))["cores"] == 7
    conf.clear_override("cores", group="quota")
    assert quotas._configured(conf)["cores"] == 20
    conf.set_default("instances", 3, group="quota")
    assert quotas._configured(conf)["instances"] == 3
    conf.clear_default("instances", group="quota")
    assert quotas._configured(conf)["instances"] == 10
    await db.dispose()
