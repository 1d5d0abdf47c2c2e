"""The embedded identity service over HTTP, as Keystone's API reference describes it: tokens (issue, validate,
check, revoke, expiry), the catalog, application credentials, errors, and who may do what; and the compute and
image APIs accepting (and refusing) its tokens."""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Cloud


def login(cloud: Cloud, username: str, password: str, project: str | None = None,
          nocatalog: bool = False) -> httpx.Response:
    auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": {
        "name": username, "domain": {"name": "Default"}, "password": password}}}}
    if project:
        auth["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
    return httpx.post(cloud.identity_url + "/auth/tokens" + ("?nocatalog" if nocatalog else ""),
                      json={"auth": auth}, timeout=30)


def token_of(cloud: Cloud, username: str, password: str, project: str | None = None) -> str:
    resp = login(cloud, username, password, project)
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"]


def identity(cloud: Cloud, token: str) -> httpx.Client:
    return httpx.Client(base_url=cloud.identity_url, headers={"X-Auth-Token": token}, timeout=30)


@pytest.fixture(scope="module")
def admin(embedded_cloud: Cloud) -> httpx.Client:
    return identity(embedded_cloud, token_of(embedded_cloud, "admin", embedded_cloud.admin_password, "admin"))


@pytest.fixture(scope="module")
def member(embedded_cloud: Cloud, admin: httpx.Client) -> dict[str, Any]:
    """A project and a user with the member role on it (the way tempest's dynamic credentials make them)."""
    name = f"member-{uuid.uuid4().hex[:6]}"
    project = admin.post("/projects", json={"project": {"name": name, "domain_id": "default"}}).json()["project"]
    user = admin.post("/users", json={"user": {"name": name, "password": "pw-" + name, "domain_id": "default",
                                               "email": f"{name}@example.org"}}).json()["user"]
    role = admin.get("/roles", params={"name": "member"}).json()["roles"][0]
    assert admin.put(f"/projects/{project['id']}/users/{user['id']}/roles/{role['id']}").status_code == 204
    return {"project": project, "user": user, "password": "pw-" + name,
            "token": token_of(embedded_cloud, name, "pw-" + name, name)}


def test_token_body_and_catalog(embedded_cloud: Cloud) -> None:
    before = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    resp = login(embedded_cloud, "admin", embedded_cloud.admin_password, "admin")
    assert resp.status_code == 201
    assert resp.headers["content-type"] == "application/json"
    token = resp.json()["token"]
    assert token["methods"] == ["password"]
    assert token["user"]["name"] == "admin" and token["user"]["domain"] == {"id": "default", "name": "Default"}
    assert token["project"]["name"] == "admin" and token["project"]["domain"]["id"] == "default"
    assert {r["name"] for r in token["roles"]} == {"admin", "manager", "member", "reader"}
    assert len(token["audit_ids"]) == 1 and len(token["audit_ids"][0]) == 22
    expires = datetime.datetime.strptime(token["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert datetime.timedelta(seconds=3590) < expires - before <= datetime.timedelta(seconds=3601)
    datetime.datetime.strptime(token["issued_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    urls = {(s["type"], e["interface"]): e["url"] for s in token["catalog"] for e in s["endpoints"]}
    assert urls[("compute", "public")] == embedded_cloud.compute_url
    assert urls[("image", "internal")] == embedded_cloud.image_url
    assert urls[("identity", "admin")] == embedded_cloud.identity_url
    assert {e["region_id"] for s in token["catalog"] for e in s["endpoints"]} == {"RegionOne"}
    assert "catalog" not in login(embedded_cloud, "admin", embedded_cloud.admin_password, "admin",
                                  nocatalog=True).json()["token"]


def test_validate_check_and_revoke(embedded_cloud: Cloud, admin: httpx.Client, member: dict[str, Any]) -> None:
    subject = token_of(embedded_cloud, member["user"]["name"], member["password"], member["project"]["name"])
    shown = admin.get("/auth/tokens", headers={"X-Subject-Token": subject})
    assert shown.status_code == 200 and shown.headers["X-Subject-Token"] == subject
    assert shown.json()["token"]["user"]["id"] == member["user"]["id"]
    assert admin.head("/auth/tokens", headers={"X-Subject-Token": subject}).status_code == 200
    own = identity(embedded_cloud, subject)  # users may validate their own tokens
    assert own.get("/auth/tokens", headers={"X-Subject-Token": subject}).status_code == 200
    admin_token = admin.headers["X-Auth-Token"]
    assert own.get("/auth/tokens", headers={"X-Subject-Token": admin_token}).status_code == 403
    compute = embedded_cloud.client(token=subject)
    assert compute.get("/servers").status_code == 200
    assert own.delete("/auth/tokens", headers={"X-Subject-Token": subject}).status_code == 204
    # revoked: at once in this process, for identity, compute and image alike
    assert admin.head("/auth/tokens", headers={"X-Subject-Token": subject}).status_code == 404
    assert admin.get("/auth/tokens", headers={"X-Subject-Token": subject}).status_code == 404
    assert admin.delete("/auth/tokens", headers={"X-Subject-Token": subject}).status_code == 404
    assert compute.get("/servers").status_code == 401
    assert embedded_cloud.image_client(token=subject).get("/v2/images").status_code == 401


def test_wrong_password_and_bad_tokens_are_401_in_each_apis_form(embedded_cloud: Cloud) -> None:
    resp = login(embedded_cloud, "admin", "not-the-password", "admin")
    assert resp.status_code == 401
    assert resp.json() == {"error": {"code": 401, "title": "Unauthorized",
                                     "message": "The request you have made requires authentication."}}
    assert resp.headers["WWW-Authenticate"].startswith('Keystone uri="http://127.0.0.1:')
    assert "X-Subject-Token" not in resp.headers
    assert login(embedded_cloud, "nobody", "x").status_code == 401
    assert httpx.get(embedded_cloud.identity_url + "/projects").status_code == 401
    nova = embedded_cloud.client(token="admin:admin").get("/servers")  # noauth2 tokens mean nothing here
    assert nova.status_code == 401 and nova.json()["unauthorized"]["code"] == 401
    assert nova.headers["WWW-Authenticate"].startswith("Keystone uri=")
    glance = embedded_cloud.image_client(token="bogus").get("/v2/images", headers={"Accept": "application/json"})
    assert glance.status_code == 401 and glance.json()["code"] == "401 Unauthorized"
    assert httpx.get(embedded_cloud.compute_url + "/").status_code == 200  # discovery needs no token


def test_unscoped_tokens_list_projects_but_do_not_reach_compute(embedded_cloud: Cloud,
                                                                 member: dict[str, Any]) -> None:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "id": member["user"]["id"], "password": member["password"]}}}, "scope": "unscoped"}}
    resp = httpx.post(embedded_cloud.identity_url + "/auth/tokens", json=body)
    assert resp.status_code == 201 and "project" not in resp.json()["token"]
    unscoped = identity(embedded_cloud, resp.headers["X-Subject-Token"])
    assert [p["id"] for p in unscoped.get("/auth/projects").json()["projects"]] == [member["project"]["id"]]
    assert unscoped.get("/auth/catalog").status_code == 403
    assert embedded_cloud.client(token=resp.headers["X-Subject-Token"]).get("/servers").status_code == 403
    scoped = identity(embedded_cloud, member["token"]).get("/auth/catalog").json()["catalog"]
    assert {s["type"] for s in scoped} == {"identity", "compute", "image", "network"}


