"""os-hosts (2.1 to 2.42) through HTTP against the all-in-one, with tempest's schemas as the contract."""

from __future__ import annotations

import uuid

from tempest.lib.api_schema.response.compute.v2_1 import hosts as schema

from tests.conftest import Cloud
from tests.functional.helpers import boot, fault, upload_image, wait_for_status, wait_gone
from tests.functional.helpers import check_schema as check


def test_list_and_zone_filter(cloud: Cloud) -> None:
    with cloud.client(version="2.42") as admin:
        hosts = check(schema.list_hosts, admin.get("/os-hosts"))["hosts"]
        services = admin.get("/os-services").json()["services"]
        enabled = {(s["host"], s["binary"].removeprefix("nova-")) for s in services if s["status"] == "enabled"}
        assert {(h["host_name"], h["service"]) for h in hosts} == enabled
        assert {h["zone"] for h in hosts if h["service"] == "compute"} == {"nova"}
        assert {h["zone"] for h in hosts if h["service"] != "compute"} == {"internal"}
        computes = admin.get("/os-hosts", params={"zone": "nova"}).json()["hosts"]
        assert computes and all(h["service"] == "compute" for h in computes)
        assert admin.get("/os-hosts", params={"zone": "no-such-zone"}).json() == {"hosts": []}
    with cloud.client(version="2.43") as new:
        fault(new.get("/os-hosts"), 404, "itemNotFound")
    with cloud.client(token="u:p", version="2.42") as user:
        fault(user.get("/os-hosts"), 403, "forbidden")


def test_show_resources(cloud: Cloud) -> None:
    project = f"hosts-{uuid.uuid4().hex[:8]}"
    with cloud.image_client() as img:
        image = upload_image(img)
    with cloud.client(token=f"u:{project}") as user:
        resp = boot(user, image["id"], flavor="2")
        assert resp.status_code == 202, resp.text
        server_id = resp.json()["server"]["id"]
        wait_for_status(user, server_id, {"ACTIVE"})
    with cloud.client(version="2.42") as admin:
        host = admin.get(f"/servers/{server_id}").json()["server"]["OS-EXT-SRV-ATTR:host"]
        shown = check(schema.get_host_detail, admin.get(f"/os-hosts/{host}"))["host"]
        by_project = {r["resource"]["project"]: r["resource"] for r in shown}
        assert [r["resource"]["project"] for r in shown[:3]] == ["(total)", "(used_now)", "(used_max)"]
        assert by_project[project] == {"host": host, "project": project, "cpu": 1, "memory_mb": 2048,
                                       "disk_gb": 20}
        assert by_project["(used_max)"]["cpu"] >= 1 and by_project["(total)"]["cpu"] >= by_project["(used_max)"]["cpu"]
        fault(admin.get("/os-hosts/no-such-host"), 404, "itemNotFound")
        # the driver cannot change the host itself (Nova's libvirt neither): 501; unknown hosts 404; bad bodies 400
        for path in ("reboot", "shutdown", "startup"):
            fault(admin.get(f"/os-hosts/{host}/{path}"), 501, "notImplemented")
            fault(admin.get(f"/os-hosts/no-such-host/{path}"), 404, "itemNotFound")
        fault(admin.put(f"/os-hosts/{host}", json={"status": "enable"}), 501, "notImplemented")
        fault(admin.put("/os-hosts/no-such-host", json={"maintenance_mode": "disable"}), 404, "itemNotFound")
        for bad in ({}, {"status": "on"}, {"maintenance_mode": "x"}, {"status": "enable", "other": 1}):
            fault(admin.put(f"/os-hosts/{host}", json=bad), 400, "badRequest")
    with cloud.client(token=f"u:{project}", version="2.42") as user:
        fault(user.get(f"/os-hosts/{host}"), 403, "forbidden")
        fault(user.put(f"/os-hosts/{host}", json={"status": "enable"}), 403, "forbidden")
        fault(user.get(f"/os-hosts/{host}/reboot"), 403, "forbidden")
        assert user.delete(f"/servers/{server_id}").status_code == 204
        wait_gone(user, server_id)
