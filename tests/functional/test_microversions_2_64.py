"""Server changes of microversions 2.48-2.64, each at the version before and at its own, against tempest's schemas.

2.52 tags at create, 2.57 no personality at create, 2.63 trusted image certificates. Flavors (2.55, 2.61) are in
test_flavors.py and limits (2.57) in test_limits.py.
"""

from __future__ import annotations

import base64
import sqlite3
import uuid
from typing import Any

import httpx
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import servers as schema_21
from tempest.lib.api_schema.response.compute.v2_51 import servers as schema_251
from tempest.lib.api_schema.response.compute.v2_62 import servers as schema_262
from tempest.lib.api_schema.response.compute.v2_63 import servers as schema_263

from tests.conftest import Cloud
from tests.functional.helpers import boot, fault, upload_image, wait_gone
from tests.functional.helpers import check_schema as check


@pytest.fixture(scope="module")
def image(cloud: Cloud) -> dict[str, Any]:
    with cloud.image_client() as img:
        return upload_image(img)


def _project() -> str:
    return f"proj-mv-{uuid.uuid4().hex[:8]}"


def _instances(cloud: Cloud, project: str) -> int:
    """Live instance rows of the project: a refused request leaves none behind."""
    with sqlite3.connect(cloud.state_path / "stratus.sqlite") as db:
        return int(db.execute("select count(*) from instances where project_id = ? and deleted = 0",
                              (project,)).fetchone()[0])


def _delete_all(c: httpx.Client) -> None:
    ids = [s["id"] for s in c.get("/servers").json()["servers"]]
    for server_id in ids:
        assert c.delete(f"/servers/{server_id}").status_code == 204
    for server_id in ids:
        wait_gone(c, server_id)


def test_tags_at_create_2_52(cloud: Cloud, image: dict[str, Any]) -> None:
    project = _project()
    with cloud.client(token=f"tia:{project}", version="2.51") as old:
        assert "'tags' was unexpected" in fault(boot(old, image["id"], networks="none", tags=["web"]),
                                                400, "badRequest")
    with cloud.client(token=f"tia:{project}", version="2.52") as c:
        for bad in (["a/b"], ["a,b"], [""], ["x" * 61], [f"t{i}" for i in range(51)], "web", [5]):
            fault(boot(c, image["id"], networks="none", tags=bad), 400, "badRequest")
        assert _instances(cloud, project) == 0

        resp = boot(c, image["id"], networks="none", tags=["web", "db", "web"], min_count=2,
                    return_reservation_id=True)
        assert resp.status_code == 202, resp.text
        reservation = resp.json()["reservation_id"]
        listed = c.get("/servers/detail", params={"reservation_id": reservation})
        servers = check(schema_251.list_servers_detail, listed)["servers"]
        assert len(servers) == 2 and all(s["tags"] == ["db", "web"] for s in servers)
        shown = check(schema_251.get_server, c.get(f"/servers/{servers[0]['id']}"))["server"]
        assert shown["tags"] == ["db", "web"]
        assert c.get(f"/servers/{servers[0]['id']}/tags").json() == {"tags": ["db", "web"]}
        assert len(c.get("/servers", params={"tags": "db,web"}).json()["servers"]) == 2
        _delete_all(c)


def test_personality_removed_2_57(cloud: Cloud, image: dict[str, Any]) -> None:
    project = _project()
    personality = [{"path": "/etc/motd", "contents": base64.b64encode(b"hello").decode()}]
    with cloud.client(token=f"pia:{project}", version="2.56") as old:
        check(schema_21.create_server_with_admin_pass,
              boot(old, image["id"], networks="none", personality=personality))
        _delete_all(old)
    with cloud.client(token=f"pia:{project}", version="2.57") as c:
        assert "'personality' was unexpected" in fault(
            boot(c, image["id"], networks="none", personality=personality), 400, "badRequest")
    assert _instances(cloud, project) == 0


def test_trusted_image_certificates_2_63(cloud: Cloud, image: dict[str, Any]) -> None:
    project = _project()
    certs = ["0b5d2c72-12cc-4ba6-a8d7-3ff5cc1d8cb8", "674736e3-f25c-405c-8362-bbf991e0ce0a"]
    with cloud.client(token=f"tom:{project}", version="2.62") as old:
        assert "'trusted_image_certificates' was unexpected" in fault(
            boot(old, image["id"], networks="none", trusted_image_certificates=certs), 400, "badRequest")
    with cloud.client(token=f"tom:{project}", version="2.63") as c:
        for bad in ([], ["a", "a"], [""], [f"c{i}" for i in range(51)], "cert", [1]):
            fault(boot(c, image["id"], networks="none", trusted_image_certificates=bad), 400, "badRequest")
        bdm = [{"source_type": "image", "uuid": image["id"], "boot_index": 0, "destination_type": "local"}]
        assert fault(boot(c, "", networks="none", trusted_image_certificates=certs, block_device_mapping_v2=bdm),
                     400, "badRequest") == "Image certificate validation is not supported when booting from volume"
        assert _instances(cloud, project) == 0

        trusted = boot(c, image["id"], name="trusted", networks="none", trusted_image_certificates=certs)
        trusted_id = check(schema_21.create_server_with_admin_pass, trusted)["server"]["id"]
        plain = boot(c, image["id"], name="plain", networks="none", trusted_image_certificates=None)
        plain_id = check(schema_21.create_server_with_admin_pass, plain)["server"]["id"]

        shown = check(schema_263.get_server, c.get(f"/servers/{trusted_id}"))["server"]
        assert shown["trusted_image_certificates"] == certs
        assert c.get(f"/servers/{plain_id}").json()["server"]["trusted_image_certificates"] is None
        detail = check(schema_263.list_servers_detail, c.get("/servers/detail"))["servers"]
        assert {s["id"]: s["trusted_image_certificates"] for s in detail} == {trusted_id: certs, plain_id: None}
        updated = check(schema_263.update_server, c.put(f"/servers/{trusted_id}", json={"server": {"name": "t2"}}))
        assert updated["server"]["trusted_image_certificates"] == certs and updated["server"]["name"] == "t2"
    with cloud.client(token=f"tom:{project}", version="2.62") as old:
        # tempest's 2.62 bodies allow no such key.
        check(schema_262.get_server, old.get(f"/servers/{trusted_id}"))
        check(schema_262.list_servers_detail, old.get("/servers/detail"))
        check(schema_262.update_server, old.put(f"/servers/{trusted_id}", json={"server": {"name": "t3"}}))
        _delete_all(old)