def test_application_credentials_and_expired_tokens(embedded_cloud: Cloud, member: dict[str, Any]) -> None:
    own = identity(embedded_cloud, member["token"])
    path = f"/users/{member['user']['id']}/application_credentials"
    expires = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S")
    created = own.post(path, json={"application_credential": {"name": "short", "expires_at": expires}})
    assert created.status_code == 201, created.text
    cred = created.json()["application_credential"]
    assert cred["secret"] and cred["project_id"] == member["project"]["id"] and not cred["unrestricted"]
    assert {r["name"] for r in cred["roles"]} == {"member", "reader"}
    listed = own.get(path).json()["application_credentials"]
    assert [c["name"] for c in listed] == ["short"] and "secret" not in listed[0]
    assert own.post(path, json={"application_credential": {"name": "short"}}).status_code == 409
    body = {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": {"id": cred["id"], "secret": cred["secret"]}}}}
    resp = httpx.post(embedded_cloud.identity_url + "/auth/tokens", json=body)
    assert resp.status_code == 201, resp.text
    token = resp.json()["token"]
    assert token["methods"] == ["application_credential"]
    assert token["application_credential"] == {"id": cred["id"], "name": "short", "restricted": True}
    assert token["project"]["id"] == member["project"]["id"]
    assert token["expires_at"].startswith(expires)  # capped by the credential's expiry
    compute = embedded_cloud.client(token=resp.headers["X-Subject-Token"])
    assert compute.get("/servers").status_code == 200
    restricted = identity(embedded_cloud, resp.headers["X-Subject-Token"])
    assert restricted.post(path, json={"application_credential": {"name": "more"}}).status_code == 403
    time.sleep(max(0.0, (datetime.datetime.strptime(token["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
                         - datetime.datetime.now(datetime.UTC).replace(tzinfo=None)).total_seconds()) + 0.5)
    assert compute.get("/servers").status_code == 401  # expired, though cached as valid moments ago
    assert httpx.post(embedded_cloud.identity_url + "/auth/tokens", json=body).status_code == 401
    assert own.delete(f"{path}/{cred['id']}").status_code == 204
    assert own.get(f"{path}/{cred['id']}").status_code == 404


def test_non_admins_get_403_on_admin_crud(embedded_cloud: Cloud, member: dict[str, Any]) -> None:
    own = identity(embedded_cloud, member["token"])
    denied = own.post("/projects", json={"project": {"name": "mine"}})
    assert denied.status_code == 403
    assert denied.json() == {"error": {"code": 403, "title": "Forbidden", "message":
                                       "You are not authorized to perform the requested action: "
                                       "identity:create_project."}}
    for method, path in (("GET", "/users"), ("GET", "/projects"), ("GET", "/roles"), ("GET", "/role_assignments"),
                         ("POST", "/users"), ("DELETE", f"/projects/{member['project']['id']}"),
                         ("PUT", f"/projects/{member['project']['id']}/users/{member['user']['id']}/roles/x"),
                         ("GET", "/services"), ("GET", "/endpoints"), ("GET", "/domains")):
        assert own.request(method, path, json={} if method in ("POST", "PUT") else None).status_code == 403, path
    # what is theirs they may read
    assert own.get(f"/users/{member['user']['id']}").status_code == 200
    assert own.get(f"/projects/{member['project']['id']}").status_code == 200
    assert own.get(f"/users/{member['user']['id']}/projects").json()["projects"][0]["id"] == member["project"]["id"]
    assert own.get("/regions").json()["regions"][0]["id"] == "RegionOne"
    # and the compute API's admin-only parts refuse them too
    assert embedded_cloud.client(token=member["token"]).get("/os-hypervisors").status_code == 403


def test_admin_crud_and_role_assignments(embedded_cloud: Cloud, admin: httpx.Client, member: dict[str, Any]
                                         ) -> None:
    project_id, user_id = member["project"]["id"], member["user"]["id"]
    assert admin.get("/projects", params={"name": member["project"]["name"]}).json()["projects"][0]["id"] == project_id
    assert admin.get("/users", params={"domain_id": "default", "name": member["user"]["name"]}
                     ).json()["users"][0]["email"] == member["user"]["email"]
    duplicate = admin.post("/projects", json={"project": {"name": member["project"]["name"]}})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["title"] == "Conflict"
    missing = admin.get("/projects/" + "0" * 32)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == f"Could not find project: {'0' * 32}."
    assert admin.post("/projects", json={"project": {}}).status_code == 400
    reader = admin.get("/roles", params={"name": "reader"}).json()["roles"][0]
    grant = f"/projects/{project_id}/users/{user_id}/roles/{reader['id']}"
    assert admin.head(grant).status_code == 404
    assert admin.put(grant).status_code == 204 and admin.head(grant).status_code == 204
    direct = admin.get("/role_assignments", params={"user.id": user_id, "scope.project.id": project_id,
                                                    "include_names": 1}).json()["role_assignments"]
    assert sorted(a["role"]["name"] for a in direct) == ["member", "reader"]
    assert direct[0]["user"]["name"] == member["user"]["name"]
    assert direct[0]["scope"]["project"]["domain"]["name"] == "Default"
    assert admin.delete(grant).status_code == 204 and admin.delete(grant).status_code == 404
    effective = admin.get("/role_assignments", params={"user.id": user_id, "effective": ""}).json()
    assert sorted(a["role"]["id"] for a in effective["role_assignments"]) == sorted(
        [admin.get("/roles", params={"name": "member"}).json()["roles"][0]["id"], reader["id"]])
    renamed = admin.patch(f"/users/{user_id}", json={"user": {"description": "tester"}}).json()["user"]
    assert renamed["description"] == "tester" and renamed["email"] == member["user"]["email"]
    domains = admin.get("/domains").json()["domains"]
    assert [d["id"] for d in domains] == ["default"]
