"""Two projects on one cloud: every read and write project B's member can try on project A's objects, one test
each, gets exactly Nova's answer, and nothing of A's changes.

- Another project's server, server group, key pair (another user's) or private flavor is not found: the same
  status and message as an id that names nothing (a 404, or a boot's 400), never a 403 that would say it exists.
- An admin-only API (services, hypervisors, aggregates, zones' detail, flavor writes and access, quota writes,
  another project's quotas and limits, another user's key pairs, every project's servers) is Nova's policy 403.

A's state is read as the admin sees it (server, metadata, tags, actions, group, key pair, flavor and its access
and extra specs, quotas, limits) before the matrix and compared after each cell.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import Cloud
from tests.functional.helpers import boot, upload_image, wait_for_status

A, B = "alice:iso-a", "bob:iso-b"
VERSION = "2.64"
META_KEY, TAG, SPEC = "owner", "prod", "iso:spec"


@dataclass
class World:
    a: httpx.Client
    b: httpx.Client
    admin: httpx.Client
    ids: dict[str, str]
    baseline: dict[str, Any] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        """Project A's objects as the admin reads them."""
        ad, i = self.admin, self.ids
        server = ad.get(f"/servers/{i['server']}").json()["server"]
        server.pop("updated", None)
        return {
            "server": server,
            "metadata": ad.get(f"/servers/{i['server']}/metadata").json(),
            "tags": ad.get(f"/servers/{i['server']}/tags").json(),
            "actions": ad.get(f"/servers/{i['server']}/os-instance-actions").json(),
            "group": ad.get(f"/os-server-groups/{i['group']}").json(),
            "keypairs": ad.get("/os-keypairs", params={"user_id": "alice"}).json(),
            "flavor": ad.get(f"/flavors/{i['flavor']}").json(),
            "access": ad.get(f"/flavors/{i['flavor']}/os-flavor-access").json(),
            "specs": ad.get(f"/flavors/{i['flavor']}/os-extra_specs").json(),
            "quotas": ad.get("/os-quota-sets/iso-a/detail").json(),
            "limits": self.a.get("/limits").json(),
            "aggregate": ad.get(f"/os-aggregates/{i['aggregate']}").json(),
            "services": [(s["id"], s["status"], s["disabled_reason"]) for s in
                         ad.get("/os-services").json()["services"]],
            "images": len(httpx.get(self.ids["image_url"] + "/v2/images",
                                    headers={"X-Auth-Token": "admin:admin"}).json()["images"]),
        }


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> Iterator[World]:
    a, b, admin = (cloud.client(t, version=VERSION) for t in (A, B, "admin:admin"))
    with cloud.image_client() as image:
        image_id = upload_image(image)["id"]
    created = boot(a, image_id, name="a-vm", networks="none", metadata={META_KEY: "alice"}, tags=[TAG])
    assert created.status_code == 202, created.text
    server_id = created.json()["server"]["id"]
    server = wait_for_status(a, server_id, {"ACTIVE"})
    group = a.post("/os-server-groups", json={"server_group": {"name": "a-group", "policy": "affinity"}})
    keypair = a.post("/os-keypairs", json={"keypair": {"name": "a-key"}})
    flavor = admin.post("/flavors", json={"flavor": {"name": f"a-private-{uuid.uuid4().hex[:6]}", "ram": 64,
                                                     "vcpus": 1, "disk": 1, "os-flavor-access:is_public": False}})
    flavor_id = flavor.json()["flavor"]["id"]
    admin.post(f"/flavors/{flavor_id}/action", json={"addTenantAccess": {"tenant": "iso-a"}})
    admin.post(f"/flavors/{flavor_id}/os-extra_specs", json={"extra_specs": {SPEC: "1"}})
    admin.put("/os-quota-sets/iso-a", json={"quota_set": {"instances": 7}})
    aggregate = admin.post("/os-aggregates", json={"aggregate": {"name": f"iso-agg-{uuid.uuid4().hex[:6]}"}})
    host = admin.get(f"/servers/{server_id}").json()["server"]["OS-EXT-SRV-ATTR:host"]
    service = next(s for s in admin.get("/os-services").json()["services"] if s["host"] == host)
    hypervisor = next(h for h in admin.get("/os-hypervisors").json()["hypervisors"]
                      if h["hypervisor_hostname"] == host)
    request_id = a.get(f"/servers/{server_id}/os-instance-actions").json()["instanceActions"][0]["request_id"]
    b_server = boot(b, image_id, name="b-vm", networks="none").json()["server"]["id"]
    wait_for_status(b, b_server, {"ACTIVE"})
    ids = {"server": server["id"], "group": group.json()["server_group"]["id"], "keypair": keypair.json()[
        "keypair"]["name"], "flavor": flavor_id, "aggregate": str(aggregate.json()["aggregate"]["id"]),
        "service": service["id"], "hypervisor": hypervisor["id"], "host": host, "request": request_id,
        "image": image_id, "b_server": b_server, "image_url": cloud.image_url}
    w = World(a, b, admin, ids)
    w.baseline = w.state()
    try:
        yield w
    finally:
        for c in (a, b, admin):
            c.close()


