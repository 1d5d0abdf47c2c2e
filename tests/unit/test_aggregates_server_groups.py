"""Aggregates and server groups without a cloud around them: the API in process on a real SQLite database
(schedulers hear of every aggregate change), and the server group queries other services use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus import conf as conf_mod
from stratus.api.app import create_app
from stratus.api.services import ApiServices
from stratus.db import instances, server_groups
from stratus.db import services as services_db
from stratus.db.engine import Database
from stratus.identity.auth import NoAuth2
from stratus.rpc.local import LocalTransport
from stratus.utils import new_uuid


class SchedulerRecorder:
    """Stands in for the schedulers: counts the ``refresh_hosts`` fanouts."""

    def __init__(self) -> None:
        self.refreshes = 0

    async def refresh_hosts(self, context: dict[str, Any]) -> None:
        self.refreshes += 1


@pytest.fixture
async def api(tmp_path: Path, db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, SchedulerRecorder,
                                                                   LocalTransport]]:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    transport = LocalTransport()
    recorder = SchedulerRecorder()
    await transport.listen("scheduler", recorder)
    async with db.write() as conn:
        await services_db.register(conn, "host-a", "nova-compute", "compute")
    app = create_app(ApiServices(conf=conf, db=db, transport=transport, auth=NoAuth2(), images=None))  # type: ignore[arg-type]
    headers = {"X-Auth-Token": "admin", "OpenStack-API-Version": "compute 2.41"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test/v2.1",
                                 headers=headers) as client:
        yield client, recorder, transport
    await transport.stop()


async def test_every_aggregate_change_refreshes_the_schedulers(
        api: tuple[httpx.AsyncClient, SchedulerRecorder, LocalTransport]) -> None:
    client, recorder, transport = api

    async def refreshes() -> int:
        await transport.stop()  # waits for the fanouts in flight
        return recorder.refreshes

    created = await client.post("/os-aggregates", json={"aggregate": {"name": "a", "availability_zone": "z"}})
    assert created.status_code == 200, created.text
    agg_id = created.json()["aggregate"]["id"]
    assert await refreshes() == 1
    steps = [("PUT", f"/os-aggregates/{agg_id}", {"aggregate": {"name": "b"}}),
             ("POST", f"/os-aggregates/{agg_id}/action", {"add_host": {"host": "host-a"}}),
             ("POST", f"/os-aggregates/{agg_id}/action", {"set_metadata": {"metadata": {"k": "v"}}}),
             ("POST", f"/os-aggregates/{agg_id}/action", {"remove_host": {"host": "host-a"}}),
             ("DELETE", f"/os-aggregates/{agg_id}", None)]
    for number, (method, path, body) in enumerate(steps, start=2):
        resp = await client.request(method, path, json=body)
        assert resp.status_code == 200, resp.text
        assert await refreshes() == number
    # Reads and refusals change nothing: no fanout.
    for method, path, body in (("GET", "/os-aggregates", None), ("GET", f"/os-aggregates/{agg_id}", None),
                               ("POST", "/os-aggregates/1/action", {"add_host": {"host": "unknown"}}),
                               ("DELETE", f"/os-aggregates/{agg_id}", None)):
        await client.request(method, path, json=body)
    assert await refreshes() == len(steps) + 1


async def _instance(db: Database, project_id: str = "p", user_id: str = "u") -> str:
    uuid = new_uuid()
    row = {"uuid": uuid, "project_id": project_id, "user_id": user_id, "flavor": {}, "vcpus": 1, "memory_mb": 64,
           "root_gb": 1, "vm_state": "building", "reservation_id": "r-1"}
    async with db.write() as conn:
        await instances.create(conn, [row], {}, [{}], {"user_id": user_id, "project_id": project_id,
                                                      "request_id": "req-1"})
    return uuid


async def test_group_queries_for_the_boot_path_and_the_scheduler(db: Database) -> None:
    first, second, other_user = await _instance(db), await _instance(db), await _instance(db, user_id="v")
    async with db.write() as conn:
        group = await server_groups.create(conn, name="g", project_id="p", user_id="u", policy="anti-affinity",
                                           rules={"max_server_per_host": 2})
        await server_groups.add_members(conn, group["id"], [first, second, other_user])
        await server_groups.add_members(conn, group["id"], [first])  # already a member: no error, no duplicate
    async with db.read() as conn:
        found = await server_groups.get(conn, group["uuid"], None)
        assert found is not None
        assert await server_groups.get(conn, group["uuid"], "p") == found
        assert await server_groups.get(conn, group["uuid"], "q") is None  # another project's: not found
        assert {k: found[k] for k in ("id", "uuid", "name", "project_id", "user_id", "policy", "rules")} == {
            "id": group["id"], "uuid": group["uuid"], "name": "g", "project_id": "p", "user_id": "u",
            "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}
        assert sorted(found["members"]) == sorted([first, second, other_user])
        assert await server_groups.count_members(conn, group["id"], "u") == 2
        assert await server_groups.get(conn, new_uuid(), None) is None
    async with db.write() as conn:
        assert await instances.soft_delete(conn, first)
    async with db.read() as conn:
        found = await server_groups.get(conn, group["uuid"], "p")
        assert found is not None and sorted(found["members"]) == sorted([second, other_user])
        assert await server_groups.count_members(conn, group["id"], "u") == 1
        assert [g["uuid"] for g in await server_groups.list_groups(conn, "p")] == [group["uuid"]]
        assert await server_groups.list_groups(conn, "q") == []
        assert await server_groups.count_by_project(conn, "p") == 1
    async with db.write() as conn:
        assert await server_groups.delete_group(conn, group["id"])
        assert not await server_groups.delete_group(conn, group["id"])
