"""The Networking API's allocations on a real PostgreSQL, where writers do not queue on one lock as SQLite's do:
threads racing for the last addresses of a subnet, for segments and for a project's first default security group
each get distinct results, and the losers Neutron's 409."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from tests.functional.helpers import boot, upload_image, wait_for_status, wait_gone
from tests.functional.network_helpers import network, neutron_error, subnet

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg_cloud(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    cloud = start_cloud(tmp_path_factory.mktemp("pg-network"), extra_conf=f"""
        [database]
        connection = {postgres_url}
        """)
    try:
        yield cloud
    finally:
        stop_cloud(cloud)


def test_racing_for_the_last_addresses(pg_cloud: Cloud) -> None:
    with pg_cloud.network_client() as n:
        net = network(n)
        subnet(n, net["id"], "10.90.0.0/29")  # 5 addresses

    def one(i: int) -> str | None:
        with pg_cloud.network_client() as c:
            resp = c.post("/ports", json={"port": {"network_id": net["id"], "name": f"pg-{i}"}})
            if resp.status_code == 201:
                return str(resp.json()["port"]["fixed_ips"][0]["ip_address"])
            neutron_error(resp, 409, "IpAddressGenerationFailure")
            return None

    with ThreadPoolExecutor(max_workers=16) as pool:
        got = list(pool.map(one, range(16)))
    addresses = [a for a in got if a is not None]
    assert sorted(addresses) == [f"10.90.0.{i}" for i in range(2, 7)]
    with pg_cloud.network_client() as n:
        taken = n.post("/ports", json={"port": {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.90.0.2"}]}})
        neutron_error(taken, 409, "IpAddressAlreadyAllocated")
        for p in n.get("/ports", params={"network_id": net["id"]}).json()["ports"]:
            n.delete(f"/ports/{p['id']}")
        n.delete(f"/networks/{net['id']}")


def test_racing_network_creates_get_distinct_segments_and_one_default_group(pg_cloud: Cloud) -> None:
    project = f"pg{uuid.uuid4().hex[:8]}"

    def one(i: int) -> tuple[int, str]:
        with pg_cloud.network_client() as admin:
            made = network(admin, project_id=project)
        with pg_cloud.network_client(f"u:{project}") as c:
            groups = c.get("/security-groups").json()["security_groups"]
        return int(made["provider:segmentation_id"]), ",".join(sorted(g["id"] for g in groups))

    # enough creates that some lose a segment race more than once (the retry must not lose the request's mtu)
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(40)))
    segments = [s for s, _ in results]
    assert len(set(segments)) == 40
    assert len({groups for _, groups in results}) == 1 and "," not in results[0][1]
    with pg_cloud.network_client() as admin:
        for net in admin.get("/networks", params={"project_id": project}).json()["networks"]:
            admin.delete(f"/networks/{net['id']}")


def test_servers_on_a_network_on_postgres(pg_cloud: Cloud) -> None:
    """The statements of a boot on a network as PostgreSQL runs them (prepared once, bound lists, the quota's
    limit and count in one, ACTIVE by one UPDATE ... RETURNING, the remote group's addresses for the agents'
    payloads by a join): two servers each get an ACTIVE port and an address, and the quota details count them."""
    project = f"pg{uuid.uuid4().hex[:8]}"
    with pg_cloud.network_client() as admin:
        net = network(admin, project_id=project)
        subnet(admin, net["id"], "10.91.0.0/24", project_id=project)
    with pg_cloud.image_client() as img:
        image = upload_image(img)
    with pg_cloud.client(token=f"u:{project}", version="2.37") as c:
        ids = []
        for i in range(2):
            resp = boot(c, image["id"], name=f"pgnet-{i}", networks=[{"uuid": net["id"]}])
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["server"]["id"])
        for server_id in ids:
            wait_for_status(c, server_id, {"ACTIVE"})
        addresses = [c.get(f"/servers/{s}").json()["server"]["addresses"][net["name"]][0]["addr"] for s in ids]
        assert sorted(addresses) == ["10.91.0.2", "10.91.0.3"]
    with pg_cloud.network_client(f"u:{project}") as n:
        ports = n.get("/ports", params={"network_id": net["id"], "device_owner": "compute:nova"}).json()["ports"]
        assert sorted(p["device_id"] for p in ports) == sorted(ids) and {p["status"] for p in ports} == {"ACTIVE"}
        details = n.get(f"/quotas/{project}/details").json()["quota"]
        assert details["port"]["used"] == 2 and details["network"]["used"] == 1
        listed = n.get("/subnets", params={"network_id": net["id"], "fields": ["id", "cidr"]}).json()["subnets"]
        assert [s["cidr"] for s in listed] == ["10.91.0.0/24"]
    with pg_cloud.client(token=f"u:{project}", version="2.37") as c:
        for server_id in ids:
            c.delete(f"/servers/{server_id}")
        for server_id in ids:
            wait_gone(c, server_id)
