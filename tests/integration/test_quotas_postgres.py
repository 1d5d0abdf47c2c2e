"""Quotas on a real PostgreSQL: concurrent creates in separate transactions cannot pass a limit together
(the project's advisory lock), and limits set through os-quota-sets are the ones enforced."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from tests.functional.helpers import fault, race_boots, upload_image, wait_gone

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg_cloud(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    cloud = start_cloud(tmp_path_factory.mktemp("pg-quotas"), extra_conf=f"""
        [database]
        connection = {postgres_url}
        """)
    try:
        yield cloud
    finally:
        stop_cloud(cloud)
        print(cloud.log()[-3000:])


def _set(cloud: Cloud, project: str, **values: int) -> None:
    with cloud.client(token="admin:admin", version="2.57") as admin:
        resp = admin.put(f"/os-quota-sets/{project}", json={"quota_set": values})
        assert resp.status_code == 200, resp.text


def _new_project() -> str:
    return f"pg-quota-{uuid.uuid4().hex[:8]}"


def test_instances_quota_holds_under_concurrent_boots(pg_cloud: Cloud) -> None:
    """The issue's race on PostgreSQL: quota 10, 20 concurrent boots: 10 accepted, 10 refused, 10 exist."""
    project = _new_project()
    _set(pg_cloud, project, instances=10)
    with pg_cloud.image_client() as img:
        image = upload_image(img)
    codes, servers = race_boots(pg_cloud, project, image["id"])
    try:
        assert codes == [202] * 10 + [403] * 10
        assert len(servers) == 10
        with pg_cloud.client(token="admin:admin", version="2.57") as admin:
            detail = admin.get(f"/os-quota-sets/{project}/detail").json()["quota_set"]
            assert detail["instances"] == {"limit": 10, "in_use": 10, "reserved": 0}
    finally:
        with pg_cloud.client(token=f"racer:{project}", version="2.47") as c:
            for s in servers:
                c.delete(f"/servers/{s['id']}")
            for s in servers:
                wait_gone(c, s["id"])


def test_key_pairs_and_server_groups_hold_under_concurrency(pg_cloud: Cloud) -> None:
    project = _new_project()
    _set(pg_cloud, project, key_pairs=3, server_groups=2)
    token = f"pg-owner-{project}:{project}"

    def keypair(i: int) -> int:
        with pg_cloud.client(token=token, version="2.2") as c:
            return c.post("/os-keypairs", json={"keypair": {"name": f"kp-{i}"}}).status_code

    def group(i: int) -> int:
        with pg_cloud.client(token=token, version="2.1") as c:
            body = {"name": f"g-{i}", "policies": ["anti-affinity"]}
            return c.post("/os-server-groups", json={"server_group": body}).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert sorted(pool.map(keypair, range(10))) == [201] * 3 + [403] * 7
        assert sorted(pool.map(group, range(10))) == [200] * 2 + [403] * 8
    with pg_cloud.client(token=token, version="2.2") as c:
        assert len(c.get("/os-keypairs").json()["keypairs"]) == 3
        assert len(c.get("/os-server-groups").json()["server_groups"]) == 2
        assert fault(c.post("/os-keypairs", json={"keypair": {"name": "more"}}), 403, "forbidden") == (
            "Quota exceeded, too many key pairs.")

