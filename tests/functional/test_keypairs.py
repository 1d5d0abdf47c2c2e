"""Key pairs through the REST API of a running all-in-one, version by version (2.1, 2.2, 2.10, 2.35)."""

from __future__ import annotations

import datetime
import sqlite3
import uuid

import httpx
import pytest
from tempest.lib.api_schema.response.compute.v2_1 import keypairs as schema_21
from tempest.lib.api_schema.response.compute.v2_2 import keypairs as schema_22

from tests.conftest import Cloud
from tests.functional.helpers import check_schema as check
from tests.functional.helpers import fault
from tests.unit.test_keypair_crypto import CERT, CERT_FP, RSA, RSA_FP


def unique(prefix: str = "kp") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_v21_generate_show_list_delete(cloud: Cloud) -> None:
    with cloud.client(token="erin:proj-kp", version="2.1") as c:
        name = unique()
        created = check(schema_21.create_keypair, c.post("/os-keypairs", json={"keypair": {"name": name}}))
        kp = created["keypair"]
        assert kp["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----") and kp["user_id"] == "erin"
        assert "type" not in kp
        shown = check(schema_21.get_keypair, c.get(f"/os-keypairs/{name}"))["keypair"]
        assert (shown["fingerprint"], shown["public_key"]) == (kp["fingerprint"], kp["public_key"])
        assert shown["deleted"] is False and shown["deleted_at"] is None and shown["updated_at"] is None
        datetime.datetime.fromisoformat(shown["created_at"])
        listed = check(schema_21.list_keypairs, c.get("/os-keypairs"))["keypairs"]
        assert name in {k["keypair"]["name"] for k in listed}
        check(schema_21.delete_keypair, c.delete(f"/os-keypairs/{name}"))
        assert fault(c.get(f"/os-keypairs/{name}"), 404, "itemNotFound") == f"Keypair {name} not found for user erin"
        fault(c.delete(f"/os-keypairs/{name}"), 404, "itemNotFound")
        fault(c.post("/os-keypairs", json={"keypair": {"name": unique(), "type": "ssh"}}), 400, "badRequest")


def test_v22_import_types(cloud: Cloud) -> None:
    with cloud.client(token="erin:proj-kp", version="2.2") as c:
        ssh_name, x509_name = unique(), unique()
        ssh = check(schema_22.create_keypair, c.post("/os-keypairs", json={"keypair": {
            "name": ssh_name, "public_key": RSA}}))["keypair"]
        assert (ssh["type"], ssh["fingerprint"], ssh["public_key"]) == ("ssh", RSA_FP, RSA)
        assert "private_key" not in ssh
        cert = check(schema_22.create_keypair, c.post("/os-keypairs", json={"keypair": {
            "name": x509_name, "type": "x509", "public_key": CERT}}))["keypair"]
        assert (cert["type"], cert["fingerprint"]) == ("x509", CERT_FP)
        assert check(schema_22.get_keypair, c.get(f"/os-keypairs/{x509_name}"))["keypair"]["type"] == "x509"
        listed = check(schema_22.list_keypairs, c.get("/os-keypairs"))["keypairs"]
        assert {ssh_name, x509_name} <= {k["keypair"]["name"] for k in listed}
        generated = check(schema_22.create_keypair, c.post("/os-keypairs", json={"keypair": {
            "name": unique(), "type": "x509"}}))["keypair"]
        assert generated["public_key"].startswith("-----BEGIN CERTIFICATE-----") and generated["private_key"]
        for name in (ssh_name, x509_name, generated["name"]):
            check(schema_22.delete_keypair, c.delete(f"/os-keypairs/{name}"))


