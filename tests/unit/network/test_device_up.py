"""An agent's ``update_device_up``: a port bound to that host goes ACTIVE in one statement and Nova hears
``network-vif-plugged`` once; a second report changes nothing and tells nothing; a report from a host the port is
not bound to, or about a port that is gone, is refused and leaves the port as it was."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from stratus import conf as conf_mod
from stratus.identity.auth import NoAuth2
from stratus.network.agent_rpc import AgentNotifyAPI
from stratus.network.server.app import create_app
from stratus.network.server.notify import Notifier
from stratus.network.server.nova import NovaNotifier
from stratus.network.server.policy import NetworkPolicy
from stratus.network.server.resource import NetworkServices
from stratus.network.server.rpc import NetworkServerEndpoint
from stratus.rpc.local import LocalTransport
from stratus.service import open_database


async def test_update_device_up(tmp_path: Path) -> None:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    database = await open_database(conf)
    posted: list[dict[str, Any]] = []

    async def post(events: list[dict[str, Any]]) -> int:
        posted.extend(events)
        return 200

    nova = NovaNotifier(conf, post)
    notifier = Notifier(database, AgentNotifyAPI(LocalTransport()), nova, ["nova"])
    endpoint = NetworkServerEndpoint(database, notifier, "nova", conf.network_server)
    auth = NoAuth2()
    app = auth.wrap(create_app(NetworkServices(conf=conf, db=database, policy=NetworkPolicy(conf)), auth))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://net/v2.0",
                                 headers={"X-Auth-Token": "admin:admin"}) as client:
        net = (await client.post("/networks", json={"network": {"name": "n"}})).json()["network"]["id"]
        server = str(uuid.uuid4())
        port = (await client.post("/ports", json={"port": {
            "network_id": net, "device_id": server, "device_owner": "compute:nova",
            "binding:host_id": "h1"}})).json()["port"]
        assert port["status"] == "DOWN"

        async def status() -> str:
            return str((await client.get(f"/ports/{port['id']}")).json()["port"]["status"])

        statements: list[str] = []
        assert database.sync_engine is not None
        event.listen(database.sync_engine, "before_cursor_execute",
                     lambda conn, cursor, statement, *args: statements.append(statement))
        assert await endpoint.update_device_up({}, "h2", port["id"]) is False
        assert await status() == "DOWN"
        statements.clear()
        assert await endpoint.update_device_up({}, "h1", port["id"]) is True
        assert [s.split()[0] for s in statements] == ["UPDATE"]
        assert await status() == "ACTIVE"
        await nova.drain()
        assert posted == [{"name": "network-vif-plugged", "server_uuid": server, "tag": port["id"],
                           "status": "completed"}]
        assert await endpoint.update_device_up({}, "h1", port["id"]) is True  # again: nothing new
        await nova.drain()
        assert len(posted) == 1
        assert await endpoint.update_device_up({}, "h1", str(uuid.uuid4())) is False
        # DOWN again from its host: unplugged
        assert await endpoint.update_device_down({}, "h1", port["id"]) is True
        await nova.drain()
        assert await status() == "DOWN" and posted[-1]["name"] == "network-vif-unplugged"
    await database.dispose()
