"""The detail listing's kept bodies: the same body as a server's own GET (which renders afresh), before and after
every kind of change a body is made of, and bodies rendered again only for what changed."""

from __future__ import annotations

import shutil
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus import conf as conf_mod
from stratus import service
from stratus.api.app import create_app
from stratus.api.server_cache import RenderedServers
from stratus.api.services import ApiServices
from stratus.db import actions, info_cache, instances
from stratus.db.engine import Database
from stratus.db.models import instance_tags
from stratus.identity.auth import NoAuth2
from stratus.utils import new_uuid, utcnow

FLAVOR = {"id": 1, "flavorid": "42", "name": "m1.nano", "memory_mb": 128, "vcpus": 1, "root_gb": 1,
          "ephemeral_gb": 0, "swap": 0, "rxtx_factor": 1.0, "extra_specs": {"hw:cpu_policy": "shared"}}
CONTEXT = {"request_id": "req-1", "user_id": "admin", "project_id": "admin"}
VERSIONS = ["2.1", "2.26", "2.70", "2.100"]
NETWORK_INFO = [{"id": "port-1", "address": "fa:16:3e:00:00:01", "network": {
    "id": "net-1", "label": "private", "subnets": [{"cidr": "10.0.0.0/24", "version": 4, "ips": [
        {"address": "10.0.0.5", "version": 4, "type": "fixed", "floating_ips": [{"address": "172.24.4.9"}]}]}]}}]


def _row(index: int) -> dict[str, Any]:
    return {"uuid": new_uuid(), "project_id": "admin", "user_id": "admin", "display_name": f"s-{index}",
            "hostname": f"s-{index}", "image_ref": new_uuid(), "flavor": FLAVOR, "vcpus": 1, "memory_mb": 128,
            "root_gb": 1, "ephemeral_gb": 0, "vm_state": "active", "task_state": None, "power_state": 1,
            "host": "compute-1", "node": "compute-1", "availability_zone": "nova", "config_drive": "",
            "reservation_id": "r-1", "launch_index": index, "kernel_id": "", "ramdisk_id": "",
            "auto_disk_config": False, "launched_at": utcnow(),
            "system_metadata": {"image_disk_format": "raw", "image_min_ram": 0}, "security_groups": ["default"],
            "trusted_certs": None}


@pytest.fixture
async def cloud(migrated: Path, tmp_path: Path) -> AsyncIterator[tuple[Database, ApiServices, httpx.AsyncClient]]:
    shutil.copy(migrated, tmp_path / "stratus.sqlite")
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    db = await service.open_database(conf)
    services = ApiServices(conf=conf, db=db, transport=None, auth=NoAuth2(), images=None)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://api",
                                 headers={"X-Auth-Token": "admin:admin"}) as client:
        yield db, services, client
    await db.dispose()


async def _check_same_as_show(client: httpx.AsyncClient, version: str) -> list[dict[str, Any]]:
    """Every server of the detail listing (the first listing after a change, and the next one, from the kept
    bodies) is the body its own GET renders afresh."""
    headers = {"OpenStack-API-Version": f"compute {version}"}
    resp = await client.get("/v2.1/servers/detail", headers=headers)
    assert resp.status_code == 200, resp.text
    again = await client.get("/v2.1/servers/detail", headers=headers)
    assert again.json() == resp.json()
    for server in resp.json()["servers"]:
        shown = (await client.get(f"/v2.1/servers/{server['id']}", headers=headers)).json()["server"]
        shown.pop("server_groups", None)  # show's alone (2.71)
        assert server == shown
    return list(resp.json()["servers"])


@pytest.mark.parametrize("version", VERSIONS)
async def test_kept_bodies_follow_every_change_a_body_is_made_of(
        cloud: tuple[Database, ApiServices, httpx.AsyncClient], version: str) -> None:
    db, _services, client = cloud
    rows = [_row(i) for i in range(3)]
    async with db.write() as conn:
        await instances.create(conn, rows, {"role": "web"}, [{"scheduler_hints": {"group": "g"}}] * 3, CONTEXT,
                               tags=["blue"])
    first = await _check_same_as_show(client, version)
    assert {s["metadata"]["role"] for s in first} == {"web"}
    uuid = rows[0]["uuid"]

    async with db.write() as conn:  # every kind of change, each on the same server
        await instances.set_metadata(conn, uuid, {"role": "db", "tier": "1"}, replace=True)
    assert (await _check_same_as_show(client, version))[-1]["id"] == uuid
    async with db.write() as conn:
        await conn.execute(instance_tags.insert().values(instance_uuid=uuid, tag="green"))
    await _check_same_as_show(client, version)
    async with db.write() as conn:
        await info_cache.save(conn, uuid, NETWORK_INFO)
    listed = await _check_same_as_show(client, version)
    assert next(s["addresses"] for s in listed if s["id"] == uuid)["private"][1]["addr"] == "172.24.4.9"
    async with db.write() as conn:
        await instances.update_instance(conn, uuid, {"vm_state": "error", "task_state": None})
        await actions.add_fault(conn, uuid, RuntimeError("it broke"), host="compute-1")
    listed = await _check_same_as_show(client, version)
    assert next(s for s in listed if s["id"] == uuid)["fault"]["message"] == "it broke"
    async with db.write() as conn:
        await instances.update_instance(conn, uuid, {"display_name": "renamed", "progress": 40})
    listed = await _check_same_as_show(client, version)
    assert next(s for s in listed if s["id"] == uuid)["name"] == "renamed"


async def test_only_the_servers_that_changed_are_rendered_again(
        cloud: tuple[Database, ApiServices, httpx.AsyncClient]) -> None:
    db, services, client = cloud
    rows = [_row(i) for i in range(5)]
    async with db.write() as conn:
        await instances.create(conn, rows, {}, [{}] * 5, CONTEXT)
    before = (await client.get("/v2.1/servers/detail")).json()
    rendered = services.rendered
    assert (rendered.hits, rendered.misses) == (0, 5)
    assert (await client.get("/v2.1/servers/detail")).json() == before
    assert (rendered.hits, rendered.misses) == (5, 5)
    async with db.write() as conn:
        await instances.update_instance(conn, rows[2]["uuid"], {"task_state": "rebooting"})
    after = (await client.get("/v2.1/servers/detail")).json()
    assert (rendered.hits, rendered.misses) == (9, 6)
    changed = next(s for s in after["servers"] if s["id"] == rows[2]["uuid"])
    assert changed["OS-EXT-STS:task_state"] == "rebooting"
    # another microversion or another caller's policy answers are another key
    await client.get("/v2.1/servers/detail", headers={"OpenStack-API-Version": "compute 2.26"})
    assert rendered.misses == 11


def test_kept_bodies_hold_only_their_own_bytes() -> None:
    """A kept body costs about its own length: orjson's bytes of a 1.3 KB body hold the whole 16 KB buffer it grew,
    which a thousand kept bodies would have held for nothing."""
    kept = RenderedServers()
    body = {"server": {"id": "x" * 36, "name": "n" * 1200}}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(200):
            kept.put(f"uuid-{index}", (index,), body)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 200 * 3000, f"{grown / 200:.0f} bytes per kept body of 1.3 KB"