@dataclass(frozen=True)
class Cell:
    """One request of B's: method, path and body with ``{server}``-style names of A's objects; the status Nova
    gives; ``twin``: the kind of id whose nonexistent twin must get the very same answer."""

    name: str
    method: str
    path: str
    status: int
    body: Any = None
    twin: str | None = None
    params: dict[str, str] | None = None


def _server_cells() -> list[Cell]:
    s = "/servers/{server}"
    actions = {"lock": None, "unlock": None, "os-stop": None, "os-start": None, "reboot": {"type": "HARD"},
               "pause": None, "unpause": None, "suspend": None, "resume": None,
               "os-getConsoleOutput": {"length": 5}, "createImage": {"name": "stolen"}}
    cells = [
        Cell("server show", "GET", s, 404, twin="server"),
        Cell("server update", "PUT", s, 404, {"server": {"name": "mine"}}, twin="server"),
        Cell("server delete", "DELETE", s, 404, twin="server"),
        *(Cell(f"action {n}", "POST", s + "/action", 404, {n: v}, twin="server") for n, v in actions.items()),
        Cell("metadata index", "GET", s + "/metadata", 404, twin="server"),
        Cell("metadata create", "POST", s + "/metadata", 404, {"metadata": {"k": "v"}}, twin="server"),
        Cell("metadata replace", "PUT", s + "/metadata", 404, {"metadata": {}}, twin="server"),
        Cell("metadata show", "GET", s + f"/metadata/{META_KEY}", 404, twin="server"),
        Cell("metadata update", "PUT", s + f"/metadata/{META_KEY}", 404, {"meta": {META_KEY: "bob"}},
             twin="server"),
        Cell("metadata delete", "DELETE", s + f"/metadata/{META_KEY}", 404, twin="server"),
        Cell("tags index", "GET", s + "/tags", 404, twin="server"),
        Cell("tags replace", "PUT", s + "/tags", 404, {"tags": ["bob"]}, twin="server"),
        Cell("tags delete all", "DELETE", s + "/tags", 404, twin="server"),
        Cell("tag check", "GET", s + f"/tags/{TAG}", 404, twin="server"),
        Cell("tag add", "PUT", s + "/tags/bob", 404, twin="server"),
        Cell("tag delete", "DELETE", s + f"/tags/{TAG}", 404, twin="server"),
        Cell("instance actions", "GET", s + "/os-instance-actions", 404, twin="server"),
        Cell("instance action", "GET", s + "/os-instance-actions/{request}", 404, twin="server"),
        # A's request id on B's own server: not an action of B's server
        Cell("instance action by A's request id", "GET", "/servers/{b_server}/os-instance-actions/{request}",
             404, twin="request"),
        Cell("servers of every project", "GET", "/servers", 403, params={"all_tenants": "1"}),
        Cell("servers detail of every project", "GET", "/servers/detail", 403, params={"all_tenants": "1"}),
        # booting with A's objects: as if they did not exist
        Cell("boot in A's server group", "POST", "/servers", 400, {
            "server": {"name": "b2", "imageRef": "{image}", "flavorRef": "1", "networks": "none"},
            "os:scheduler_hints": {"group": "{group}"}}, twin="group"),
        Cell("boot with A's key pair", "POST", "/servers", 400, {
            "server": {"name": "b2", "imageRef": "{image}", "flavorRef": "1", "networks": "none",
                       "key_name": "{keypair}"}}, twin="keypair"),
        Cell("boot with A's private flavor", "POST", "/servers", 400, {
            "server": {"name": "b2", "imageRef": "{image}", "flavorRef": "{flavor}", "networks": "none"}},
             twin="flavor"),
        Cell("boot next to A's server", "POST", "/servers", 202, {
            "server": {"name": "b-near", "imageRef": "{image}", "flavorRef": "1", "networks": "none"},
            "os:scheduler_hints": {"same_host": "{server}"}}),
    ]
    return cells