def test_duplicates_and_bad_input(cloud: Cloud) -> None:
    with cloud.client(token="erin:proj-kp", version="2.47") as c:
        name = unique()
        check(schema_22.create_keypair, c.post("/os-keypairs", json={"keypair": {"name": name, "public_key": RSA}}))
        assert fault(c.post("/os-keypairs", json={"keypair": {"name": name}}), 409, "conflictingRequest") == (
            f"Key pair '{name}' already exists.")
        assert fault(c.post("/os-keypairs", json={"keypair": {"name": "a*b"}}), 400, "badRequest") == (
            "Keypair data is invalid: Keypair name contains unsafe characters")
        assert "failed to generate fingerprint" in fault(c.post("/os-keypairs", json={"keypair": {
            "name": unique(), "public_key": "ssh-rsa foo"}}), 400, "badRequest")
        assert "X509" in fault(c.post("/os-keypairs", json={"keypair": {
            "name": unique(), "type": "x509", "public_key": RSA}}), 400, "badRequest")
        for body in ({}, {"keypair": {}}, {"keypair": {"name": ""}}, {"keypair": {"name": " x"}},
                     {"keypair": {"name": "x", "type": "pgp"}}, {"keypair": {"name": "x", "extra": 1}},
                     {"keypair": {"name": "x" * 256}}):
            fault(c.post("/os-keypairs", json=body), 400, "badRequest")
        c.delete(f"/os-keypairs/{name}")


def test_v210_admin_acts_for_other_users(cloud: Cloud) -> None:
    name = unique()
    with cloud.client(token="admin:admin", version="2.10") as admin:
        kp = check(schema_22.create_keypair, admin.post("/os-keypairs", json={"keypair": {
            "name": name, "user_id": "frank"}}))["keypair"]
        assert kp["user_id"] == "frank"
        listed = admin.get("/os-keypairs", params={"user_id": "frank"}).json()["keypairs"]
        assert [k["keypair"]["name"] for k in listed] == [name]
        assert name not in {k["keypair"]["name"] for k in admin.get("/os-keypairs").json()["keypairs"]}
        assert check(schema_22.get_keypair, admin.get(f"/os-keypairs/{name}", params={"user_id": "frank"}))[
            "keypair"]["user_id"] == "frank"
    with cloud.client(token="frank:proj-f", version="2.10") as frank:
        assert frank.get(f"/os-keypairs/{name}").status_code == 200
        assert fault(frank.get("/os-keypairs", params={"user_id": "erin"}), 403, "forbidden") == (
            "Policy doesn't allow os_compute_api:os-keypairs:index to be performed.")
        fault(frank.post("/os-keypairs", json={"keypair": {"name": unique(), "user_id": "erin"}}), 403, "forbidden")
        fault(frank.delete(f"/os-keypairs/{name}", params={"user_id": "erin"}), 403, "forbidden")
    with cloud.client(token="admin:admin", version="2.9") as old:
        fault(old.post("/os-keypairs", json={"keypair": {"name": unique(), "user_id": "frank"}}), 400, "badRequest")
        # Before 2.10 the query's user_id is ignored: the admin's own key pairs.
        assert name not in {k["keypair"]["name"] for k in old.get("/os-keypairs", params={"user_id": "frank"})
                            .json()["keypairs"]}
    with cloud.client(token="admin:admin", version="2.10") as admin:
        check(schema_22.delete_keypair, admin.delete(f"/os-keypairs/{name}", params={"user_id": "frank"}))


def test_v210_user_id_is_novas(cloud: Cloud) -> None:
    """A user id no request could name again (NUL, CR/LF, more than 255 characters) makes no key pair."""
    db = sqlite3.connect(cloud.state_path / "stratus.sqlite")
    before = db.execute("select count(*) from key_pairs").fetchone()[0]
    with cloud.client(token="admin:admin", version="2.10") as admin:
        for user_id in ("a\u0000b", "a\r\nb", "u" * 256, "", "é"):
            message = fault(admin.post("/os-keypairs", json={"keypair": {"name": unique(), "user_id": user_id}}),
                            400, "badRequest")
            assert message.startswith("Invalid input for field/attribute user_id. Value: "), message
    assert db.execute("select count(*) from key_pairs").fetchone()[0] == before


