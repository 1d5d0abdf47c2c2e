"""The metadata API and config drives of a real all-in-one, over HTTP: every path and version Nova serves,
the proxy's signed headers (missing, forged, another tenant's), the password a guest posts once, and the
config drive read back from its ISO, equal to what the API serves."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import servers as servers_schema

from stratus.local_cloud import Cloud, free_port, start_cloud, stop_cloud
from stratus.metadata import base, configdrive
from tests.functional.helpers import boot, check_schema, upload_image, wait_for_status, wait_gone
from tests.unit.test_keypair_crypto import RSA

SECRET = "s3cret-proxy"
USER_DATA = b"#cloud-config\nhostname: from-user-data\n"
VENDOR = {"cloud": "stratus", "nested": {"a": 1}}


@pytest.fixture(scope="module")
def md_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    tmp = tmp_path_factory.mktemp("md-cloud")
    (tmp / "vendor.json").write_text(json.dumps(VENDOR))
    cloud = start_cloud(tmp, f"""
        [api]
        vendordata_jsonfile_path = {tmp / 'vendor.json'}
        [neutron]
        service_metadata_proxy = True
        metadata_proxy_shared_secret = {SECRET}
        [fake_driver]
        write_config_drive = True
        """)
    try:
        yield cloud
    finally:
        stop_cloud(cloud)


@pytest.fixture(scope="module")
def api(md_cloud: Cloud) -> Iterator[httpx.Client]:
    with md_cloud.client(token="alice:p1", version="2.64") as client:
        yield client


@pytest.fixture(scope="module")
def server(md_cloud: Cloud, api: httpx.Client) -> dict[str, Any]:
    resp = api.post("/os-keypairs", json={"keypair": {"name": "k1", "public_key": RSA}})
    assert resp.status_code == 201, resp.text
    with md_cloud.image_client() as images:
        image = upload_image(images)
    resp = boot(api, image["id"], name="web-1", key_name="k1", config_drive=True, metadata={"role": "web"},
                user_data=base64.b64encode(USER_DATA).decode(), adminPass="not-in-metadata", networks="none")
    assert resp.status_code == 202, resp.text
    return wait_for_status(api, resp.json()["server"]["id"], {"ACTIVE"})


def sign(instance_id: str, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), instance_id.encode(), hashlib.sha256).hexdigest()


def get(cloud: Cloud, path: str, server: dict[str, Any] | None, method: str = "GET", **headers: str
        ) -> httpx.Response:
    if server is not None:
        headers = {"X-Instance-ID": server["id"], "X-Tenant-ID": server["tenant_id"],
                   "X-Instance-ID-Signature": sign(server["id"]), "X-Forwarded-For": "10.0.0.3", **headers}
    return httpx.request(method, cloud.metadata_url + path, headers=headers, timeout=10,
                         content=headers.pop("body", None))


def test_root_lists_ec2_versions_without_identification(md_cloud: Cloud) -> None:
    resp = get(md_cloud, "/", None)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/plain; charset=UTF-8"
    assert resp.text.split("\n") == [*base.VERSIONS, "latest"]


def test_openstack_every_version(md_cloud: Cloud, server: dict[str, Any]) -> None:
    resp = get(md_cloud, "/openstack", server)
    assert resp.status_code == 200 and resp.text.split("\n") == [*base.OPENSTACK_VERSIONS, "latest"]
    for version in [*base.OPENSTACK_VERSIONS, "latest"]:
        listing = get(md_cloud, f"/openstack/{version}/", server)
        assert listing.status_code == 200, version
        for name in listing.text.split("\n"):
            resp = get(md_cloud, f"/openstack/{version}/{name}", server)
            assert resp.status_code == 200, (version, name, resp.text)
        doc = get(md_cloud, f"/openstack/{version}/meta_data.json", server)
        assert doc.headers["content-type"] == "application/json"
        meta = doc.json()
        assert meta["uuid"] == server["id"] and meta["name"] == "web-1" and meta["hostname"] == "web-1.novalocal"
        assert meta["public_keys"] == {"k1": RSA} and meta["keys"] == [{"name": "k1", "type": "ssh", "data": RSA}]
        assert meta["meta"] == {"role": "web"} and meta["availability_zone"] == "nova"
        assert "admin_pass" not in meta and "not-in-metadata" not in doc.text
        assert get(md_cloud, f"/openstack/{version}/user_data", server).content == USER_DATA
    latest = get(md_cloud, "/openstack/latest/meta_data.json", server).json()
    assert latest["project_id"] == "p1" and latest["devices"] == [] and latest["dedicated_cpus"] == []
    assert get(md_cloud, "/openstack/latest/vendor_data.json", server).json() == VENDOR
    assert get(md_cloud, "/openstack/latest/vendor_data2.json", server).json() == {"static": VENDOR}
    net = get(md_cloud, "/openstack/latest/network_data.json", server)
    assert net.json() == {} and net.headers["content-type"] == "text/plain; charset=UTF-8"
    for missing in ("/openstack/2012-08-10/password", "/openstack/2000-01-01/meta_data.json",
                    "/openstack/latest/nothing"):
        resp = get(md_cloud, missing, server)
        assert resp.status_code == 404, missing
        assert resp.text == "404 Not Found\n\nThe resource could not be found.\n\n   "


def test_ec2_every_version(md_cloud: Cloud, server: dict[str, Any]) -> None:
    for version in [*base.VERSIONS, "latest"]:
        assert get(md_cloud, f"/{version}", server).text == "meta-data/\nuser-data"
        assert get(md_cloud, f"/{version}/user-data", server).content == USER_DATA
        listing = get(md_cloud, f"/{version}/meta-data/", server).text.split("\n")
        assert {"ami-id", "instance-id", "hostname", "public-keys/", "security-groups"} <= set(listing)
        for name in listing:
            assert get(md_cloud, f"/{version}/meta-data/{name}", server).status_code == 200, (version, name)
    tree = "/latest/meta-data"
    assert get(md_cloud, f"{tree}/hostname", server).text == "web-1.novalocal"
    assert get(md_cloud, f"{tree}/local-hostname", server).text == "web-1.novalocal"
    assert get(md_cloud, f"{tree}/instance-type", server).text == "m1.tiny"
    assert get(md_cloud, f"{tree}/instance-id", server).text.startswith("i-")
    assert get(md_cloud, f"{tree}/placement/availability-zone", server).text == "nova"
    assert get(md_cloud, f"{tree}/public-keys/", server).text == "0=k1"
    assert get(md_cloud, f"{tree}/public-keys/0/", server).text == "openssh-key"
    assert get(md_cloud, f"{tree}/public-keys/0/openssh-key", server).text == RSA
    assert get(md_cloud, f"{tree}/security-groups", server).text == "default"
    assert get(md_cloud, f"{tree}/local-ipv4", server).text == "10.0.0.3"  # the requester: no fixed IP yet
    assert get(md_cloud, f"{tree}/reservation-id", server).text.startswith("r-")
    assert get(md_cloud, f"{tree}/block-device-mapping/", server).text == "ami\nephemeral0\nroot\nswap"
    assert get(md_cloud, "/2010-01-01/meta-data", server).status_code == 404


def test_proxy_headers(md_cloud: Cloud, server: dict[str, Any]) -> None:
    path = "/openstack/latest/meta_data.json"
    forged = get(md_cloud, path, server, **{"X-Instance-ID-Signature": sign(server["id"], "guess")})
    assert forged.status_code == 403
    assert forged.text == "403 Forbidden\n\nInvalid proxy request signature.\n\n   "
    assert forged.headers["content-type"] == "text/plain; charset=UTF-8"
    missing = get(md_cloud, path, None, **{"X-Instance-ID": server["id"], "X-Tenant-ID": "p1"})
    assert missing.status_code == 400
    assert missing.text == "400 Bad Request\n\nX-Instance-ID-Signature header is missing from request.\n\n   "
    no_id = get(md_cloud, path, None, **{"X-Tenant-ID": "p1"})
    assert no_id.status_code == 400 and "X-Instance-ID header is missing from request." in no_id.text
    no_tenant = get(md_cloud, path, None, **{"X-Instance-ID": server["id"],
                                             "X-Instance-ID-Signature": sign(server["id"])})
    assert no_tenant.status_code == 400 and "X-Tenant-ID header is missing from request." in no_tenant.text
    # a correctly signed id of another tenant's instance: nothing of it (Nova's 404)
    other = get(md_cloud, path, server, **{"X-Tenant-ID": "p2"})
    assert other.status_code == 404
    stranger = str(uuid.uuid4())
    unknown = get(md_cloud, path, server, **{"X-Instance-ID": stranger, "X-Instance-ID-Signature": sign(stranger)})
    assert unknown.status_code == 404
    # an id signed for one instance does not open another's
    swapped = get(md_cloud, path, server, **{"X-Instance-ID": stranger})
    assert swapped.status_code == 403
    lb = get(md_cloud, path, None, **{"X-Metadata-Provider": "prov-1"})
    assert lb.status_code == 400 and "X-Forwarded-For is missing from request." in lb.text


def test_password_is_posted_once(md_cloud: Cloud, api: httpx.Client, server: dict[str, Any]) -> None:
    with md_cloud.image_client() as images:
        image = upload_image(images)
    fresh = wait_for_status(api, boot(api, image["id"], name="pw", networks="none").json()["server"]["id"], {"ACTIVE"})
    path = "/openstack/latest/password"
    empty = get(md_cloud, path, fresh)
    assert empty.status_code == 200 and empty.content == b""
    shown = api.get(f"/servers/{fresh['id']}/os-server-password")
    assert shown.status_code == 200 and shown.json() == {"password": ""}
    too_long = get(md_cloud, path, fresh, method="POST", body="x" * 1021)
    assert too_long.status_code == 400 and "Request is too large." in too_long.text
    assert get(md_cloud, path, fresh, method="POST", body="encrypted-pw").status_code == 200
    assert get(md_cloud, path, fresh).text == "encrypted-pw"
    again = get(md_cloud, path, fresh, method="POST", body="other")
    assert again.status_code == 409
    assert again.text == "409 Conflict\n\nThere was a conflict when trying to complete your request.\n\n   "
    assert get(md_cloud, path, fresh).text == "encrypted-pw"
    assert get(md_cloud, path, fresh, method="PUT", body="x").status_code == 400
    # the compute API's os-server-password shows what the guest posted; clearing it empties the stored chunks
    check_schema(servers_schema.show_password, api.get(f"/servers/{fresh['id']}/os-server-password"))
    assert api.get(f"/servers/{fresh['id']}/os-server-password").json() == {"password": "encrypted-pw"}
    with md_cloud.client(token="someone:p-other") as other:
        assert other.get(f"/servers/{fresh['id']}/os-server-password").status_code == 404
        assert other.delete(f"/servers/{fresh['id']}/os-server-password").status_code == 404
    assert api.get(f"/servers/{fresh['id']}/os-server-password").json() == {"password": "encrypted-pw"}
    cleared = api.delete(f"/servers/{fresh['id']}/os-server-password")
    assert cleared.status_code == 204 and cleared.content == b""
    assert api.get(f"/servers/{fresh['id']}/os-server-password").json() == {"password": ""}
    # (the metadata service serves what it cached for [api] metadata_cache_expiration, as Nova's)
    assert api.get(f"/servers/{uuid.uuid4()}/os-server-password").status_code == 404
    assert get(md_cloud, path, server).content == b""  # the other instance's password is its own
    assert api.delete(f"/servers/{fresh['id']}").status_code == 204
    # deleted while its metadata is still cached (Nova serves it for the cache's lifetime): no password is stored
    gone = wait_for_status(api, boot(api, image["id"], name="gone", networks="none").json()["server"]["id"],
                           {"ACTIVE"})
    assert get(md_cloud, path, gone).status_code == 200
    assert api.delete(f"/servers/{gone['id']}").status_code == 204
    wait_gone(api, gone["id"])
    late = get(md_cloud, path, gone, method="POST", body="late")
    assert late.status_code == 400 and f"Instance {gone['id']} could not be found." in late.text


def test_config_drive_matches_the_api(md_cloud: Cloud, api: httpx.Client, server: dict[str, Any]) -> None:
    assert server["config_drive"] == "True"
    path = md_cloud.state_path / "instances" / server["id"] / "disk.config"
    label, files = configdrive.read_drive(str(path))
    assert label == "config-2"
    for version in [*base.OPENSTACK_VERSIONS, "latest"]:
        on_drive = json.loads(files[f"openstack/{version}/meta_data.json"])
        served = get(md_cloud, f"/openstack/{version}/meta_data.json", server).json()
        on_drive.pop("random_seed", None)
        served.pop("random_seed", None)
        # the create's adminPass is on the drive only (Nova's libvirt driver's extra_md), never served
        assert on_drive.pop("admin_pass") == "not-in-metadata", version
        assert on_drive == served, version
        assert files[f"openstack/{version}/user_data"] == USER_DATA
    assert json.loads(files["openstack/latest/vendor_data.json"]) == VENDOR
    assert json.loads(files["openstack/latest/vendor_data2.json"]) == {"static": VENDOR}
    assert json.loads(files["openstack/latest/network_data.json"]) == {}
    assert {p.split("/")[1] for p in files if p.startswith("ec2/")} == {"2009-04-04", "latest"}
    ec2 = json.loads(files["ec2/latest/meta-data.json"])
    assert ec2["instance-id"] == get(md_cloud, "/latest/meta-data/instance-id", server).text
    assert ec2["public-keys"] == {"0": {"openssh-key": RSA}}
    assert files["ec2/latest/user-data"] == USER_DATA
    assert [p for p, data in files.items() if b"not-in-metadata" in data] == [
        f"openstack/{v}/meta_data.json" for v in [*base.OPENSTACK_VERSIONS, "latest"]]
    assert not any(p.startswith("openstack/content/") for p in files)  # no personality, no content
    assert api.delete(f"/servers/{server['id']}").status_code == 204
    wait_gone(api, server["id"])
    assert not path.exists()


def test_config_drive_from_image_property(md_cloud: Cloud, api: httpx.Client) -> None:
    with md_cloud.image_client() as images:
        plain, mandatory = upload_image(images), upload_image(images, img_config_drive="mandatory")
    without = wait_for_status(api, boot(api, plain["id"], networks="none").json()["server"]["id"], {"ACTIVE"})
    assert without["config_drive"] == ""
    assert not (md_cloud.state_path / "instances" / without["id"] / "disk.config").exists()
    forced = wait_for_status(api, boot(api, mandatory["id"], networks="none").json()["server"]["id"], {"ACTIVE"})
    assert forced["config_drive"] == "True"
    assert (md_cloud.state_path / "instances" / forced["id"] / "disk.config").exists()


def test_fixed_ip_lookup_without_networking_is_404(tmp_path: Path) -> None:
    """Not behind the proxy the requester is found by its fixed IP; no instance has one yet, so a guest (or
    anyone) asking gets nothing, and X-Instance-ID headers are not trusted."""
    cloud = start_cloud(tmp_path)
    try:
        assert httpx.get(cloud.metadata_url + "/", timeout=5).status_code == 200
        resp = httpx.get(cloud.metadata_url + "/openstack/latest/meta_data.json", timeout=5,
                         headers={"X-Instance-ID": str(uuid.uuid4()), "X-Tenant-ID": "p1"})
        assert resp.status_code == 404
        assert resp.text == "404 Not Found\n\nThe resource could not be found.\n\n   "
    finally:
        stop_cloud(cloud)


def test_user_data_is_checked_at_create(md_cloud: Cloud, api: httpx.Client) -> None:
    """What reaches the guest was checked when the server was asked for: base64, at most 65535 characters."""
    with md_cloud.image_client() as images:
        image = upload_image(images)
    before = len(api.get("/servers").json()["servers"])
    too_long = boot(api, image["id"], networks="none", user_data="A" * 65536)
    assert too_long.status_code == 400, too_long.text
    assert "user_data" in too_long.json()["badRequest"]["message"]
    not_base64 = boot(api, image["id"], networks="none", user_data="!!notbase64")
    assert not_base64.status_code == 400
    assert not_base64.json()["badRequest"]["message"] == "User data needs to be valid base 64."
    assert len(api.get("/servers").json()["servers"]) == before


PERSONALITY = [{"path": "/etc/motd", "contents": base64.b64encode(b"hello from personality\n").decode()},
               {"path": "/root/.ssh/extra", "contents": base64.b64encode(bytes(range(256))).decode()}]


def test_injected_files_and_admin_pass_on_the_config_drive(md_cloud: Cloud) -> None:
    """Nova's semantics up to 2.56: the personality files go to ``openstack/content/NNNN`` with ``files`` in
    meta_data.json, and the adminPass of the create response (generated here) to ``admin_pass``, on the drive
    only; the metadata API serves neither."""
    with md_cloud.client(token="alice:p1", version="2.56") as c, md_cloud.image_client() as images:
        image = upload_image(images)
        resp = boot(c, image["id"], networks="none", config_drive=True, personality=PERSONALITY)
        assert resp.status_code == 202, resp.text
        password = resp.json()["server"]["adminPass"]
        assert len(password) == 12
        server = wait_for_status(c, resp.json()["server"]["id"], {"ACTIVE"})
        _label, files = configdrive.read_drive(str(md_cloud.state_path / "instances" / server["id"] / "disk.config"))
        assert files["openstack/content/0000"] == b"hello from personality\n"
        assert files["openstack/content/0001"] == bytes(range(256))
        assert sorted(p for p in files if p.startswith("openstack/content/")) == [
            "openstack/content/0000", "openstack/content/0001"]
        for version in [*base.OPENSTACK_VERSIONS, "latest"]:
            meta = json.loads(files[f"openstack/{version}/meta_data.json"])
            assert meta["admin_pass"] == password, version
            assert meta["files"] == [{"path": "/etc/motd", "content_path": "/content/0000"},
                                     {"path": "/root/.ssh/extra", "content_path": "/content/0001"}], version
        served = get(md_cloud, "/openstack/latest/meta_data.json", server)
        assert served.status_code == 200
        assert "admin_pass" not in served.json() and "files" not in served.json() and password not in served.text
        assert get(md_cloud, "/openstack/content/0000", server).status_code == 404
        assert get(md_cloud, "/openstack/latest/password", server).content == b""  # until the guest posts one
        # the password went to the compute host in the build cast only: the database never held it
        stored = [p for p in md_cloud.state_path.glob("stratus.sqlite*") if password.encode() in p.read_bytes()]
        assert list(md_cloud.state_path.glob("stratus.sqlite")) and stored == []
        # without a config drive the files and password go nowhere; the build still succeeds, as Nova's
        plain = boot(c, image["id"], networks="none", personality=PERSONALITY[:1])
        assert plain.status_code == 202, plain.text
        assert wait_for_status(c, plain.json()["server"]["id"], {"ACTIVE"})["config_drive"] == ""
        # a rebuild (to 2.56) writes its own files onto the drive it builds again
        rebuilt = c.post(f"/servers/{server['id']}/action", json={"rebuild": {
            "imageRef": image["id"], "personality": [{"path": "/etc/rebuilt", "contents": base64.b64encode(
                b"after rebuild\n").decode()}]}})
        assert rebuilt.status_code == 202, rebuilt.text
        deadline = time.monotonic() + 30
        while True:
            shown = wait_for_status(c, server["id"], {"ACTIVE"})
            if shown["OS-EXT-STS:task_state"] is None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        _label, files = configdrive.read_drive(str(md_cloud.state_path / "instances" / server["id"] / "disk.config"))
        assert files["openstack/content/0000"] == b"after rebuild\n" and "openstack/content/0001" not in files
        assert json.loads(files["openstack/latest/meta_data.json"])["files"] == [
            {"path": "/etc/rebuilt", "content_path": "/content/0000"}]
    with md_cloud.client(token="alice:p1", version="2.57") as c:  # gone with 2.57, as at boot
        assert c.post(f"/servers/{server['id']}/action", json={"rebuild": {
            "imageRef": image["id"], "personality": []}}).status_code == 400


def test_personality_contents_must_be_base64(md_cloud: Cloud) -> None:
    with md_cloud.client(token="alice:p1", version="2.56") as c, md_cloud.image_client() as images:
        image = upload_image(images)
        before = len(c.get("/servers").json()["servers"])
        bad = boot(c, image["id"], networks="none", personality=[{"path": "/etc/x", "contents": "!!abc"}])
        assert bad.status_code == 400, bad.text
        assert bad.json()["badRequest"]["message"] == (
            "Invalid input for field/attribute contents. Value: !!abc. '!!abc' is not a 'base64'")
        unknown = boot(c, image["id"], networks="none", personality=[{"path": "/etc/x", "contents": "eA==",
                                                                      "mode": "0600"}])
        assert unknown.status_code == 400
        assert "Additional properties are not allowed ('mode' was unexpected)" in unknown.json()["badRequest"][
            "message"]
        assert len(c.get("/servers").json()["servers"]) == before


@pytest.mark.parametrize("option, error", [
    ("[DEFAULT]\nconfig_drive_format = vfat\n", "config_drive_format"),
    ("[api]\nvendordata_providers = DynamicJSON\n", "vendordata_providers"),
    ("[api]\nvendordata_jsonfile_path = /nonexistent/vendor.json\n", "vendordata_jsonfile_path"),
])
def test_options_it_cannot_honour_stop_the_start(tmp_path: Path, option: str, error: str) -> None:
    config = tmp_path / "stratus.conf"
    config.write_text(f"[DEFAULT]\nstate_path = {tmp_path / 'data'}\n[api]\nauth_strategy = noauth2\n" + option)
    proc = subprocess.run([sys.executable, "-m", "stratus.cli", "--config-file", str(config), "all-in-one"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert error in proc.stderr


def test_metadata_role_on_its_own(tmp_path: Path) -> None:
    """``stratus metadata``: the metadata API alone, on the database it shares with the other services."""
    port = free_port()
    config = tmp_path / "stratus.conf"
    config.write_text(f"[DEFAULT]\nstate_path = {tmp_path / 'data'}\nmetadata_listen_port = {port}\n")
    proc = subprocess.Popen([sys.executable, "-m", "stratus.cli", "--config-file", str(config), "metadata"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert resp.status_code == 200 and resp.text.endswith("2009-04-04\nlatest")
        assert httpx.get(f"http://127.0.0.1:{port}/latest/meta-data/", timeout=5).status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=15)
