"""kill -9 of the all-in-one at each step of a build, then a start on the same data: every server ends ACTIVE or
ERROR within the build timeout, and the allocation tables hold exactly the claims of the instances on hosts.

The kill lands exactly where each test wants it: the conductor's steps through crash points (stratus/failpoints.py:
the process SIGKILLs itself there), the compute host's through the fake driver's slow steps (the test watches the
API until every server is in that step, then kills the process). Nothing sleeps: every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import sqlite3
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from stratus.local_cloud import Cloud, start_cloud
from tests.functional.helpers import boot, upload_image

COUNT = 40
TIMEOUT = 30  # [DEFAULT] instance_build_timeout of these clouds: the deadline for every server to settle
CONF = textwrap.dedent(f"""\
    [DEFAULT]
    instance_build_timeout = {TIMEOUT}
    # every build of a boot under way at once, however the scheduler spreads them (Nova's default of 10 per host
    # would hold some back when a host gets more than 10 of the 40, and they would never all be spawning)
    max_concurrent_builds = 0
    [conductor]
    build_recovery_interval = 1
    [quota]
    instances = 100
    cores = 100
    """)


def _db(cloud: Cloud) -> sqlite3.Connection:
    return sqlite3.connect(Path(cloud.state_path) / "stratus.sqlite")


def _rows(cloud: Cloud, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(_db(cloud)) as db:
        return list(db.execute(query).fetchall())


def _crash_on_boot(tmp: Path, failpoint: str, extra: str = "") -> tuple[Cloud, str]:
    """A cloud armed to die at ``failpoint``; boots a multi-create of COUNT and waits for the kill."""
    # the first run's recovery pass must not take the builds before the boot's cast reaches the conductor (on a
    # loaded machine that cast can take over a second): only the restarted cloud recovers them
    first = CONF.replace("build_recovery_interval = 1", "build_recovery_interval = 600")
    cloud = start_cloud(tmp, first + extra, env={"STRATUS_FAILPOINTS": failpoint})
    with cloud.image_client() as img:
        image = upload_image(img)["id"]
    with cloud.client() as c, contextlib.suppress(httpx.TransportError):  # the kill may beat the 202 out
        resp = boot(c, image, name="crash", min_count=COUNT)
        assert resp.status_code == 202, resp.text
    assert cloud.proc.wait(timeout=30) == -9, cloud.log()
    return cloud, image


def _kill_when(cloud: Cloud, task_state: str) -> None:
    """kill -9 once every server of the boot is in ``task_state``."""
    deadline = time.monotonic() + 30
    with cloud.client() as c:
        while True:
            servers = c.get("/servers/detail").json()["servers"]
            if len(servers) == COUNT and all(s["OS-EXT-STS:task_state"] == task_state for s in servers):
                break
            assert time.monotonic() < deadline, [s["OS-EXT-STS:task_state"] for s in servers]
            time.sleep(0.05)
    cloud.proc.kill()
    assert cloud.proc.wait(timeout=30) == -9


def _kill(cloud: Cloud) -> None:
    """The end of a test: the outcome is checked, nothing to stop gracefully."""
    cloud.proc.kill()
    cloud.proc.wait()


def _restart(tmp: Path, conf: str = CONF) -> Cloud:
    return start_cloud(tmp, conf)


def _settle(cloud: Cloud) -> dict[str, dict[str, Any]]:
    """Every server, once each is ACTIVE or ERROR (within the build timeout)."""
    deadline = time.monotonic() + TIMEOUT
    with cloud.client() as c:
        while True:
            servers = {s["id"]: s for s in c.get("/servers/detail").json()["servers"]}
            if len(servers) == COUNT and all(s["status"] in ("ACTIVE", "ERROR") for s in servers.values()):
                return servers
            assert time.monotonic() < deadline, sorted(s["status"] for s in servers.values())
            time.sleep(0.05)


def _allocations_match(cloud: Cloud) -> dict[str, int]:
    """Every allocation belongs to a live instance, on its node, for exactly its flavor (never twice); an ACTIVE
    instance has that allocation, an ERROR one has it or none. Returns how many instances of each state hold
    one."""
    expected: dict[str, tuple[str, str | None, list[tuple[str, str, int]]]] = {}
    live = "select uuid, vm_state, node, vcpus, memory_mb, root_gb + ephemeral_gb from instances where deleted = 0"
    for uuid, vm_state, node, vcpus, ram, disk in _rows(cloud, live):
        expected[uuid] = (vm_state, node, sorted([(node, "DISK_GB", disk), (node, "MEMORY_MB", ram),
                                                  (node, "VCPU", vcpus)]))
    held: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for consumer, provider, rc, used in _rows(cloud, "select a.consumer_id, p.name, a.resource_class, a.used "
                                                     "from allocations a join resource_providers p "
                                                     "on p.id = a.resource_provider_id"):
        held[consumer].append((provider, rc, used))
    assert set(held) <= set(expected), f"allocations of no live instance: {set(held) - set(expected)}"
    holding: dict[str, int] = defaultdict(int)
    for uuid, (vm_state, node, claim) in expected.items():
        got = sorted(held.get(uuid, []))
        if vm_state == "active" or got:
            assert node is not None and got == claim, (uuid, vm_state, got, claim)
            holding[vm_state] += 1
        else:
            assert vm_state == "error", (uuid, vm_state)
    return dict(holding)


@pytest.mark.parametrize(("failpoint", "before"), [
    # right after POST's 202: the rows are written, no conductor has taken the builds yet
    ("conductor.received", "select count(*) from request_specs where conductor_id is null"),
    # taken by the conductor, no host chosen
    ("conductor.leased", "select count(*) from request_specs where conductor_id is not null"),
    # the scheduler's claims are written, no host recorded on the instances: claims the restart must give back
    ("conductor.claimed", "select count(distinct consumer_id) from allocations"),
])
def test_a_multi_create_killed_before_it_has_hosts_is_scheduled_again(tmp_path: Path, failpoint: str,
                                                                      before: str) -> None:
    cloud, _ = _crash_on_boot(tmp_path, failpoint)
    assert _rows(cloud, "select vm_state, task_state, count(*) from instances where host is null group by 1, 2"
                 ) == [("building", "scheduling", COUNT)]
    assert _rows(cloud, before) == [(COUNT,)]
    cloud = _restart(tmp_path)
    try:
        servers = _settle(cloud)
        assert {s["status"] for s in servers.values()} == {"ACTIVE"}
        assert _allocations_match(cloud) == {"active": COUNT}
        assert cloud.log().count("scheduling it again") == COUNT
    finally:
        _kill(cloud)


def test_builds_killed_during_spawn_end_in_error_with_their_claims(tmp_path: Path) -> None:
    cloud = start_cloud(tmp_path, CONF + "[fake_driver]\nspawn_time = 60\n")
    with cloud.image_client() as img:
        image = upload_image(img)["id"]
    with cloud.client() as c:
        assert boot(c, image, name="crash", min_count=COUNT).status_code == 202
    _kill_when(cloud, "spawning")
    cloud = _restart(tmp_path)
    try:
        servers = _settle(cloud)
        assert {s["status"] for s in servers.values()} == {"ERROR"}
        with cloud.client() as c:
            for server_id in list(servers)[:3]:
                fault = c.get(f"/servers/{server_id}").json()["server"]["fault"]["message"]
                assert fault.startswith(f"Instance {server_id} was building when compute host compute-"), fault
        assert _allocations_match(cloud) == {"error": COUNT}  # as Nova: claims stay until the delete
        with cloud.client() as c:
            for server_id in servers:
                assert c.delete(f"/servers/{server_id}").status_code == 204
        deadline = time.monotonic() + TIMEOUT
        while _rows(cloud, "select count(*) from allocations") != [(0,)]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        _kill(cloud)


def test_a_build_that_stalls_times_out_and_gives_its_claim_back(tmp_path: Path) -> None:
    cloud = start_cloud(tmp_path, CONF.replace(f"instance_build_timeout = {TIMEOUT}", "instance_build_timeout = 2")
                        + "[fake_driver]\nspawn_time = 60\n")
    try:
        with cloud.image_client() as img:
            image = upload_image(img)["id"]
        with cloud.client() as c:
            server_id = boot(c, image, name="stall").json()["server"]["id"]
            deadline = time.monotonic() + 10
            while (server := c.get(f"/servers/{server_id}").json()["server"])["status"] != "ERROR":
                assert time.monotonic() < deadline, server["OS-EXT-STS:task_state"]
                time.sleep(0.05)
        assert server["fault"]["message"] == "Instance build timed out. Set to error state."
        assert server["OS-EXT-SRV-ATTR:host"].startswith("compute-")
        assert _rows(cloud, "select count(*) from allocations") == [(0,)]
    finally:
        _kill(cloud)  # a graceful stop would wait for the stalled spawn (in-flight casts finish first)


def _boot_on_a_network(cloud: Cloud, image: str) -> tuple[str, str, str]:
    """Two servers on a new network: one on it by id (the compute makes its port), one with a port the user made
    first; returns their ids and that port's."""
    with cloud.network_client() as n:
        net = n.post("/networks", json={"network": {"name": "recovered"}}).json()["network"]
        sub = n.post("/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.99.0.0/24", "ip_version": 4}})
        assert sub.status_code == 201, sub.text
        mine = n.post("/ports", json={"port": {"network_id": net["id"]}}).json()["port"]
    with cloud.client() as c:
        made = boot(c, image, name="made", networks=[{"uuid": net["id"]}]).json()["server"]["id"]
        given = boot(c, image, name="given", networks=[{"port": mine["id"]}]).json()["server"]["id"]
    return made, given, mine["id"]


