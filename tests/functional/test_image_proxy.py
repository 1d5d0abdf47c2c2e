"""The image and image metadata proxies (2.1 to 2.35 and 2.38) over the cloud's image service, through HTTP
against the all-in-one, with tempest's schemas as the contract."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from tempest.lib.api_schema.response.compute.v2_1 import images as schema

from tests.conftest import Cloud
from tests.functional.helpers import boot, fault, upload_image, wait_for_status, wait_gone
from tests.functional.helpers import check_schema as check


def _project() -> str:
    return f"img-{uuid.uuid4().hex[:8]}"


def _wait_active(c: httpx.Client, image_id: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 30
    while True:
        image = c.get(f"/images/{image_id}").json()["image"]
        if image["status"] == "ACTIVE" or time.monotonic() > deadline:
            return image  # type: ignore[no-any-return]
        time.sleep(0.1)


def test_images_list_show_filters_and_delete(cloud: Cloud) -> None:
    project = _project()
    token = f"u:{project}"
    with cloud.image_client(token) as img:
        name = f"proxy-{uuid.uuid4().hex[:6]}"
        first = upload_image(img, name=name, visibility="private", min_ram=64, os_distro="cirros",
                             auto_disk_config="True")
        second = upload_image(img, name=f"{name}-2", visibility="private")
        queued = img.post("/v2/images", json={"name": f"{name}-q", "disk_format": "raw",
                                              "container_format": "bare", "visibility": "private"}).json()
    with cloud.client(token=token, version="2.35") as c:
        shown = check(schema.get_image, c.get(f"/images/{first['id']}"))["image"]
        assert shown["name"] == name and shown["status"] == "ACTIVE" and shown["progress"] == 100
        assert shown["minRam"] == 64 and shown["minDisk"] == 0 and shown["OS-EXT-IMG-SIZE:size"] == 4096
        assert shown["metadata"] == {"os_distro": "cirros", "auto_disk_config": "True"}
        assert shown["OS-DCF:diskConfig"] == "AUTO" and "server" not in shown
        assert [link["rel"] for link in shown["links"]] == ["self", "bookmark", "alternate"]
        waiting = c.get(f"/images/{queued['id']}").json()["image"]
        assert (waiting["status"], waiting["progress"]) == ("SAVING", 25)

        listed = check(schema.list_images, c.get("/images"))["images"]
        assert {first["id"], second["id"], queued["id"]} <= {i["id"] for i in listed}
        detail = check(schema.list_images_details, c.get("/images/detail", params={"name": name}))["images"]
        assert [i["id"] for i in detail] == [first["id"]]
        # the status filter is Glance's status, lowered as Nova sends it: ACTIVE is active, SAVING only saving
        active = {i["id"] for i in c.get("/images/detail", params={"status": "ACTIVE"}).json()["images"]}
        assert first["id"] in active and queued["id"] not in active
        assert queued["id"] not in {i["id"] for i in c.get("/images", params={"status": "SAVING"}).json()["images"]}
        by_property = c.get("/images", params={"property-os_distro": "cirros"}).json()["images"]
        assert first["id"] in {i["id"] for i in by_property} and second["id"] not in {i["id"] for i in by_property}
        page = c.get("/images", params={"limit": "1"}).json()
        assert len(page["images"]) == 1 and page["images_links"][0]["rel"] == "next"
        after = c.get("/images", params={"limit": "1", "marker": page["images"][0]["id"]}).json()["images"]
        assert after and after[0]["id"] != page["images"][0]["id"]
        fault(c.get("/images", params={"marker": str(uuid.uuid4())}), 400, "badRequest")

        assert fault(c.get(f"/images/{uuid.uuid4()}"), 404, "itemNotFound") == "Image not found."
        assert c.delete(f"/images/{second['id']}").status_code == 204
        fault(c.get(f"/images/{second['id']}"), 404, "itemNotFound")
        fault(c.delete(f"/images/{second['id']}"), 404, "itemNotFound")
    with cloud.client(token=f"other:{_project()}", version="2.35") as stranger:
        fault(stranger.get(f"/images/{first['id']}"), 404, "itemNotFound")
    with cloud.client(token=token, version="2.36") as c:
        fault(c.get("/images"), 404, "itemNotFound")
        fault(c.get(f"/images/{first['id']}"), 404, "itemNotFound")


def test_snapshot_shows_its_server(cloud: Cloud) -> None:
    project = _project()
    with cloud.image_client() as img:
        base = upload_image(img)
    with cloud.client(token=f"u:{project}") as c:
        resp = boot(c, base["id"])
        server_id = resp.json()["server"]["id"]
        wait_for_status(c, server_id, {"ACTIVE"})
        created = c.post(f"/servers/{server_id}/action", json={"createImage": {"name": "snap"}})
        assert created.status_code == 202, created.text
        image_id = created.headers["Location"].rsplit("/", 1)[-1]
        image = _wait_active(c, image_id)
        assert image["server"]["id"] == server_id and image["metadata"]["image_type"] == "snapshot"
        by_server = c.get("/images", params={"server": f"http://x/servers/{server_id}"}).json()["images"]
        assert [i["id"] for i in by_server] == [image_id]
        assert [i["id"] for i in c.get("/images", params={"type": "snapshot"}).json()["images"]] == [image_id]
        assert c.delete(f"/servers/{server_id}").status_code == 204
        wait_gone(c, server_id)
        assert c.delete(f"/images/{image_id}").status_code == 204


def test_image_metadata(cloud: Cloud) -> None:
    project = _project()
    token = f"u:{project}"
    with cloud.image_client(token) as img:
        image = upload_image(img, visibility="private", color="red", size_hint="s")
    path = f"/images/{image['id']}/metadata"
    with cloud.client(token=token, version="2.38") as c:
        assert check(schema.image_metadata, c.get(path))["metadata"] == {"color": "red", "size_hint": "s"}
        assert check(schema.image_meta_item, c.get(f"{path}/color"))["meta"] == {"color": "red"}
        fault(c.get(f"{path}/nothing"), 404, "itemNotFound")
        merged = check(schema.image_metadata, c.post(path, json={"metadata": {"color": "blue", "os": "linux"}}))
        assert merged["metadata"] == {"color": "blue", "size_hint": "s", "os": "linux"}
        assert c.put(f"{path}/os", json={"meta": {"os": "bsd"}}).json() == {"meta": {"os": "bsd"}}
        assert fault(c.put(f"{path}/os", json={"meta": {"other": "x"}}), 400, "badRequest") == (
            "Request body and URI mismatch")
        fault(c.put(f"{path}/os", json={"meta": {"os": "a", "b": "c"}}), 400, "badRequest")
        replaced = c.put(path, json={"metadata": {"only": "this"}})
        assert replaced.json() == {"metadata": {"only": "this"}}
        assert c.get(path).json() == {"metadata": {"only": "this"}}
        assert c.delete(f"{path}/only").status_code == 204
        assert fault(c.delete(f"{path}/only"), 404, "itemNotFound") == "Invalid metadata key"
        assert c.get(path).json() == {"metadata": {}}
        fault(c.get(f"/images/{uuid.uuid4()}/metadata"), 404, "itemNotFound")
        # over the metadata_items quota (128): refused, nothing changed
        too_many = {f"k{i}": "v" for i in range(129)}
        assert fault(c.post(path, json={"metadata": too_many}), 403, "forbidden") == "Image metadata limit exceeded"
        assert c.get(path).json() == {"metadata": {}}
    with cloud.client(token=token, version="2.39") as c:
        fault(c.get(path), 404, "itemNotFound")
