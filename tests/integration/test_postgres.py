"""The same cloud on a real PostgreSQL: migrations, the boot flow, filters, and claims under concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stratus import conf as conf_mod
from stratus import exception
from stratus.db import info_cache, placement
from stratus.db.models import instances
from stratus.local_cloud import start_cloud, stop_cloud
from stratus.service import open_database
from stratus.utils import utcnow
from tests.functional.helpers import boot, upload_image, wait_for_status, wait_gone

pytestmark = pytest.mark.integration


async def test_claims_hold_under_concurrency_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "database": {"connection": postgres_url}})
    db = await open_database(conf)
    async with db.write() as conn:
        rp = await placement.ensure_provider(conn, "33333333-3333-3333-3333-333333333333", "pg-node", {
            "VCPU": {"total": 4, "allocation_ratio": 1.0}})

    async def one(i: int) -> bool:
        for _ in range(50):
            try:
                async with db.write() as conn:
                    return await placement.claim(conn, rp, f"pg-consumer-{i}", "p", "u", {"VCPU": 1})
            except exception.ConcurrentUpdateDetected:
                await asyncio.sleep(0.001)
        return False

    results = await asyncio.gather(*(one(i) for i in range(16)))
    assert sum(results) == 4
    async with db.read() as conn:
        assert (await placement.provider_usages(conn, [rp]))[rp] == {"VCPU": 4}
    async with db.write() as conn:
        for i in range(16):
            await placement.remove_allocations(conn, f"pg-consumer-{i}")
    await db.dispose()


async def test_the_info_cache_round_trips_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    """The cache's statements built once (the network info bound as JSON) on PostgreSQL's driver too."""
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "database": {"connection": postgres_url}})
    db = await open_database(conf)
    uuid = "44444444-4444-4444-4444-444444444444"
    vifs = [{"id": "port-1", "address": "fa:16:3e:00:00:01", "network": {"subnets": [{"ips": [
        {"address": "10.0.0.5", "version": 4}]}]}}]
    now = utcnow()
    try:
        async with db.write() as conn:
            await conn.execute(instances.insert().values(
                uuid=uuid, project_id="p", user_id="u", flavor={}, vcpus=1, memory_mb=64, root_gb=1,
                ephemeral_gb=0, vm_state="building", power_state=0, config_drive="", reservation_id="r-1",
                system_metadata={}, security_groups=[], created_at=now, updated_at=now))
            await info_cache.save(conn, uuid, vifs)  # no row yet: created
        async with db.read() as conn:
            assert await info_cache.get(conn, uuid) == vifs
        async with db.write() as conn:
            await info_cache.save(conn, uuid, [])  # the row replaced
        async with db.read() as conn:
            assert await info_cache.get(conn, uuid) == []
    finally:
        async with db.write() as conn:
            await conn.execute(info_cache.instance_info_caches.delete()
                               .where(info_cache.instance_info_caches.c.instance_uuid == uuid))
            await conn.execute(instances.delete().where(instances.c.uuid == uuid))
        await db.dispose()


def test_boot_flow_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    cloud = start_cloud(tmp_path, extra_conf=f"""
        [database]
        connection = {postgres_url}
        """)
    try:
        with cloud.image_client() as img:
            image = upload_image(img)
        with cloud.client(token="pg:pg-project", version="2.26") as c:
            resp = boot(c, image["id"], name="pgvm", min_count=3, metadata={"k": "v"})
            assert resp.status_code == 202, resp.text
            servers = c.get("/servers", params={"name": "^pgvm-"}).json()["servers"]
            assert len(servers) == 3
            for s in servers:
                wait_for_status(c, s["id"], {"ACTIVE"})
            assert c.put(f"/servers/{servers[0]['id']}/tags/x").status_code == 201
            tagged = c.get("/servers/detail", params={"tags": "x"}).json()["servers"]
            assert [s["id"] for s in tagged] == [servers[0]["id"]]
            assert tagged[0]["metadata"] == {"k": "v"}
            assert len(c.get("/servers/detail", params={"flavor": "1", "status": "ACTIVE"}).json()["servers"]) == 3
            # the listings' statements of each shape of filters (bound values, one statement per shape) on
            # PostgreSQL: marker paging in both sort directions, several states, a status with no server
            for direction in ("asc", "desc"):
                everyone = c.get("/servers/detail", params={"sort_key": "display_name", "sort_dir": direction}
                                 ).json()["servers"]
                first = c.get("/servers", params={"sort_key": "display_name", "sort_dir": direction, "limit": 2}
                              ).json()["servers"]
                rest = c.get("/servers", params={"sort_key": "display_name", "sort_dir": direction,
                                                 "marker": first[-1]["id"]}).json()["servers"]
                assert [s["id"] for s in first + rest] == [s["id"] for s in everyone]
                assert len(everyone) == 3
            assert c.get("/servers", params={"status": "BUILD"}).json()["servers"] == []
            assert len(c.get("/servers", params={"status": ["ACTIVE", "ERROR"]}).json()["servers"]) == 3
        with cloud.client(version="2.51") as admin:  # each step's event opened and closed on PostgreSQL
            actions = admin.get(f"/servers/{servers[0]['id']}/os-instance-actions").json()["instanceActions"]
            (create,) = [a for a in actions if a["action"] == "create"]
            events = admin.get(f"/servers/{servers[0]['id']}/os-instance-actions/{create['request_id']}"
                               ).json()["instanceAction"]["events"]
            assert sorted((e["event"], e["result"]) for e in events) == [
                ("compute__do_build_and_run_instance", "Success"),
                ("conductor_schedule_and_build_instances", "Success")]
        with cloud.client(token="pg:pg-project", version="2.26") as c:
            for s in servers:
                assert c.delete(f"/servers/{s['id']}").status_code == 204
            for s in servers:
                wait_gone(c, s["id"])
    finally:
        stop_cloud(cloud)
        print(cloud.log()[-3000:])


def test_embedded_identity_on_postgres(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATUS_ADMIN_PASSWORD", "pg-admin-password")  # the bootstrap's other source
    cloud = start_cloud(tmp_path, extra_conf=f"""
        [database]
        connection = {postgres_url}
        [identity]
        password_hash_rounds = 4
        """, auth_strategy="embedded")
    try:
        admin = cloud.connect(password="pg-admin-password")
        project = admin.identity.create_project(name="pg-project", domain_id="default")
        user = admin.identity.create_user(name="pg-user", password="pg-pw", domain_id="default")
        member = admin.identity.find_role("member")
        admin.identity.assign_project_role_to_user(project, user, member)
        from openstack import exceptions

        with pytest.raises(exceptions.ConflictException):
            admin.identity.create_user(name="pg-user", password="x", domain_id="default")
        conn = cloud.connect("pg-user", "pg-pw", "pg-project")
        assert list(conn.compute.servers()) == []
        token = conn.session.get_token()
        with cloud.client(token=token) as c:
            assert c.get("/servers").status_code == 200
            admin.identity.unassign_project_role_from_user(project, user, member)  # revokes the user's tokens
            assert c.get("/servers").status_code == 401
        admin.identity.delete_user(user)
        admin.identity.delete_project(project)
    finally:
        stop_cloud(cloud)
        print(cloud.log()[-3000:])