def _until(cloud: Cloud, server_ids: list[str], check: Any, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    with cloud.client() as c:
        while not all(check(c.get(f"/servers/{s}").json()["server"]) for s in server_ids):
            assert time.monotonic() < deadline, what
            time.sleep(0.05)


def _ports_released(cloud: Cloud, made: str, given: str, port_id: str) -> None:
    """As for a failed build: the port the compute made is deleted, the user's unbound and kept; no addresses."""
    with cloud.network_client() as n:
        assert n.get("/ports", params={"device_id": made}).json()["ports"] == []
        assert n.get("/ports", params={"device_id": given}).json()["ports"] == []
        kept = n.get(f"/ports/{port_id}").json()["port"]
        assert kept["device_id"] == "" and kept["device_owner"] == "" and kept["binding:host_id"] == "", kept
    with cloud.client() as c:
        for server_id in (made, given):
            assert c.get(f"/servers/{server_id}").json()["server"]["addresses"] == {}


def test_a_build_that_times_out_gives_its_ports_back(tmp_path: Path) -> None:
    cloud = start_cloud(tmp_path, CONF.replace(f"instance_build_timeout = {TIMEOUT}", "instance_build_timeout = 3")
                        + "[fake_driver]\nspawn_time = 60\n")
    try:
        with cloud.image_client() as img:
            image = upload_image(img)["id"]
        made, given, port_id = _boot_on_a_network(cloud, image)
        # bound to their host while the spawn stalls, then the timeout
        _until(cloud, [made, given], lambda s: s["OS-EXT-STS:task_state"] == "spawning" or s["status"] == "ERROR",
               "both spawning")
        _until(cloud, [made, given], lambda s: s["status"] == "ERROR", "both timed out")
        with cloud.client() as c:
            fault = c.get(f"/servers/{made}").json()["server"]["fault"]["message"]
        assert fault == "Instance build timed out. Set to error state."
        _ports_released(cloud, made, given, port_id)
    finally:
        _kill(cloud)  # the stalled spawns are not waited for


def test_a_build_interrupted_by_a_restart_gives_its_ports_back(tmp_path: Path) -> None:
    cloud = start_cloud(tmp_path, CONF + "[fake_driver]\nspawn_time = 60\n")
    with cloud.image_client() as img:
        image = upload_image(img)["id"]
    made, given, port_id = _boot_on_a_network(cloud, image)
    _until(cloud, [made, given], lambda s: s["OS-EXT-STS:task_state"] == "spawning", "both spawning")
    with cloud.network_client() as n:   # the ports are the instances' now
        assert len(n.get("/ports", params={"device_id": made}).json()["ports"]) == 1
        assert n.get(f"/ports/{port_id}").json()["port"]["device_id"] == given
    cloud.proc.kill()
    assert cloud.proc.wait(timeout=30) == -9
    cloud = _restart(tmp_path)
    try:
        _until(cloud, [made, given], lambda s: s["status"] == "ERROR", "both in ERROR after the restart")
        # released in the background, tried again until the Networking API (served after the hosts start) answers
        deadline = time.monotonic() + 10
        with cloud.network_client() as n:
            while n.get("/ports", params={"device_id": given}).json()["ports"]:
                assert time.monotonic() < deadline, "the user's port still bound"
                time.sleep(0.05)
        _ports_released(cloud, made, given, port_id)
    finally:
        _kill(cloud)


def test_a_rescheduled_build_that_times_out_waiting_for_a_host_gives_its_ports_back(tmp_path: Path) -> None:
    """The host that failed the build kept its ports for the next one (as Nova's reschedule); the conductor dies
    before choosing it, and after the restart the recovery pass finds the build past its timeout with no host:
    ERROR, and the ports released as a failed build's (the conductor's side of it: no host holds the build)."""
    every_host_fails = "[fake_driver]\nhost_count = 2\nfail_hosts = compute-1,compute-2\n"
    cloud = start_cloud(tmp_path, CONF + every_host_fails, env={"STRATUS_FAILPOINTS": "conductor.rescheduling"})
    with cloud.image_client() as img:
        image = upload_image(img)["id"]
    with cloud.network_client() as n:
        net = n.post("/networks", json={"network": {"name": "rescheduled"}}).json()["network"]
        sub = n.post("/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.98.0.0/24", "ip_version": 4}})
        assert sub.status_code == 201, sub.text
        mine = n.post("/ports", json={"port": {"network_id": net["id"]}}).json()["port"]
    with cloud.client() as c, contextlib.suppress(httpx.TransportError):  # the kill may beat the 202 out
        boot(c, image, name="rescheduled", networks=[{"uuid": net["id"]}, {"port": mine["id"]}])
    assert cloud.proc.wait(timeout=60) == -9
    [(server_id,)] = _rows(cloud, "select uuid from instances where deleted = 0")
    cloud = _restart(tmp_path, CONF.replace(f"instance_build_timeout = {TIMEOUT}", "instance_build_timeout = 1"))
    try:
        _until(cloud, [server_id], lambda s: s["status"] == "ERROR", "timed out after the restart")
        with cloud.client() as c:
            server = c.get(f"/servers/{server_id}").json()["server"]
        assert server["fault"]["message"] == "Instance build timed out. Set to error state."
        assert server["OS-EXT-SRV-ATTR:host"] is None  # nobody's but the conductor's
        deadline = time.monotonic() + 20  # released in the background, after the ERROR
        with cloud.network_client() as n:
            while n.get("/ports", params={"network_id": net["id"], "device_owner": "compute:nova"}).json()["ports"]:
                assert time.monotonic() < deadline, "the port the host made is still there"
                time.sleep(0.05)
            kept = n.get(f"/ports/{mine['id']}").json()["port"]
        assert kept["device_id"] == "" and kept["binding:host_id"] == "", kept
        with cloud.client() as c:
            assert c.get(f"/servers/{server_id}").json()["server"]["addresses"] == {}
    finally:
        _kill(cloud)
