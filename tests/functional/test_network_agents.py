"""Port binding and the agents: the fake driver's hosts each run a noop agent that reports state and makes bound
ports ACTIVE; ``/v2.0/agents``; the networking server tells Nova (``network-vif-plugged``), in-process to the
compute API of its own process, and a 404 (no such server) is logged and ignored."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from stratus.local_cloud import start_cloud, stop_cloud
from tests.conftest import Cloud
from tests.functional.network_helpers import network, neutron_error, port, subnet


@pytest.fixture(scope="module")
def agents_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """Two simulated hosts whose agents report every 0.3 s and are down after 2 s of silence."""
    c = start_cloud(tmp_path_factory.mktemp("agents"), "[fake_driver]\nhost_count = 2\n[agent]\n"
                    "report_interval = 0.3\n[network_server]\nagent_down_time = 2\n")
    try:
        yield c
    finally:
        stop_cloud(c)


def _wait_status(n: httpx.Client, port_id: str, status: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = n.get(f"/ports/{port_id}").json()["port"]
        if found["status"] == status or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _wait_log(cloud: Cloud, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in cloud.log():
        assert time.monotonic() < deadline, f"{text!r} not in the log"
        time.sleep(0.05)


def test_each_fake_host_has_a_live_agent(agents_cloud: Cloud) -> None:
    with agents_cloud.network_client() as n:
        agents = n.get("/agents").json()["agents"]
        assert sorted(a["host"] for a in agents) == ["compute-1", "compute-2"]
        assert all(a["alive"] and a["agent_type"] == "Linux bridge agent" for a in agents)
        one = n.get(f"/agents/{agents[0]['id']}").json()["agent"]
        assert set(one) >= {"id", "agent_type", "binary", "topic", "host", "admin_state_up", "created_at",
                            "started_at", "heartbeat_timestamp", "alive", "configurations", "availability_zone"}
        assert n.get("/agents", params={"host": "compute-2"}).json()["agents"][0]["host"] == "compute-2"
        neutron_error(n.get(f"/agents/{uuid.uuid4()}"), 404, "AgentNotFound")
    with agents_cloud.network_client("u:someone") as user:  # not an admin: sees none, as Neutron's lists
        assert user.get("/agents").json()["agents"] == []
        neutron_error(user.get(f"/agents/{agents[0]['id']}"), 404, "AgentNotFound")
        neutron_error(user.delete(f"/agents/{agents[0]['id']}"), 404, "AgentNotFound")


def test_a_port_bound_to_a_host_goes_active_and_nova_is_told(agents_cloud: Cloud) -> None:
    server = str(uuid.uuid4())
    with agents_cloud.network_client() as n:
        net = network(n)
        subnet(n, net["id"], "10.60.0.0/24")
        p = port(n, net["id"], device_id=server, device_owner="compute:nova")
        assert p["binding:vif_type"] == "unbound" and p["status"] == "DOWN"
        bound = n.put(f"/ports/{p['id']}", json={"port": {"binding:host_id": "compute-2"}}).json()["port"]
        assert bound["binding:vif_type"] == "bridge"
        assert bound["binding:vif_details"] == {"port_filter": True, "connectivity": "l2",
                                                "bridge_name": "brq" + net["id"][:11]}
        assert _wait_status(n, p["id"], "ACTIVE")["status"] == "ACTIVE"
        assert "port is already bound" in neutron_error(n.put(f"/ports/{p['id']}", json={"port": {
            "mac_address": "fa:16:3e:00:00:01"}}), 409, "PortBound")
        # handed to the compute API of the same process, which knows no such server: its 404 is logged
        _wait_log(agents_cloud, f"Nova answered 404 to os-server-external-events [('network-vif-plugged', "
                                f"'{server}')]")
        assert "is this process's own: Nova's events go in-process" in agents_cloud.log()
        elsewhere = port(n, net["id"], **{"binding:host_id": "no-such-host"})
        assert elsewhere["binding:vif_type"] == "binding_failed" and elsewhere["status"] == "DOWN"
        for x in (p, elsewhere):
            assert n.delete(f"/ports/{x['id']}").status_code == 204
        _wait_log(agents_cloud, f"('network-vif-deleted', '{server}')")
        n.delete(f"/networks/{net['id']}")


def test_a_deleted_agent_reports_again_and_a_disabled_one_binds_nothing(agents_cloud: Cloud) -> None:
    with agents_cloud.network_client() as n:
        agent = next(a for a in n.get("/agents").json()["agents"] if a["host"] == "compute-1")
        assert n.delete(f"/agents/{agent['id']}").status_code == 204
        neutron_error(n.get(f"/agents/{agent['id']}"), 404, "AgentNotFound")
        # it reports again (a new row), so it comes back; turned off by an admin, the host does not bind
        deadline = time.monotonic() + 10
        while not any(a["host"] == "compute-1" for a in n.get("/agents").json()["agents"]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        again = next(a for a in n.get("/agents").json()["agents"] if a["host"] == "compute-1")
        off = n.put(f"/agents/{again['id']}", json={"agent": {"admin_state_up": False}})
        assert off.status_code == 200 and off.json()["agent"]["admin_state_up"] is False
        net = network(n)
        p = port(n, net["id"], **{"binding:host_id": "compute-1"})
        assert p["binding:vif_type"] == "binding_failed"
        n.put(f"/agents/{again['id']}", json={"agent": {"admin_state_up": True}})
        n.delete(f"/ports/{p['id']}")
        n.delete(f"/networks/{net['id']}")


def test_embedded_identity_admin_tells_nova(embedded_cloud: Cloud) -> None:
    """With the embedded identity, the server logs in as its admin and finds Nova in the catalog."""
    conn = embedded_cloud.connect()
    token = conn.session.get_token()
    server = str(uuid.uuid4())
    with httpx.Client(base_url=embedded_cloud.network_url + "/v2.0", headers={"X-Auth-Token": token},
                      timeout=30) as n:
        net = network(n)
        p = port(n, net["id"], device_id=server, device_owner="compute:nova", **{"binding:host_id": "compute-1"})
        assert _wait_status(n, p["id"], "ACTIVE", timeout=40)["status"] == "ACTIVE"
        _wait_log(embedded_cloud, f"Nova answered 404 to os-server-external-events [('network-vif-plugged', "
                                  f"'{server}')]")
        # the endpoint of the catalog is this process's compute API: in-process, with the admin's token
        assert "is this process's own: Nova's events go in-process" in embedded_cloud.log()
        n.delete(f"/ports/{p['id']}")
        n.delete(f"/networks/{net['id']}")
