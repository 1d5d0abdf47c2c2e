"""Real TCG guests on the private libvirtd, which runs inside the compute host's namespace: two guests on one
network get their addresses by DHCP (the test guest's udhcpc) and ping each other, a floating IP reaches one
from the external network while its security group lets ICMP in (and not once the rule is gone), driven
through the libvirt driver (spawn with network_info, hot plug of a second NIC) and the data plane's agents
(linuxbridge, DHCP, L3)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stratus import conf as conf_mod
from stratus.image.client import ImageClient
from stratus.network.agent.dataplane_agents import DataplaneAgents
from stratus.network.dataplane import bridges, fabric, names
from stratus.network.dataplane import netns as nsutil
from stratus.rpc.local import LocalTransport
from tests.integration.dataplane_env import Env, Server, require_root_tools, vif
from tests.integration.guest import CMDLINE

pytestmark = pytest.mark.integration
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
RULES = [{"direction": "egress", "ethertype": "IPv4"},
         {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"}]


class GuestFiles(ImageClient):
    """The test guest's three files as images (what the driver asks of the image service: show, download)."""

    def __init__(self, guest_dir: Path) -> None:
        self.files = {"kernel": guest_dir / "vmlinuz", "ramdisk": guest_dir / "initrd.img",
                      "disk": guest_dir / "disk.qcow2"}

    async def show(self, context: dict[str, Any], image_id: str) -> dict[str, Any]:
        formats = {"kernel": "aki", "ramdisk": "ari", "disk": "qcow2"}
        return {"id": image_id, "status": "active", "disk_format": formats[image_id],
                "size": self.files[image_id].stat().st_size}

    async def find(self, context: dict[str, Any], name_or_id: str) -> dict[str, Any]:
        return await self.show(context, name_or_id)

    async def download(self, context: dict[str, Any], image_id: str) -> AsyncIterator[bytes]:  # type: ignore[override]
        yield await asyncio.to_thread(self.files[image_id].read_bytes)

    async def create(self, context: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def update(self, context: dict[str, Any], image_id: str, values: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def list(self, context: dict[str, Any], params: dict[str, str]) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def patch(self, context: dict[str, Any], image_id: str, values: dict[str, Any],
                    remove: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    async def upload(self, context: dict[str, Any], image_id: str, chunks: Any) -> None:
        raise NotImplementedError

    async def delete(self, context: dict[str, Any], image_id: str) -> None:
        raise NotImplementedError

    async def locations(self, context: dict[str, Any], image: dict[str, Any]) -> list[dict[str, Any]]:
        return []

    async def copy_to_store(self, context: dict[str, Any], image_id: str, store: str) -> None:
        raise NotImplementedError

    async def add_location(self, context: dict[str, Any], image_id: str, url: str, store: str | None) -> None:
        raise NotImplementedError


def _instance(uuid: str, name: str) -> dict[str, Any]:
    return {"uuid": uuid, "id": 1, "name": name, "display_name": name, "vcpus": 1, "memory_mb": 128, "root_gb": 0,
            "ephemeral_gb": 0, "user_id": "u", "project_id": "p", "flavor": {"name": "tiny", "extra_specs": {}}}


async def _console_until(path: str, marker: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while True:
        text = await asyncio.to_thread(lambda: open(path, errors="replace").read() if os.path.exists(path) else "")
        if marker in text or time.monotonic() > deadline:
            return text
        await asyncio.sleep(1)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    require_root_tools()
    env = Env()
    try:
        yield env
    finally:
        await asyncio.to_thread(env.cleanup)
        assert env.leftovers() == []


async def test_two_guests_get_leases_and_ping_each_other(env: Env, test_guest: Path) -> None:
    started = time.monotonic()
    host = env.host("c")
    await asyncio.to_thread(fabric.join, host)
    lv_dir = tempfile.mkdtemp(prefix="lv", dir="/tmp")
    proc = await asyncio.to_thread(subprocess.run, [str(SCRIPTS / "libvirt.sh"), "start", lv_dir,
                                                    names.host_namespace(host)],
                                   capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    uri = proc.stdout.strip().splitlines()[-1]
    transport, server = LocalTransport(), Server()
    await transport.listen("network_server", server)
    agents = DataplaneAgents(transport, [host], host, env.state_dir, resync_interval=1)
    from stratus.virt.libvirt.driver import LibvirtDriver

    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": os.path.join(env.state_dir, "state")},
                                    "libvirt": {"virt_type": "qemu", "connection_uri": uri}})
    driver = LibvirtDriver(conf, host)
    driver.images = GuestFiles(test_guest)
    instances: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    try:
        await agents.start()
        lb = agents.agents[0]
        await driver.init_host(host)
        net = env.network("net", "10.50.0.0/24", "10.50.0.1", 1031)
        net2 = env.network("net2", "10.60.0.0/24", None, 1032)
        dhcp_port = env.port(net, "10.50.0.2", "network:dhcp")
        p1, p2 = env.port(net, "10.50.0.11"), env.port(net, "10.50.0.12")
        await transport.fanout("dhcp_agent", "network_update", {}, network=net, subnets=net["subnets"],
                               ports=[dhcp_port, p1, p2])
        for port in (p1, p2):
            server.ports[port["id"]] = {**port, "binding:host_id": host, "network": net, "subnets": net["subnets"],
                                        "security_group_rules": RULES}
            await transport.cast("network_agent", "port_update", {}, server=host, port=server.ports[port["id"]])
        await lb.settle()
        deadline = time.monotonic() + 30
        while not env.server_running(net["id"], os.path.join(env.state_dir, "dhcp")):
            assert time.monotonic() < deadline, "no dnsmasq"
            await asyncio.sleep(0.2)
        setup = time.monotonic() - started

        image = {"id": "disk", "disk_format": "qcow2", "kernel_id": "kernel", "ramdisk_id": "ramdisk"}
        for name, port, peer in (("dp-vm1", p1, "10.50.0.12"), ("dp-vm2", p2, "10.50.0.11")):
            instance = _instance(f"00000000-0000-4000-8000-{port['id'][-12:]}", name)
            network_info = [vif(port, net, "10.50.0.2")]
            instances.append((instance, network_info))
            await driver.spawn(instance, {**image, "os_command_line": f"{CMDLINE} stratus.ping={peer}"},
                               network_info=network_info)
        spawned = time.monotonic() - started
        # The agent sees QEMU's taps on the bridge and reports both ports up.
        deadline = time.monotonic() + 30
        while not {("up", host, p1["id"]), ("up", host, p2["id"])} <= set(server.calls):
            assert time.monotonic() < deadline, server.calls
            await asyncio.sleep(0.2)
        logs = [await _console_until(driver.console_log(i), "STRATUS-PING-DONE", 300) for i, _ in instances]

        booted = time.monotonic() - started
        assert "STRATUS-IP: eth0 10.50.0.11/24 router=10.50.0.1" in logs[0], logs[0]
        assert "STRATUS-IP: eth0 10.50.0.12/24" in logs[1], logs[1]
        assert "169.254.169.254/32 10.50.0.2" in logs[0]   # the metadata route via the DHCP port
        assert "STRATUS-PING: 10.50.0.12 ok" in logs[0], logs[0]
        assert "STRATUS-PING: 10.50.0.11 ok" in logs[1], logs[1]

        # A router with a floating IP for guest 1: reached from a namespace on the external network, through
        # qrouter's DNAT, as long as guest 1's security group lets ICMP in.
        ext = env.network("ext", "172.24.4.0/24", "172.24.4.1", 1033)
        outside = await asyncio.to_thread(env.guest, host, ext, env.port(ext, "172.24.4.1"))
        await asyncio.to_thread(nsutil.run, outside, ["ip", "addr", "add", "172.24.4.1/24", "dev", "eth0"])
        qr = {**env.port(net, "10.50.0.1", "network:router_interface"), "network": net, "subnets": net["subnets"]}
        qg = {**env.port(ext, "172.24.4.10", "network:router_gateway"), "network": ext, "subnets": ext["subnets"]}
        router_id = env.tag + "-router"
        env.routers.append(agents.agents[-1].router_for(router_id))
        fip = {"floating_ip_address": "172.24.4.20", "fixed_ip_address": "10.50.0.11", "port_id": p1["id"]}
        await transport.fanout("l3_agent", "router_update", {}, router={"id": router_id, "enable_snat": True},
                               interfaces=[qr], gateway=qg, floating_ips=[fip])
        assert await asyncio.to_thread(env.ping_until, outside, "172.24.4.20", True, 30)
        server.ports[p1["id"]] = {**server.ports[p1["id"]], "security_group_rules": RULES[:1]}
        await transport.cast("network_agent", "security_groups_updated", {}, server=host, port_ids=[p1["id"]])
        assert not await asyncio.to_thread(env.ping_until, outside, "172.24.4.20", False, 30)
        server.ports[p1["id"]] = {**server.ports[p1["id"]], "security_group_rules": RULES}
        await transport.cast("network_agent", "security_groups_updated", {}, server=host, port_ids=[p1["id"]])
        assert await asyncio.to_thread(env.ping_until, outside, "172.24.4.20", True, 30)
        routed = time.monotonic() - started

        # Hot plug: a second NIC on another network appears as a tap on that network's bridge, and goes.
        p3 = env.port(net2, "10.60.0.11")
        extra = vif(p3, net2)
        await driver.attach_interface(instances[0][0], extra)
        tap = await asyncio.to_thread(bridges.tap_state, host, p3["id"])
        assert tap is not None and tap["bridge"] == names.bridge_name(net2["id"])
        xml = await driver.host.call(lambda c: c.lookupByUUIDString(instances[0][0]["uuid"]).XMLDesc(0))
        assert xml.count("<interface type='bridge'>") == 2
        await driver.detach_interface(instances[0][0], extra)
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(bridges.tap_state, host, p3["id"]) is not None:
            assert time.monotonic() < deadline, "the detached tap stayed"
            await asyncio.sleep(0.5)
        print(f"setup {setup:.1f}s (libvirtd in {names.host_namespace(host)}, the agents, DHCP), both spawned at "
              f"{spawned:.1f}s, leases and pings done at {booted:.1f}s, floating IP and its group checked at "
              f"{routed:.1f}s")
    finally:
        teardown = time.monotonic()
        for instance, network_info in instances:
            await driver.destroy(instance, network_info=network_info)
        await agents.stop()
        await transport.stop()
        await asyncio.to_thread(subprocess.run, [str(SCRIPTS / "libvirt.sh"), "stop", lv_dir], timeout=120)
        await asyncio.to_thread(subprocess.run, ["rm", "-rf", lv_dir])
        print(f"teardown of guests, agent and libvirtd {time.monotonic() - teardown:.1f}s")
