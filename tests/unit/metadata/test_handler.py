"""The metadata app in process (ASGI) on a real SQLite database: the requester found by its fixed IP, as it will
be once guests have networks, and never another guest's data."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus import conf as conf_mod
from stratus import service
from stratus.db import info_cache
from stratus.db.engine import Database
from stratus.db.models import instances
from stratus.metadata import handler
from stratus.utils import new_uuid, utcnow


def _vif(address: str) -> dict[str, Any]:
    """A VIF of Nova's network info model with one fixed IPv4 address."""
    return {"id": new_uuid(), "address": "fa:16:3e:00:00:01",
            "network": {"id": new_uuid(), "subnets": [{"cidr": "10.0.0.0/24", "ips": [
                {"address": address, "type": "fixed", "version": 4, "floating_ips": []}]}]}}


@pytest.fixture
async def db(tmp_path: Path, migrated: Path) -> AsyncIterator[Database]:
    shutil.copy(migrated, tmp_path / "stratus.sqlite")
    database = await service.open_database(conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}}),
                                           sync_schema=False)
    yield database
    await database.dispose()


async def _instance(db: Database, name: str, network_info: list[dict[str, Any]]) -> str:
    uuid = new_uuid()
    now = utcnow()
    async with db.write() as conn:
        await conn.execute(instances.insert().values(
            uuid=uuid, project_id="p", user_id="u", display_name=name, hostname=name, flavor={"name": "m1"},
            vcpus=1, memory_mb=64, root_gb=1, ephemeral_gb=0, vm_state="active", power_state=1, config_drive="",
            reservation_id="r-1", system_metadata={}, security_groups=[],
            created_at=now, updated_at=now))
        await info_cache.save(conn, uuid, network_info)
    return uuid


def _client(app: handler.MetadataApp, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)),
                             base_url="http://169.254.169.254")


async def test_fixed_ip_names_the_instance(db: Database) -> None:
    first = await _instance(db, "one", [_vif("10.0.0.7")])
    await _instance(db, "two", [_vif("10.0.0.70")])  # a prefix of its address must not match
    app = handler.create_app(conf_mod.load(), db, {})
    async with _client(app, "10.0.0.7") as client:
        meta = (await client.get("/openstack/latest/meta_data.json")).json()
        assert meta["uuid"] == first and meta["name"] == "one"
        assert (await client.get("/latest/meta-data/local-ipv4")).text == "10.0.0.7"
        # X-Instance-ID is not trusted without the proxy
        other = await client.get("/openstack/latest/meta_data.json", headers={"X-Instance-ID": new_uuid()})
        assert other.json()["uuid"] == first
    async with _client(app, "10.0.0.8") as client:
        assert (await client.get("/openstack/latest/meta_data.json")).status_code == 404
        assert (await client.get("/")).status_code == 200


async def test_no_caching_with_expiration_zero(db: Database) -> None:
    uuid = await _instance(db, "one", [_vif("10.0.0.9")])
    app = handler.create_app(conf_mod.load(overrides={"api": {"metadata_cache_expiration": 0}}), db, {})
    async with _client(app, "10.0.0.9") as client:
        assert (await client.get("/latest/meta-data/hostname")).text == "one.novalocal"
        async with db.write() as conn:
            await conn.execute(instances.update().where(instances.c.uuid == uuid).values(hostname="renamed"))
        assert (await client.get("/latest/meta-data/hostname")).text == "renamed.novalocal"
    cached = handler.create_app(conf_mod.load(), db, {})
    async with _client(cached, "10.0.0.9") as client:
        assert (await client.get("/latest/meta-data/hostname")).text == "renamed.novalocal"
        async with db.write() as conn:
            await conn.execute(instances.update().where(instances.c.uuid == uuid).values(hostname="later"))
        assert (await client.get("/latest/meta-data/hostname")).text == "renamed.novalocal"  # within 15 s