def _other_cells() -> list[Cell]:
    f = "/flavors/{flavor}"
    return [
        Cell("server group show", "GET", "/os-server-groups/{group}", 404, twin="group"),
        Cell("server group delete", "DELETE", "/os-server-groups/{group}", 404, twin="group"),
        Cell("key pair show", "GET", "/os-keypairs/{keypair}", 404, twin="keypair"),
        Cell("key pair delete", "DELETE", "/os-keypairs/{keypair}", 404, twin="keypair"),
        Cell("another user's key pairs", "GET", "/os-keypairs", 403, params={"user_id": "alice"}),
        Cell("another user's key pair", "GET", "/os-keypairs/{keypair}", 403, params={"user_id": "alice"}),
        Cell("another user's key pair delete", "DELETE", "/os-keypairs/{keypair}", 403,
             params={"user_id": "alice"}),
        Cell("key pair for another user", "POST", "/os-keypairs", 403,
             {"keypair": {"name": "planted", "user_id": "alice"}}),
        Cell("private flavor show", "GET", f, 404, twin="flavor"),
        Cell("private flavor extra specs", "GET", f + "/os-extra_specs", 404, twin="flavor"),
        Cell("private flavor extra spec", "GET", f + f"/os-extra_specs/{SPEC}", 404, twin="flavor"),
        Cell("flavor access list", "GET", f + "/os-flavor-access", 403),
        Cell("flavor access add", "POST", f + "/action", 403, {"addTenantAccess": {"tenant": "iso-b"}}),
        Cell("flavor access remove", "POST", f + "/action", 403, {"removeTenantAccess": {"tenant": "iso-a"}}),
        Cell("flavor extra spec create", "POST", f + "/os-extra_specs", 403, {"extra_specs": {"x": "y"}}),
        Cell("flavor extra spec update", "PUT", f + f"/os-extra_specs/{SPEC}", 403, {SPEC: "2"}),
        Cell("flavor extra spec delete", "DELETE", f + f"/os-extra_specs/{SPEC}", 403),
        Cell("flavor update", "PUT", f, 403, {"flavor": {"description": "bob's"}}),
        Cell("flavor delete", "DELETE", f, 403),
        Cell("flavor create", "POST", "/flavors", 403, {"flavor": {"name": "b", "ram": 1, "vcpus": 1, "disk": 1}}),
        Cell("A's quotas", "GET", "/os-quota-sets/iso-a", 403),
        Cell("A's quota detail", "GET", "/os-quota-sets/iso-a/detail", 403),
        Cell("A's quota update", "PUT", "/os-quota-sets/iso-a", 403, {"quota_set": {"instances": 1}}),
        Cell("A's quota revert", "DELETE", "/os-quota-sets/iso-a", 403),
        Cell("own quota update", "PUT", "/os-quota-sets/iso-b", 403, {"quota_set": {"instances": 100}}),
        Cell("quota class show", "GET", "/os-quota-class-sets/default", 403),
        Cell("quota class update", "PUT", "/os-quota-class-sets/default", 403,
             {"quota_class_set": {"instances": 1}}),
        Cell("A's limits", "GET", "/limits", 403, params={"tenant_id": "iso-a"}),
        Cell("services", "GET", "/os-services", 403),
        Cell("service disable", "PUT", "/os-services/{service}", 403, {"status": "disabled"}),
        Cell("service delete", "DELETE", "/os-services/{service}", 403),
        Cell("hypervisors", "GET", "/os-hypervisors", 403),
        Cell("hypervisors detail", "GET", "/os-hypervisors/detail", 403),
        Cell("hypervisor statistics", "GET", "/os-hypervisors/statistics", 403),
        Cell("hypervisor show", "GET", "/os-hypervisors/{hypervisor}", 403),
        Cell("hypervisor servers", "GET", "/os-hypervisors", 403,
             params={"hypervisor_hostname_pattern": "{host}", "with_servers": "true"}),
        Cell("aggregates", "GET", "/os-aggregates", 403),
        Cell("aggregate create", "POST", "/os-aggregates", 403, {"aggregate": {"name": "bob-agg"}}),
        Cell("aggregate show", "GET", "/os-aggregates/{aggregate}", 403),
        Cell("aggregate update", "PUT", "/os-aggregates/{aggregate}", 403, {"aggregate": {"name": "bob"}}),
        Cell("aggregate delete", "DELETE", "/os-aggregates/{aggregate}", 403),
        Cell("aggregate add host", "POST", "/os-aggregates/{aggregate}/action", 403,
             {"add_host": {"host": "{host}"}}),
        Cell("aggregate metadata", "POST", "/os-aggregates/{aggregate}/action", 403,
             {"set_metadata": {"metadata": {"a": "b"}}}),
        Cell("availability zones detail", "GET", "/os-availability-zone/detail", 403),
    ]


