"""The embedded image service of a running all-in-one, through the clients people use: openstacksdk and the
``openstack`` CLI (both discover the API version from the unversioned endpoint), and plain HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from keystoneauth1.discover import Discover
from keystoneauth1.session import Session
from openstack import exceptions as sdk_exceptions

from tests.conftest import Cloud

OPENSTACK = str(Path(sys.executable).with_name("openstack"))
OCTETS = {"Content-Type": "application/octet-stream"}

# openstacksdk 4.22 warns about its own future changes from inside its own calls (InfluxDB on every connect,
# ``ignore_missing`` in create_image's duplicate check, ``_compute_attributes`` in find); nothing a caller can act on.
pytestmark = [pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
              pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning")]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_version_discovery(cloud: Cloud) -> None:
    assert Discover(Session(), cloud.image_url).url_for((2, 0)) == cloud.image_url + "/v2/"
    data = cloud.sdk().image.get_endpoint_data()
    assert (data.url, data.api_version) == (cloud.image_url + "/v2/", (2, 9))


def test_sdk_create_show_list_download_delete(cloud: Cloud) -> None:
    conn = cloud.sdk()
    data = os.urandom(300_000)
    name = _name("sdk")
    created = conn.image.create_image(name=name, data=data, disk_format="qcow2", container_format="bare")
    try:
        image = conn.image.get_image(created.id)
        assert (image.name, image.status, image.disk_format) == (name, "active", "qcow2")
        assert image.size == len(data)
        assert image.checksum == hashlib.md5(data).hexdigest()
        assert (image.hash_algo, image.hash_value) == ("sha512", hashlib.sha512(data).hexdigest())
        assert [i.id for i in conn.image.images(name=name)] == [created.id]
        assert conn.image.find_image(name, ignore_missing=False).id == created.id
        downloaded = conn.image.download_image(created.id)  # the SDK checks Content-MD5 as it reads
        assert hashlib.sha512(downloaded.content).hexdigest() == image.hash_value
    finally:
        conn.image.delete_image(created.id)
    with pytest.raises(sdk_exceptions.NotFoundException):
        conn.image.get_image(created.id)


def test_sdk_pages_through_the_list(cloud: Cloud) -> None:
    conn = cloud.sdk()
    tag = _name("page")
    ids = {conn.image.create_image(name=_name("p"), tags=[tag], allow_duplicates=True).id for _ in range(5)}
    try:
        assert {i.id for i in conn.image.images(tag=tag, limit=2)} == ids
    finally:
        for image_id in ids:
            conn.image.delete_image(image_id)


def _openstack(cloud: Cloud, tmp_path: Path, *args: str) -> Any:
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(cloud.clouds_yaml(tmp_path / "clouds.yaml")))
    env.pop("OS_CLOUD", None)
    result = subprocess.run([OPENSTACK, "--os-cloud", "stratus", *args], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if "json" in args else result.stdout


def test_openstack_cli(cloud: Cloud, tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    disk.write_bytes(os.urandom(64 * 1024))
    name = _name("cli")
    created = _openstack(cloud, tmp_path, "image", "create", "--file", str(disk), "--disk-format", "raw", name,
                         "-f", "json")
    assert created["name"] == name
    listed = _openstack(cloud, tmp_path, "image", "list", "-f", "json")
    assert {"ID": created["id"], "Name": name, "Status": "active"} in listed
    shown = _openstack(cloud, tmp_path, "image", "show", name, "-f", "json")
    assert shown["id"] == created["id"]
    assert (shown["checksum"], shown["size"]) == (hashlib.md5(disk.read_bytes()).hexdigest(), 64 * 1024)
    assert (shown["disk_format"], shown["container_format"]) == ("raw", "bare")
    _openstack(cloud, tmp_path, "image", "delete", name)
    assert created["id"] not in {i["ID"] for i in _openstack(cloud, tmp_path, "image", "list", "-f", "json")}


def test_other_projects_private_image_is_404(cloud: Cloud) -> None:
    with cloud.image_client("alice:alice") as alice, cloud.image_client("bob:bob") as bob:
        image = alice.post("/v2/images", json={"name": _name("private"), "visibility": "private"}).json()
        url = f"/v2/images/{image['id']}"
        assert alice.get(url).status_code == 200
        assert bob.get(url).status_code == 404
        assert bob.get(f"{url}/file").status_code == 404
        assert bob.delete(url).status_code == 404
        assert image["id"] not in {i["id"] for i in bob.get("/v2/images").json()["images"]}
        with pytest.raises(sdk_exceptions.NotFoundException):
            cloud.sdk("bob:bob").image.get_image(image["id"])
        assert alice.delete(url).status_code == 204


def test_bad_input_is_4xx(cloud: Cloud) -> None:
    with cloud.image_client() as client:
        wrong_type = client.post("/v2/images", json={"name": "x", "os_distro": 7})
        assert wrong_type.status_code == 400 and "is not of type 'string'" in wrong_type.text
        bad_json = client.post("/v2/images", content=b"{name:", headers={"Content-Type": "application/json"})
        assert bad_json.status_code == 400 and "Malformed JSON" in bad_json.text
        assert client.get(f"/v2/images/{uuid.uuid4()}").status_code == 404
        assert client.put(f"/v2/images/{uuid.uuid4()}/file", content=b"x", headers=OCTETS).status_code == 404
        image = client.post("/v2/images", json={"disk_format": "raw", "container_format": "bare"}).json()
        url = f"/v2/images/{image['id']}"
        assert client.put(f"{url}/file", content=b"once", headers=OCTETS).status_code == 204
        twice = client.put(f"{url}/file", content=b"twice", headers=OCTETS)
        assert twice.status_code == 409
        assert client.get(f"{url}/file").content == b"once"
        patch = client.patch(url, json=[{"op": "replace", "path": "/name", "value": "x"}])
        assert patch.status_code == 415
        assert client.delete(url).status_code == 204
