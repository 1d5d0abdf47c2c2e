"""The Networking service's events to Nova (``nova.EventPoster``) against the real compute API application: handed
to it in-process when this process serves it (``in_process.register``), POSTed over HTTP when it is served
elsewhere; either way each event reaches the compute host of its server, and the events API's policy decides
(the token is checked, not taken for granted)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from stratus import conf as conf_mod
from stratus.api.app import create_app
from stratus.api.services import ApiServices
from stratus.db.engine import Database
from stratus.db.models import instances
from stratus.identity.auth import NoAuth2
from stratus.network import in_process
from stratus.network.server import nova
from stratus.rpc.local import LocalTransport
from stratus.service import open_database
from stratus.utils import new_uuid, utcnow


class ComputeHost:
    """Stands in for one compute host's manager: the external events cast to it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def external_instance_event(self, context: dict[str, Any], events: list[dict[str, Any]]) -> None:
        assert context["is_admin"]
        self.events += events


class Compute:
    """The compute API application (as ``stratus.service`` serves it, behind noauth2), its two hosts' RPC
    listeners and a server on each host (two on ``h1``)."""

    def __init__(self, app: Any, transport: LocalTransport, hosts: dict[str, ComputeHost],
                 servers: dict[str, str]) -> None:
        self.app = app
        self.transport = transport
        self.hosts = hosts
        self.servers = servers  # server uuid -> its host


@pytest.fixture
async def compute(tmp_path: Path) -> AsyncIterator[Compute]:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    db: Database = await open_database(conf)
    transport = LocalTransport()
    hosts = {"h1": ComputeHost(), "h2": ComputeHost()}
    for name, host in hosts.items():
        await transport.listen("compute", host, server=name)
    servers = {new_uuid(): "h1", new_uuid(): "h1", new_uuid(): "h2"}
    now = utcnow()
    async with db.write() as conn:
        for uuid, host in servers.items():
            await conn.execute(instances.insert().values(
                uuid=uuid, project_id="p", user_id="u", display_name="s", hostname="s", flavor={"name": "m1"},
                vcpus=1, memory_mb=64, root_gb=1, ephemeral_gb=0, vm_state="building", power_state=0,
                config_drive="", reservation_id="r-1", system_metadata={}, security_groups=[], host=host,
                created_at=now, updated_at=now))
    auth = NoAuth2()
    app = auth.wrap(create_app(ApiServices(conf=conf, db=db, transport=transport, auth=auth,
                                           images=None)))  # type: ignore[arg-type]
    yield Compute(app, transport, hosts, servers)
    await transport.stop()
    await db.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _events(compute: Compute) -> list[dict[str, Any]]:
    """A network-vif-plugged for each server (its port the tag), and one for a server that does not exist."""
    out = [{"name": "network-vif-plugged", "server_uuid": uuid, "tag": f"port-of-{uuid}", "status": "completed"}
           for uuid in compute.servers]
    return [*out, {"name": "network-vif-plugged", "server_uuid": new_uuid(), "tag": "stray", "status": "completed"}]


async def _delivered(compute: Compute) -> dict[str, list[tuple[str, str]]]:
    await compute.transport.stop()  # waits for the casts in flight
    return {name: sorted((e["server_uuid"], e["tag"]) for e in host.events) for name, host in compute.hosts.items()}


def _expected(compute: Compute) -> dict[str, list[tuple[str, str]]]:
    return {name: sorted((uuid, f"port-of-{uuid}") for uuid, host in compute.servers.items() if host == name)
            for name in compute.hosts}


async def test_events_go_in_process_each_to_its_servers_host(compute: Compute,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    port = _free_port()  # nothing listens there: an HTTP POST would fail
    in_process.register("127.0.0.1", port, compute.app)
    try:
        poster = nova.noauth_post(f"http://127.0.0.1:{port}/v2.1")
        notifier = nova.NovaNotifier(conf_mod.load(), poster)
        with caplog.at_level(logging.INFO, logger=nova.LOG.name):
            notifier.send(_events(compute)[:1])
            await asyncio.sleep(0)  # the first POST on its way
            notifier.send(_events(compute)[1:])  # the next one
            await notifier.drain()
    finally:
        in_process.unregister(port)
    assert poster.in_process is True
    assert await _delivered(compute) == _expected(compute)
    assert "Nova's events go in-process" in caplog.text and "could not send" not in caplog.text


async def test_in_process_events_are_authorised_as_over_http(compute: Compute) -> None:
    """A token the events API's policy refuses is refused in-process too: nothing reaches a host."""

    class Member(nova.NoAuthTarget):
        TOKEN = "someone:p"

    port = _free_port()
    in_process.register("127.0.0.1", port, compute.app)
    try:
        poster = nova.EventPoster(Member(f"http://127.0.0.1:{port}/v2.1"))
        assert await poster(_events(compute)) == 403
        assert poster.in_process is True
        assert await nova.noauth_post(f"http://127.0.0.1:{port}/v2.1")(_events(compute)) == 207
    finally:
        in_process.unregister(port)
    assert await _delivered(compute) == _expected(compute)  # the admin's POST only


async def test_a_refused_token_is_fetched_again_once(compute: Compute) -> None:
    """A 401 in-process (a token that expired meanwhile) invalidates it and the POST goes once more with a new
    one, as keystoneauth does over HTTP: the events arrive once."""

    class Expiring(nova.NoAuthTarget):
        def __init__(self, url: str) -> None:
            super().__init__(url)
            self.invalidated = 0

        def cached_token(self) -> str | None:
            return None

        def token(self) -> str:
            return self.TOKEN if self.invalidated else ""  # none at first: noauth2's 401

        def invalidate(self) -> None:
            self.invalidated += 1

    port = _free_port()
    in_process.register("127.0.0.1", port, compute.app)
    try:
        target = Expiring(f"http://127.0.0.1:{port}/v2.1")
        assert await nova.EventPoster(target)(_events(compute)) == 207
    finally:
        in_process.unregister(port)
    assert target.invalidated == 1
    assert await _delivered(compute) == _expected(compute)


async def test_a_compute_api_elsewhere_gets_the_events_over_http(compute: Compute) -> None:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(compute.app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done()
            await asyncio.sleep(0.01)
        poster = nova.noauth_post(f"http://127.0.0.1:{port}/v2.1")  # served, but not registered in-process
        assert await poster(_events(compute)) == 207
        assert poster.in_process is False
    finally:
        server.should_exit = True
        await serving
    assert await _delivered(compute) == _expected(compute)


async def test_one_event_of_one_server_reaches_its_host_alone(compute: Compute) -> None:
    """The common batch (one port went ACTIVE): its server's host gets it, no other host anything."""
    port = _free_port()
    in_process.register("127.0.0.1", port, compute.app)
    uuid = next(u for u, host in compute.servers.items() if host == "h2")
    event = {"name": "network-vif-plugged", "server_uuid": uuid, "tag": f"port-of-{uuid}", "status": "completed"}
    try:
        assert await nova.noauth_post(f"http://127.0.0.1:{port}/v2.1")([event]) == 200
        assert await nova.noauth_post(f"http://127.0.0.1:{port}/v2.1")([{**event, "server_uuid": new_uuid()}]) == 404
    finally:
        in_process.unregister(port)
    assert await _delivered(compute) == {"h1": [], "h2": [(uuid, f"port-of-{uuid}")]}
