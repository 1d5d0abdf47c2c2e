"""The APIs Nova removed answer 410 Gone, as Nova's router does, at every version and for every caller; the
version documents list v2.0 first, as Nova's."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Cloud
from tests.functional.helpers import fault

GONE = "This resource is no longer available.  No forwarding address is given."
SERVER = str(uuid.uuid4())


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/os-fping"), ("GET", "/os-fping/x"), ("GET", "/os-cells"), ("POST", "/os-cells"),
    ("GET", "/os-cells/detail"), ("PUT", "/os-cells/c1"), ("GET", "/os-cells/c1/capacities"),
    ("POST", "/os-certificates"), ("GET", "/os-certificates/root"), ("GET", "/os-cloudpipe"),
    ("PUT", "/os-cloudpipe/configure-project"), ("GET", "/os-fixed-ips/10.0.0.1"), ("GET", "/os-floating-ips-bulk"),
    ("PUT", "/os-floating-ips-bulk/delete"), ("GET", "/os-floating-ip-dns"), ("DELETE", "/os-floating-ip-dns/d"),
    ("GET", "/os-floating-ip-dns/d/entries/e"), ("POST", "/os-networks"), ("POST", "/os-networks/add"),
    ("DELETE", "/os-networks/n1"), ("POST", "/os-tenant-networks"), ("DELETE", "/os-tenant-networks/n1"),
    ("GET", "/os-security-group-default-rules"), ("DELETE", "/os-security-group-default-rules/1"),
    ("GET", "/os-agents"), ("PUT", "/os-agents/1"), ("GET", f"/servers/{SERVER}/consoles"),
    ("DELETE", f"/servers/{SERVER}/consoles/1"), ("GET", f"/servers/{SERVER}/os-virtual-interfaces"),
])
@pytest.mark.parametrize("version", ["2.1", "2.100"])
def test_removed_routes_are_gone(cloud: Cloud, method: str, path: str, version: str) -> None:
    with cloud.client(token=f"u:{uuid.uuid4().hex[:8]}", version=version) as c:
        body = {"x": {}} if method in ("POST", "PUT") else None
        assert fault(c.request(method, path, json=body), 410, "computeFault") == GONE


def test_removed_actions_are_gone(cloud: Cloud) -> None:
    with cloud.client() as admin:
        for path, action in (("/os-fixed-ips/10.0.0.1/action", "reserve"), ("/os-networks/n1/action", "disassociate"),
                             ("/os-networks/n1/action", "associate_host")):
            assert fault(admin.post(path, json={action: None}), 410, "computeFault") == GONE
        assert fault(admin.post("/os-networks/n1/action", json={"resize": None}), 400, "badRequest") == (
            "There is no such action: resize")
        # a method Nova never mapped there is 405, not 410
        assert admin.get("/os-cells/sync_instances").status_code == 405
        # the routes Nova still serves as proxies are not gone
        assert admin.get("/os-tenant-networks/n1").status_code == 404


def test_paths_match_exactly(cloud: Cloud) -> None:
    """A trailing slash is another path, as in Nova's router: an empty id is not found, never the collection."""
    with cloud.client() as admin:
        fault(admin.get("/os-simple-tenant-usage/"), 404, "itemNotFound")
        fault(admin.delete("/images/"), 404, "itemNotFound")
        fault(admin.get("/servers/"), 404, "itemNotFound")
        assert admin.get("/servers").status_code == 200
        assert admin.get("/").status_code == 200  # the v2.1 version document keeps its slash
