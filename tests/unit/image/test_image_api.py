"""The Glance v2 HTTP surface of the embedded store, driven in process through ``httpx.ASGITransport``."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
OCTETS = {"Content-Type": "application/octet-stream"}


async def _create(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await api.post("/v2/images", json={"disk_format": "raw", "container_format": "bare", **body})
    assert response.status_code == 201, response.text
    image: dict[str, Any] = response.json()
    return image


async def test_versions_document(api: httpx.AsyncClient) -> None:
    root = await api.get("/", headers={"X-Auth-Token": ""})
    versions = await api.get("/versions")
    assert (root.status_code, versions.status_code) == (300, 200)
    assert root.json() == versions.json()
    current = [v for v in versions.json()["versions"] if v["status"] == "CURRENT"]
    assert [v["id"] for v in current] == ["v2.9"]
    assert current[0]["links"] == [{"rel": "self", "href": "http://images.test/v2/"}]
    assert (await api.get("/v2/")).json() == versions.json()  # discovery may start at the versioned URL


async def test_authentication_required(api: httpx.AsyncClient) -> None:
    response = await api.get("/v2/images", headers={"X-Auth-Token": ""})
    assert response.status_code == 401
    assert "Authentication required" in response.text


async def test_create_show_patch_delete(api: httpx.AsyncClient) -> None:
    image = await _create(api, name="cirros", os_distro="cirros")
    assert image["status"] == "queued"
    shown = await api.get(f"/v2/images/{image['id']}")
    assert shown.json() == image
    assert shown.headers["x-openstack-request-id"].startswith("req-")
    patched = await api.patch(f"/v2/images/{image['id']}", headers=PATCH,
                              content=b'[{"op": "replace", "path": "/name", "value": "renamed"}]')
    assert patched.status_code == 200 and patched.json()["name"] == "renamed"
    assert (await api.delete(f"/v2/images/{image['id']}")).status_code == 204
    assert (await api.get(f"/v2/images/{image['id']}")).status_code == 404


async def test_create_location_header_is_absolute(api: httpx.AsyncClient) -> None:
    response = await api.post("/v2/images", json={})
    assert response.headers["location"] == f"http://images.test/v2/images/{response.json()['id']}"


async def test_upload_download(api: httpx.AsyncClient) -> None:
    image = await _create(api)
    assert (await api.get(f"/v2/images/{image['id']}/file")).status_code == 204  # no data yet
    data = b"disk" * 100_000
    assert (await api.put(f"/v2/images/{image['id']}/file", content=data, headers=OCTETS)).status_code == 204
    shown = (await api.get(f"/v2/images/{image['id']}")).json()
    assert (shown["status"], shown["size"], shown["checksum"]) == ("active", len(data), hashlib.md5(data).hexdigest())
    got = await api.get(f"/v2/images/{image['id']}/file")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-md5"] == shown["checksum"]
    assert got.headers["content-type"] == "application/octet-stream"
    again = await api.put(f"/v2/images/{image['id']}/file", content=b"x", headers=OCTETS)
    assert again.status_code == 409


async def test_upload_wants_octet_stream(api: httpx.AsyncClient) -> None:
    image = await _create(api)
    response = await api.put(f"/v2/images/{image['id']}/file", content=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert (await api.get(f"/v2/images/{image['id']}")).json()["status"] == "queued"


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "message"), [
    ("POST", "/v2/images", {"content": b"{not json"}, 400, "Malformed JSON"),
    ("POST", "/v2/images", {"content": b""}, 400, "Body expected"),
    ("POST", "/v2/images", {"json": {"foo": 5}}, 400, "does not match schema"),
    ("POST", "/v2/images", {"json": {"status": "active"}}, 403, "read-only"),
    ("POST", "/v2/images", {"content": b"[" * 2_000_000}, 413, "larger than"),
    ("GET", "/v2/images/nope", {}, 404, "No image found with ID nope"),
    ("GET", "/v2/images/nope/file", {}, 404, "nope"),
    ("PUT", "/v2/images/nope/file", {"content": b"x"}, 404, "nope"),
    ("DELETE", "/v2/images/nope", {}, 404, "nope"),
    ("GET", "/v2/images?limit=x", {}, 400, "limit param must be an integer"),
    ("GET", "/v2/images?limit=-1", {}, 400, "limit param must be positive"),
    ("GET", "/v2/images?sort_key=owner", {}, 400, "Invalid sort key"),
    ("GET", "/v2/images?sort_dir=up", {}, 400, "Invalid sort direction"),
    ("GET", "/v2/images?sort=name&sort_key=name", {}, 400, "cannot be combined"),
    ("GET", "/v2/images?sort_key=name&sort_key=id&sort_dir=asc&sort_dir=asc&sort_dir=asc", {}, 400, "sort dirs"),
    ("GET", "/v2/images?visibility=everyone", {}, 400, "Invalid visibility"),
    ("GET", "/v2/images?member_status=maybe", {}, 400, "Invalid status"),
    ("GET", "/v2/images?status=sleeping", {}, 400, "Invalid status value"),
    ("GET", "/v2/images?os_hidden=maybe", {}, 400, "os_hidden"),
    ("GET", "/v2/images?created_at=soon:2020-01-01", {}, 400, "Invalid operator"),
    ("GET", "/v2/images?created_at=gte:yesterday", {}, 400, "Invalid time"),
    ("GET", "/v2/images?marker=nope", {}, 400, "Invalid marker"),
    ("GET", "/v2/images?size_min=99999999999999999999", {}, 400, "out of range"),
    ("GET", "/v2/images?name=a%00b", {}, 400, "NUL"),
    ("PUT", "/v2/images/x/tags/a%00b", {}, 400, "NUL"),
    ("GET", "/v2/nothing", {}, 404, "could not be found"),
    ("PUT", "/v2/images", {}, 405, "Method Not Allowed"),
])
async def test_bad_requests(api: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any], status: int,
                            message: str) -> None:
    response = await api.request(method, path, **kwargs)
    assert response.status_code == status
    assert message in response.text
    assert response.headers["content-type"].startswith("text/plain")


async def test_errors_are_json_when_asked(api: httpx.AsyncClient) -> None:
    response = await api.get("/v2/images/nope", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.json() == {"message": "No image found with ID nope", "code": "404 Not Found",
                               "title": "Not Found"}


async def test_method_not_allowed_lists_methods(api: httpx.AsyncClient) -> None:
    response = await api.put("/v2/images")
    assert set(response.headers["allow"].split(", ")) >= {"GET", "POST"}


async def test_patch_media_type_and_body(api: httpx.AsyncClient) -> None:
    image = await _create(api)
    url = f"/v2/images/{image['id']}"
    plain = await api.patch(url, json=[{"op": "replace", "path": "/name", "value": "x"}])
    assert plain.status_code == 415
    assert plain.headers["accept-patch"] == PATCH["Content-Type"] + ", application/openstack-images-v2.0-json-patch"
    assert (await api.patch(url, headers=PATCH, content=b"[oops")).status_code == 400
    missing = await api.patch(url, headers=PATCH, content=b'[{"op": "remove", "path": "/nope"}]')
    assert missing.status_code == 409
    # Glance's older form: the operation is the change's key
    v20 = {"Content-Type": "application/openstack-images-v2.0-json-patch"}
    older = await api.patch(url, headers=v20, json=[{"add": "/hw_rescue_bus", "value": "scsi"},
                                                     {"replace": "/name", "value": "v20"}])
    assert older.status_code == 200, older.text
    assert (older.json()["hw_rescue_bus"], older.json()["name"]) == ("scsi", "v20")
    assert (await api.patch(url, headers=v20, json=[{"remove": "/hw_rescue_bus"}])).json().get("hw_rescue_bus") is None
    assert (await api.patch(url, headers=v20, json=[{"value": "x"}])).status_code == 400  # names no operation


async def test_list_pages_and_links(api: httpx.AsyncClient) -> None:
    ids = {(await _create(api, name=f"img{i}"))["id"] for i in range(5)}
    first = (await api.get("/v2/images", params={"limit": 2, "sort": "name:asc"})).json()
    assert first["first"] == "/v2/images?limit=2&sort=name%3Aasc"
    assert first["schema"] == "/v2/schemas/images"
    seen, body = [], first
    while True:
        seen += [i["name"] for i in body["images"]]
        if "next" not in body:
            break
        body = (await api.get(body["next"])).json()
    assert seen == [f"img{i}" for i in range(5)]
    assert {i["id"] for i in (await api.get("/v2/images")).json()["images"]} == ids


async def test_list_filters(api: httpx.AsyncClient) -> None:
    await _create(api, name="a", os_distro="ubuntu", tags=["x", "y"])
    await _create(api, name="b,c", os_distro="debian", tags=["x"])

    async def names(**params: Any) -> list[str]:
        response = await api.get("/v2/images", params={"sort_key": "name", "sort_dir": "asc", **params})
        assert response.status_code == 200, response.text
        return [i["name"] for i in response.json()["images"]]

    assert await names(os_distro="debian") == ["b,c"]
    assert await names(tag=["x", "y"]) == ["a"]
    assert await names(name='in:a,"b,c"') == ["a", "b,c"]
    assert await names(name="a") == ["a"]
    assert await names(status="active") == []
    assert await names(visibility="shared", member_status="all") == ["a", "b,c"]
    assert await names(created_at="gte:2000-01-01T00:00:00Z") == ["a", "b,c"]
    assert await names(protected="false", os_hidden="false") == ["a", "b,c"]


async def test_other_projects_private_images_are_404(api: httpx.AsyncClient) -> None:
    image = await _create(api, visibility="private")
    bob = {"X-Auth-Token": "bob:bob"}
    assert (await api.get(f"/v2/images/{image['id']}", headers=bob)).status_code == 404
    assert (await api.get(f"/v2/images/{image['id']}/file", headers=bob)).status_code == 404
    assert (await api.delete(f"/v2/images/{image['id']}", headers=bob)).status_code == 404
    assert (await api.get("/v2/images", headers=bob)).json()["images"] == []
    assert (await api.get(f"/v2/images/{image['id']}", headers={"X-Auth-Token": "admin:admin"})).status_code == 200


async def test_tags_and_actions(api: httpx.AsyncClient) -> None:
    image = await _create(api)
    url = f"/v2/images/{image['id']}"
    assert (await api.put(f"{url}/tags/blue")).status_code == 204
    assert (await api.get(url)).json()["tags"] == ["blue"]
    assert (await api.delete(f"{url}/tags/blue")).status_code == 204
    assert (await api.delete(f"{url}/tags/blue")).status_code == 404
    await api.put(f"{url}/file", content=b"data", headers=OCTETS)
    admin = {"X-Auth-Token": "admin:admin"}
    assert (await api.post(f"{url}/actions/deactivate")).status_code == 403
    assert (await api.post(f"{url}/actions/deactivate", headers=admin)).status_code == 204
    assert (await api.get(url)).json()["status"] == "deactivated"
    assert (await api.get(f"{url}/file")).status_code == 403
    assert (await api.post(f"{url}/actions/reactivate", headers=admin)).status_code == 204
    assert (await api.get(f"{url}/file")).content == b"data"


async def test_schemas(api: httpx.AsyncClient) -> None:
    image = (await api.get("/v2/schemas/image")).json()
    images = (await api.get("/v2/schemas/images")).json()
    assert image["name"] == "image" and "disk_format" in image["properties"]
    assert image["additionalProperties"] == {"type": "string", "maxLength": 65535}
    assert images["name"] == "images" and images["properties"]["images"]["items"]["name"] == "image"