CELLS = _server_cells() + _other_cells()
#: older microversions of the cells whose routes are versioned (uptime and search until 2.52 / 2.87)
OLD_CELLS = [
    Cell("hypervisor uptime", "GET", "/os-hypervisors/{hypervisor}/uptime", 403),
    Cell("hypervisor search", "GET", "/os-hypervisors/{host}/search", 403),
    Cell("hypervisor servers (2.52)", "GET", "/os-hypervisors/{host}/servers", 403),
    Cell("service disable (2.52)", "PUT", "/os-services/disable", 403, {"host": "{host}", "binary": "nova-compute"}),
]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, real in ids.items():
            value = value.replace("{" + name + "}", str(real))
        return value
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _send(client: httpx.Client, cell: Cell, ids: dict[str, str], version: str | None = None) -> httpx.Response:
    headers = {"OpenStack-API-Version": f"compute {version}"} if version else {}
    return client.request(cell.method, _fill(cell.path, ids), json=_fill(cell.body, ids),
                          params=_fill(cell.params, ids), headers=headers)


def _fake(kind: str) -> str:
    return {"keypair": f"no-key-{uuid.uuid4().hex[:6]}", "flavor": f"no-flavor-{uuid.uuid4().hex[:6]}",
            "request": f"req-{uuid.uuid4()}"}.get(kind, str(uuid.uuid4()))


def _check(world: World, cell: Cell, resp: httpx.Response) -> None:
    assert resp.status_code == cell.status, resp.text
    if cell.status >= 400:
        name = {400: "badRequest", 403: "forbidden", 404: "itemNotFound"}[cell.status]
        body = resp.json()
        assert list(body) == [name] and body[name]["code"] == cell.status, body
        if cell.status == 403:
            assert body[name]["message"].startswith("Policy doesn't allow os_compute_api:"), body
    if cell.twin:
        real = world.ids[cell.twin]
        fake = _fake(cell.twin)
        twin = _send(world.b, cell, {**world.ids, cell.twin: fake})
        assert twin.status_code == resp.status_code, twin.text
        assert resp.text.replace(str(real), "ID") == twin.text.replace(fake, "ID"), (resp.text, twin.text)


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.name)
def test_b_on_a(world: World, cell: Cell) -> None:
    resp = _send(world.b, cell, world.ids)
    _check(world, cell, resp)
    if resp.status_code == 202 and cell.method == "POST" and cell.path == "/servers":
        b_id = resp.json()["server"]["id"]
        wait_for_status(world.b, b_id, {"ACTIVE", "ERROR"})
        world.b.delete(f"/servers/{b_id}")
    assert world.state() == world.baseline


@pytest.mark.parametrize("cell", OLD_CELLS, ids=lambda c: c.name)
def test_b_on_admin_apis_of_older_versions(world: World, cell: Cell) -> None:
    _check(world, cell, _send(world.b, cell, world.ids, version="2.52"))
    assert world.state() == world.baseline


@pytest.mark.parametrize("path", ["/servers", "/servers/detail", "/os-server-groups", "/os-keypairs",
                                  "/flavors", "/flavors/detail"])
@pytest.mark.parametrize("params", [{}, {"all_projects": "true"}, {"project_id": "iso-a"},
                                    {"tenant_id": "iso-a"}, {"is_public": "None"}, {"name": "a-"}],
                         ids=["plain", "all_projects", "project_id", "tenant_id", "is_public", "name"])
def test_b_lists_none_of_a(world: World, path: str, params: dict[str, str]) -> None:
    """Filters a member may not use are ignored, as in Nova (not a 403): the list is still B's own."""
    resp = world.b.get(path, params=params)
    if resp.status_code == 400:  # a strict query schema refuses the filter outright: nothing listed either
        return
    assert resp.status_code == 200, resp.text
    text = resp.text
    for kind in ("server", "group", "flavor"):
        assert world.ids[kind] not in text, (kind, text)
    assert '"a-key"' not in text and '"a-vm"' not in text


def test_b_limits_count_only_b(world: World) -> None:
    absolute = world.b.get("/limits").json()["limits"]["absolute"]
    own = len(world.b.get("/servers").json()["servers"])
    assert absolute["totalInstancesUsed"] == own and absolute["totalServerGroupsUsed"] == 0
    assert absolute["maxTotalInstances"] != 7  # A's own quota is A's
