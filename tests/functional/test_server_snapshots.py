"""createImage through the REST API: the snapshot image, the instance's task states, failures, and booting
from the result (fake driver: the host uploads real bytes into the embedded image store)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from tempest.lib.api_schema.response.compute.v2_45 import images as schema_245

from tests.conftest import Cloud
from tests.functional.helpers import boot, check_schema, fault, upload_image, wait_for_status, wait_gone

OWNER = "snap-user:snap-proj"


def _wait_image(cloud: Cloud, image_id: str, status: str = "active", timeout: float = 30) -> dict[str, Any]:
    with cloud.image_client(OWNER) as images:
        deadline = time.monotonic() + timeout
        while True:
            resp = images.get(f"/v2/images/{image_id}")
            if status == "gone" and resp.status_code == 404:
                return {}
            if resp.status_code == 200 and resp.json()["status"] == status:
                return dict(resp.json())
            if time.monotonic() > deadline:
                raise AssertionError(f"image {image_id} did not become {status}: {resp.text}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def base_image(cloud: Cloud) -> dict[str, Any]:
    with cloud.image_client() as images:
        return upload_image(images, hw_disk_bus="virtio", os_distro="busybox", cache_in_nova="true")


def _server(cloud: Cloud, image_id: str, **extra: Any) -> str:
    with cloud.client(OWNER) as client:
        resp = boot(client, image_id, **extra)
        assert resp.status_code == 202, resp.text
        server_id = str(resp.json()["server"]["id"])
        assert wait_for_status(client, server_id, {"ACTIVE", "ERROR"})["status"] == "ACTIVE"
        return server_id


def test_snapshot_inherits_properties_and_boots(cloud: Cloud, base_image: dict[str, Any]) -> None:
    server_id = _server(cloud, base_image["id"])
    with cloud.client(OWNER, version="2.45") as client:
        resp = client.post(f"/servers/{server_id}/action",
                           json={"createImage": {"name": "snap-1", "metadata": {"purpose": "backup"}}})
        image_id = check_schema(schema_245.create_image, resp)["image_id"]
        image = _wait_image(cloud, image_id)
        assert image["image_type"] == "snapshot" and image["instance_uuid"] == server_id
        assert image["base_image_ref"] == base_image["id"] and image["purpose"] == "backup"
        assert image["os_distro"] == "busybox" and image["hw_disk_bus"] == "virtio"  # inherited
        assert "cache_in_nova" not in image  # Nova's non-inheritable properties stay behind
        assert image["owner"] == "snap-proj" and image["visibility"] == "shared"  # Glance v2's default
        assert image["disk_format"] == "raw" and image["size"] == 4096
        server = wait_for_status(client, server_id, {"ACTIVE"})
        assert server["OS-EXT-STS:task_state"] is None
        actions = client.get(f"/servers/{server_id}/os-instance-actions").json()["instanceActions"]
        assert "createImage" in [a["action"] for a in actions]
        request_id = next(a["request_id"] for a in actions if a["action"] == "createImage")
        with cloud.client(OWNER, version="2.51") as reader:  # events for every caller from 2.51
            events = reader.get(f"/servers/{server_id}/os-instance-actions/{request_id}").json()["instanceAction"]
        assert [(e["event"], e["result"]) for e in events["events"]] == [("compute_snapshot_instance", "Success")]

        second = _server(cloud, image_id)  # the snapshot boots like any image
        for sid in (server_id, second):
            assert client.delete(f"/servers/{sid}").status_code == 204
            wait_gone(client, sid)


def test_snapshot_of_a_stopped_server_and_location_before_2_45(cloud: Cloud, base_image: dict[str, Any]) -> None:
    server_id = _server(cloud, base_image["id"])
    with cloud.client(OWNER) as client:
        assert client.post(f"/servers/{server_id}/action", json={"os-stop": None}).status_code == 202
        wait_for_status(client, server_id, {"SHUTOFF"})
        resp = client.post(f"/servers/{server_id}/action", json={"createImage": {"name": "stopped-snap"}})
        assert resp.status_code == 202 and resp.content == b""
        location = resp.headers["location"]
        assert location.startswith(cloud.image_url) and "/images/" in location
        _wait_image(cloud, location.rsplit("/", 1)[1])
        server = wait_for_status(client, server_id, {"SHUTOFF"})
        assert server["OS-EXT-STS:task_state"] is None and server["OS-EXT-STS:vm_state"] == "stopped"
        assert client.delete(f"/servers/{server_id}").status_code == 204


def test_failed_snapshot_deletes_the_image_and_keeps_the_server(cloud: Cloud) -> None:
    with cloud.image_client() as images:
        image = upload_image(images, fake_fail_power_actions="snapshot")
    server_id = _server(cloud, image["id"])
    with cloud.client(OWNER, version="2.45") as client:
        resp = client.post(f"/servers/{server_id}/action", json={"createImage": {"name": "doomed"}})
        image_id = resp.json()["image_id"]
        _wait_image(cloud, image_id, "gone")
        deadline = time.monotonic() + 10
        while (server := client.get(f"/servers/{server_id}").json()["server"])["OS-EXT-STS:task_state"]:
            assert time.monotonic() < deadline, server
            time.sleep(0.05)
        assert server["status"] == "ACTIVE"
        actions = client.get(f"/servers/{server_id}/os-instance-actions").json()["instanceActions"]
        request_id = next(a["request_id"] for a in actions if a["action"] == "createImage")
        with cloud.client(OWNER, version="2.51") as reader:
            events = reader.get(f"/servers/{server_id}/os-instance-actions/{request_id}").json()["instanceAction"]
        assert events["events"][0]["result"] == "Error"
        assert client.delete(f"/servers/{server_id}").status_code == 204


def test_bad_requests(cloud: Cloud, base_image: dict[str, Any]) -> None:
    server_id = _server(cloud, base_image["id"])
    with cloud.client(OWNER, version="2.45") as client:
        url = f"/servers/{server_id}/action"
        fault(client.post(url, json={"createImage": {}}), 400, "badRequest")
        fault(client.post(url, json={"createImage": {"name": ""}}), 400, "badRequest")
        fault(client.post(url, json={"createImage": {"name": "x", "metadata": {"k": 1}}}), 400, "badRequest")
        fault(client.post(url, json={"createImage": {"name": "x", "bogus": 1}}), 400, "badRequest")
        too_many = {f"k{i}": "v" for i in range(129)}
        with cloud.client(OWNER, version="2.38") as before_239:  # Nova checks the metadata quota before 2.39 only
            assert fault(before_239.post(url, json={"createImage": {"name": "x", "metadata": too_many}}), 403,
                         "forbidden") == "Image metadata limit exceeded"
        with cloud.client("other:other-proj", version="2.45") as other:
            fault(other.post(url, json={"createImage": {"name": "x"}}), 404, "itemNotFound")
        assert client.post(url, json={"os-stop": None}).status_code == 202
        # while the stop is under way: Nova's 409 for the task_state
        resp = client.post(url, json={"createImage": {"name": "x"}})
        if resp.status_code == 409:
            assert "while it is in task_state powering-off" in fault(resp, 409, "conflictingRequest")
        else:
            assert resp.status_code == 202  # the stop finished first
        assert client.delete(f"/servers/{server_id}").status_code == 204


def test_image_service_refusals_are_the_callers_errors(cloud: Cloud, base_image: dict[str, Any]) -> None:
    """Metadata Nova's schema lets through but the image service refuses is the image service's 4xx, translated
    once for the compute API (it was a 500); no image is made and the server is left as it was. A NUL, which
    PostgreSQL cannot store, is refused by the compute API itself."""
    server_id = _server(cloud, base_image["id"])
    with cloud.client(OWNER, version="2.45") as client, cloud.image_client(OWNER) as images:
        before = {i["id"] for i in images.get("/v2/images").json()["images"]}
        url = f"/servers/{server_id}/action"
        resp = client.post(url, json={"createImage": {"name": "n", "metadata": {"min_ram": "lots"}}})
        assert fault(resp, 400, "badRequest") == (
            "Provided object does not match schema 'image': 'lots' is not of type 'integer'")
        resp = client.post(url, json={"createImage": {"name": "n", "metadata": {"status": "active"}}})
        assert fault(resp, 403, "forbidden") == "Attribute 'status' is read-only."
        resp = client.post(url, json={"createImage": {"name": "n", "metadata": {"k": "a\u0000b"}}})
        assert fault(resp, 400, "badRequest").endswith("'a\\x00b' contains a NUL character")
        assert {i["id"] for i in images.get("/v2/images").json()["images"]} == before
        server = client.get(f"/servers/{server_id}").json()["server"]
        assert (server["status"], server["OS-EXT-STS:task_state"]) == ("ACTIVE", None)
        assert client.delete(f"/servers/{server_id}").status_code == 204


def test_server_in_error_cannot_be_snapshotted(cloud: Cloud) -> None:
    with cloud.image_client() as images:
        image = upload_image(images, fake_fail_permanently="true")
    with cloud.client(OWNER, version="2.45") as client:
        server_id = boot(client, image["id"], networks="none").json()["server"]["id"]
        wait_for_status(client, server_id, {"ERROR"})
        resp = client.post(f"/servers/{server_id}/action", json={"createImage": {"name": "x"}})
        message = fault(resp, 409, "conflictingRequest")
        assert message == f"Cannot 'createImage' instance {server_id} while it is in vm_state error"
        assert client.delete(f"/servers/{server_id}").status_code == 204


def test_images_of_a_deleted_request_do_not_pile_up(cloud: Cloud, base_image: dict[str, Any]) -> None:
    """Two snapshots asked at once: one is accepted, the other refused, and the refused one's image is gone."""
    server_id = _server(cloud, base_image["id"])
    with cloud.client(OWNER, version="2.45") as client, cloud.image_client(OWNER) as images:
        before = {i["id"] for i in images.get("/v2/images").json()["images"]}
        import concurrent.futures

        def snap(i: int) -> httpx.Response:
            with cloud.client(OWNER, version="2.45") as c:
                return c.post(f"/servers/{server_id}/action", json={"createImage": {"name": f"race-{i}"}})

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(snap, range(4)))
        accepted = [r.json()["image_id"] for r in results if r.status_code == 202]
        assert len(accepted) >= 1 and all(r.status_code in (202, 409) for r in results)
        for image_id in accepted:
            _wait_image(cloud, image_id)
        wait_for_status(client, server_id, {"ACTIVE"})
        after = {i["id"] for i in images.get("/v2/images").json()["images"]}
        assert after - before == set(accepted)
        assert client.delete(f"/servers/{server_id}").status_code == 204