def test_x509_for_a_long_multibyte_user_id(cloud: Cloud) -> None:
    """A token's user id of 64 two-byte characters (128 bytes) passes X.509's CN bound: the CN is cut to fit."""
    user = "é" * 64
    token = f"{user}:proj-x509".encode("latin-1")  # noauth2 reads the header as latin-1: 64 times 'é'
    with httpx.Client(base_url=cloud.compute_url, headers={"X-Auth-Token": token,
                                                           "OpenStack-API-Version": "compute 2.2"}) as c:
        kp = check(schema_22.create_keypair, c.post("/os-keypairs", json={"keypair": {
            "name": unique(), "type": "x509"}}))["keypair"]
        assert kp["type"] == "x509" and kp["user_id"] == user and kp["private_key"]
        assert c.delete(f"/os-keypairs/{kp['name']}").status_code == 204


def test_v235_pagination(cloud: Cloud) -> None:
    user = f"pager-{uuid.uuid4().hex[:6]}"
    with cloud.client(token=f"{user}:proj-p", version="2.35") as c:
        names = sorted(unique("p") for _ in range(5))
        for name in names:
            assert c.post("/os-keypairs", json={"keypair": {"name": name, "public_key": RSA}}).status_code == 201
        page = c.get("/os-keypairs", params={"limit": 2}).json()
        assert [k["keypair"]["name"] for k in page["keypairs"]] == names[:2]
        link = page["keypairs_links"][0]
        assert link["rel"] == "next" and f"marker={names[1]}" in link["href"] and "limit=2" in link["href"]
        rest = c.get("/os-keypairs", params={"marker": names[1]}).json()
        assert [k["keypair"]["name"] for k in rest["keypairs"]] == names[2:]
        assert "keypairs_links" not in rest
        assert c.get("/os-keypairs", params={"limit": 0}).json()["keypairs"] == []
        assert fault(c.get("/os-keypairs", params={"marker": "nope"}), 400, "badRequest") == (
            "Marker nope could not be found.")
        fault(c.get("/os-keypairs", params={"limit": "x"}), 400, "badRequest")
    with cloud.client(token=f"{user}:proj-p", version="2.34") as old:
        everything = old.get("/os-keypairs", params={"limit": 2}).json()
        assert len(everything["keypairs"]) == 5 and "keypairs_links" not in everything


def test_keypair_quota(cloud: Cloud) -> None:
    project = f"proj-q-{uuid.uuid4().hex[:6]}"
    with sqlite3.connect(cloud.state_path / "stratus.sqlite") as db:
        db.execute("INSERT INTO quotas (project_id, user_id, resource, hard_limit, created_at) "
                   "VALUES (?, '', 'key_pairs', 1, ?)", (project, datetime.datetime.now().isoformat(" ")))
    with cloud.client(token=f"quser:{project}", version="2.47") as c:
        assert c.post("/os-keypairs", json={"keypair": {"name": unique(), "public_key": RSA}}).status_code == 201
        assert fault(c.post("/os-keypairs", json={"keypair": {"name": unique()}}), 403, "forbidden") == (
            "Quota exceeded, too many key pairs.")


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # openstacksdk's own deprecations
def test_openstacksdk_keypairs(cloud: Cloud) -> None:
    conn = cloud.sdk("gina:proj-sdk")
    name = unique()
    kp = conn.compute.create_keypair(name=name)
    assert kp.private_key and kp.fingerprint and kp.public_key.startswith("ssh-rsa ")
    assert name in {k.name for k in conn.compute.keypairs()}
    assert conn.compute.get_keypair(name).fingerprint == kp.fingerprint
    conn.compute.delete_keypair(name)
    assert name not in {k.name for k in conn.compute.keypairs()}
