"""Property-based fuzzing of every route of the compute API on a real all-in-one.

Each route of ``stratus.api.routes.ROUTES`` is one test: hypothesis sends it bad requests built from a valid seed
body (the handlers' own schemas check the seeds, ``test_seeds_are_valid``), mutated with wrong types, integers
past every range, NUL/CR/LF/non-BMP/lone-surrogate strings, deep nesting, unknown keys and lists for objects, or
raw bytes that are no JSON at all; junk query strings, odd microversion headers and Content-Types; path ids of
real objects made in setup or junk. Every answer must be under 500, a 4xx must be Nova's fault body, no body
carries a traceback, and a refused request leaves the database exactly as it was (read-only sqlite snapshot of the
cloud's tables before and after).

The budget is fixed for CI (``derandomize``, no example database, ``MAX_EXAMPLES`` per route): the module runs
in well under a minute on its own cloud, so that what the fuzz creates (flavors, quotas, disabled services) never
reaches another module's cloud.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from stratus.api import (
    aggregate_images,
    aggregates,
    flavor_access,
    flavors,
    flavors_extraspecs,
    gone,
    image_metadata,
    keypairs,
    os_hosts,
    quota_sets,
    server_actions,
    server_groups,
    servers,
    servers_create,
    services_api,
    validation,
)
from stratus.api.errors import FAULT_NAMES
from stratus.api.microversion import MAX_VERSION, APIVersion
from stratus.api.router import Route
from stratus.api.routes import ROUTES
from stratus.db import quotas
from stratus.local_cloud import Cloud, start_cloud, stop_cloud
from tests.functional.helpers import upload_image, wait_for_status

#: per route: 69 routes, about 1,050 requests in CI; STRATUS_FUZZ_EXAMPLES asks for a longer hunt
MAX_EXAMPLES = int(os.environ.get("STRATUS_FUZZ_EXAMPLES", "15"))
MEMBER = "fuzz:fuzzproj"
ADMIN = "admin:admin"
EXTRA_KEY = "fz:key"
META_KEY = "mk"
TAG = "tag1"
#: what a periodic task or a heartbeat rewrites on its own; everything else must not move on a refused request
VOLATILE_TABLES = {"compute_nodes", "resource_providers", "inventories", "tokens", "network_agents"}
VOLATILE_COLUMNS = {"updated_at", "last_seen_up", "report_count", "generation"}
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")
# hypothesis keeps caches (constants, unicode data) even with no example database: outside the checkout
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "stratus-hypothesis"))
SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=False)


# --- the cloud and the objects every path id can name ---------------------------------------------------------

class Fixtures:
    """The cloud, a client per caller, and one real object of each kind (re-made when a fuzzed request that
    succeeded deleted it)."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.db_path = cloud.state_path / "stratus.sqlite"
        self.http = httpx.Client(timeout=30)
        self.queries: dict[str, str] = {}
        self.admin = cloud.client(ADMIN, version="2.64")
        self.member = cloud.client(MEMBER, version="2.64")
        with cloud.image_client() as image:
            self.image_id = upload_image(image)["id"]
        self.ids: dict[str, str] = {"project_id": "fuzzproj", "class_name": "default", "key": EXTRA_KEY,
                                    "tag": TAG}
        # each project's default security group exists before any snapshot: the Networking service makes it at
        # a project's first security group request (Neutron's way), a read included
        for token in (ADMIN, MEMBER):
            with cloud.network_client(token) as network:
                assert network.get("/security-groups").status_code == 200
        self.repair()

    def repair(self) -> None:
        """Make (again) whatever object a path id names that is gone."""
        a, m, ids = self.admin, self.member, self.ids
        if "flavor_id" not in ids or a.get(f"/flavors/{ids['flavor_id']}").status_code != 200:
            created = a.post("/flavors", json={"flavor": {"name": f"fz-{uuid.uuid4().hex[:6]}", "ram": 64,
                                                          "vcpus": 1, "disk": 1,
                                                          "os-flavor-access:is_public": False}})
            assert created.status_code == 200, created.text
            ids["flavor_id"] = created.json()["flavor"]["id"]
        a.post(f"/flavors/{ids['flavor_id']}/action", json={"addTenantAccess": {"tenant": "fuzzproj"}})
        a.post(f"/flavors/{ids['flavor_id']}/os-extra_specs", json={"extra_specs": {EXTRA_KEY: "v"}})
        if "keypair_name" not in ids or m.get(f"/os-keypairs/{ids['keypair_name']}").status_code != 200:
            created = m.post("/os-keypairs", json={"keypair": {"name": f"fzkp-{uuid.uuid4().hex[:6]}"}})
            assert created.status_code == 201, created.text
            ids["keypair_name"] = created.json()["keypair"]["name"]
        if "aggregate_id" not in ids or a.get(f"/os-aggregates/{ids['aggregate_id']}").status_code != 200:
            created = a.post("/os-aggregates", json={"aggregate": {"name": f"fzagg-{uuid.uuid4().hex[:6]}"}})
            assert created.status_code == 200, created.text
            ids["aggregate_id"] = str(created.json()["aggregate"]["id"])
        if "group_id" not in ids or m.get(f"/os-server-groups/{ids['group_id']}").status_code != 200:
            created = m.post("/os-server-groups", json={"server_group": {"name": "fzg", "policy": "affinity"}})
            assert created.status_code == 200, created.text
            ids["group_id"] = created.json()["server_group"]["id"]
        server = m.get(f"/servers/{ids['server_id']}") if "server_id" in ids else None
        if server is None or server.status_code != 200 or server.json()["server"]["status"] in ("ERROR",
                                                                                                "DELETED"):
            # the fixture's own flavor: a fuzzed DELETE /flavors/1 may have taken the default ones
            created = m.post("/servers", json={"server": {"name": "fzvm", "imageRef": self.image_id,
                                                          "flavorRef": ids["flavor_id"], "networks": "none"}})
            assert created.status_code == 202, created.text
            ids["server_id"] = created.json()["server"]["id"]
            wait_for_status(m, ids["server_id"], {"ACTIVE"})
            ids["request_id"] = m.get(f"/servers/{ids['server_id']}/os-instance-actions").json()[
                "instanceActions"][0]["request_id"]
        m.put(f"/servers/{ids['server_id']}/metadata/{META_KEY}", json={"meta": {META_KEY: "v"}})
        m.put(f"/servers/{ids['server_id']}/tags/{TAG}")
        host = a.get(f"/servers/{ids['server_id']}").json()["server"]["OS-EXT-SRV-ATTR:host"]
        service = next(s for s in a.get("/os-services").json()["services"] if s["host"] == host
                       and s["binary"] == "nova-compute")
        ids["service_id"], ids["pattern"] = service["id"], host
        hypervisor = a.get("/os-hypervisors").json()["hypervisors"]
        ids["hypervisor_id"] = next(h["id"] for h in hypervisor if h["hypervisor_hostname"] == host)
        ids["host"] = host

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every table's rows but what periodic tasks rewrite, read through a read-only connection."""
        TIMES["snapshots"] = TIMES.get("snapshots", 0) + 1
        t = time.perf_counter()
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            if not self.queries:
                tables = [r[0] for r in db.execute("select name from sqlite_master where type = 'table'")]
                for table in tables:
                    if table in VOLATILE_TABLES or table.startswith(("sqlite_", "alembic")):
                        continue
                    columns = [r[1] for r in db.execute(f"pragma table_info('{table}')")
                               if r[1] not in VOLATILE_COLUMNS]
                    names = ", ".join(f'"{c}"' for c in columns)
                    self.queries[table] = f'select {names} from "{table}"'
            out = {table: sorted(db.execute(query).fetchall(), key=repr) for table, query in self.queries.items()}
            TIMES["snapshot_s"] = TIMES.get("snapshot_s", 0) + time.perf_counter() - t
            return out
        finally:
            db.close()

    def settle(self, timeout: float = 15) -> dict[str, list[tuple[Any, ...]]]:
        """The snapshot once a change that was accepted has finished (a build, a power action, a snapshot)."""
        deadline = time.monotonic() + timeout
        last = self.snapshot()
        while True:
            time.sleep(0.05)
            now = self.snapshot()
            if now == last and not self._busy(now):
                return now
            if time.monotonic() > deadline:
                return now
            last = now

    def _busy(self, snap: dict[str, list[tuple[Any, ...]]]) -> bool:
        """A server still changing (a task state), or one deleted whose host has not given back its claim yet."""
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return bool(db.execute(
                "select (select count(*) from instances where deleted = 0 and task_state is not null) + "
                "(select count(*) from allocations a join instances i on a.consumer_id = i.uuid "
                "where i.deleted != 0)").fetchone()[0])
        finally:
            db.close()


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixtures]:
    cloud = start_cloud(tmp_path_factory.mktemp("fuzz"))
    try:
        f = Fixtures(cloud)
        yield f
        print("\nFUZZ", COUNTER, TIMES)
        f.http.close()
        f.admin.close()
        f.member.close()
    finally:
        stop_cloud(cloud)


# --- seed bodies: valid for the route's schema, the start of every mutation ------------------------------------

def seeds(route: Route, fx_ids: dict[str, str], image_id: str) -> list[Any]:
    """Valid bodies for a route (none for one that reads no body: the fuzz then sends junk anyway)."""
    host = fx_ids.get("host", "host1")
    table: dict[tuple[str, str], list[Any]] = {
        ("POST", "/flavors"): [{"flavor": {"name": "fzf", "ram": 64, "vcpus": 1, "disk": 1, "id": None,
                                           "swap": 0, "rxtx_factor": 1.0, "OS-FLV-EXT-DATA:ephemeral": 0,
                                           "os-flavor-access:is_public": False, "description": "d"}}],
        ("PUT", "/flavors/{flavor_id}"): [{"flavor": {"description": "fuzzed"}}],
        ("POST", "/flavors/{flavor_id}/os-extra_specs"): [{"extra_specs": {"hw:cpu_policy": "shared"}}],
        ("POST", "/os-fixed-ips/{id}/action"): [{"reserve": None}, {"unreserve": None}],
        ("POST", "/images/{image_id}/metadata"): [{"metadata": {"color": "red"}}],
        ("PUT", "/images/{image_id}/metadata"): [{"metadata": {"color": "red", "os": "linux"}}],
        ("PUT", "/images/{image_id}/metadata/{key}"): [{"meta": {EXTRA_KEY: "v"}}],
        ("PUT", "/os-hosts/{host_name}"): [{"status": "enable"}, {"maintenance_mode": "disable"}],
        ("POST", "/os-networks/{id}/action"): [{"disassociate": None}, {"associate_host": "h"}],
        ("PUT", "/flavors/{flavor_id}/os-extra_specs/{key}"): [{EXTRA_KEY: "w"}],
        ("POST", "/flavors/{flavor_id}/action"): [{"addTenantAccess": {"tenant": "other"}},
                                                  {"removeTenantAccess": {"tenant": "other"}}],
        ("POST", "/os-keypairs"): [{"keypair": {"name": "fzk", "type": "ssh", "user_id": "fuzz"}}],
        ("POST", "/os-aggregates"): [{"aggregate": {"name": "fza", "availability_zone": "fzaz"}}],
        ("PUT", "/os-aggregates/{aggregate_id}"): [{"aggregate": {"name": "fza2", "availability_zone": "fzaz"}}],
        ("POST", "/os-aggregates/{aggregate_id}/action"): [
            {"add_host": {"host": host}}, {"remove_host": {"host": host}},
            {"set_metadata": {"metadata": {"k": "v", "gone": None}}}],
        ("POST", "/os-aggregates/{aggregate_id}/images"): [{"cache": [{"id": image_id}]}],
        ("POST", "/os-server-groups"): [
            {"server_group": {"name": "g", "policies": ["affinity"]}},
            {"server_group": {"name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}}],
        ("PUT", "/os-quota-sets/{project_id}"): [{"quota_set": {"instances": 10, "cores": "20", "force": True}}],
        ("PUT", "/os-quota-class-sets/{class_name}"): [{"quota_class_set": {"instances": 10}}],
        ("POST", "/servers"): [{"server": {"name": "fz", "imageRef": image_id, "flavorRef": "1",
                                           "networks": "none", "metadata": {"a": "b"}, "min_count": 1,
                                           "max_count": 1, "tags": ["t"], "description": "d"},
                                "os:scheduler_hints": {"group": fx_ids.get("group_id", str(uuid.uuid4()))}}],
        ("PUT", "/servers/{server_id}"): [{"server": {"name": "n", "description": "d", "accessIPv4": "1.2.3.4"}}],
        ("POST", "/servers/{server_id}/action"): [
            {"reboot": {"type": "SOFT"}}, {"os-stop": None}, {"os-start": None}, {"pause": None},
            {"unpause": None}, {"suspend": None}, {"resume": None}, {"lock": None}, {"unlock": None},
            {"os-getConsoleOutput": {"length": 5}}, {"createImage": {"name": "snap", "metadata": {"a": "b"}}}],
        ("POST", "/servers/{server_id}/metadata"): [{"metadata": {"k": "v"}}],
        ("PUT", "/servers/{server_id}/metadata"): [{"metadata": {META_KEY: "v", "k2": "v2"}}],
        ("PUT", "/servers/{server_id}/metadata/{key}"): [{"meta": {META_KEY: "v"}}],
        ("PUT", "/servers/{server_id}/tags"): [{"tags": [TAG, "b"]}],
        # the network proxies (to 2.35), interfaces, external events, and a live migration's force_complete
        ("POST", "/os-floating-ips"): [{"pool": "public"}],
        ("POST", "/os-security-groups"): [{"security_group": {"name": "fzsg", "description": "d"}}],
        ("PUT", "/os-security-groups/{group_id}"): [{"security_group": {"name": "fzsg2", "description": "d"}}],
        ("POST", "/os-security-group-rules"): [{"security_group_rule": {
            "parent_group_id": str(uuid.uuid4()), "ip_protocol": "tcp", "from_port": 22, "to_port": 22,
            "cidr": "10.0.0.0/24"}}],
        ("POST", "/os-server-external-events"): [{"events": [
            {"name": "network-changed", "server_uuid": fx_ids.get("server_id", str(uuid.uuid4()))}]}],
        ("POST", "/servers/{server_id}/os-interface"): [{"interfaceAttachment": {"net_id": str(uuid.uuid4())}}],
        ("POST", "/servers/{server_id}/migrations/{migration_id}/action"): [{"force_complete": None}],
    }
    if route.path == "/os-services/{service_id}" and route.method == "PUT":
        if route.min_version == "2.1":
            return [{"host": host, "binary": "nova-compute", "disabled_reason": "x"}]
        return [{"status": "disabled", "disabled_reason": "r", "forced_down": False}, {"status": "enabled"}]
    return table.get((route.method, route.path), [])


#: the schema each seed must pass, with the version it belongs to
SEED_SCHEMAS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("POST", "/flavors"): [flavors.CREATE_SCHEMA_V255],
    ("PUT", "/flavors/{flavor_id}"): [flavors.UPDATE_SCHEMA],
    ("POST", "/flavors/{flavor_id}/os-extra_specs"): [flavors_extraspecs.CREATE_SCHEMA],
    ("POST", "/images/{image_id}/metadata"): [image_metadata.CREATE_SCHEMA],
    ("PUT", "/images/{image_id}/metadata"): [image_metadata.CREATE_SCHEMA],
    ("PUT", "/images/{image_id}/metadata/{key}"): [image_metadata.UPDATE_SCHEMA],
    ("PUT", "/os-hosts/{host_name}"): [os_hosts.UPDATE_SCHEMA],
    ("PUT", "/flavors/{flavor_id}/os-extra_specs/{key}"): [flavors_extraspecs.UPDATE_SCHEMA],
    ("POST", "/flavors/{flavor_id}/action"): [flavor_access.ADD_SCHEMA, flavor_access.REMOVE_SCHEMA],
    ("POST", "/os-keypairs"): [keypairs.CREATE_SCHEMA_V210],
    ("POST", "/os-aggregates"): [aggregates.CREATE_SCHEMA],
    ("PUT", "/os-aggregates/{aggregate_id}"): [aggregates.UPDATE_SCHEMA],
    ("POST", "/os-aggregates/{aggregate_id}/action"): [aggregates.ADD_HOST_SCHEMA, aggregates.REMOVE_HOST_SCHEMA,
                                                       aggregates.SET_METADATA_SCHEMA],
    ("POST", "/os-aggregates/{aggregate_id}/images"): [aggregate_images.CACHE_SCHEMA],
    ("POST", "/os-server-groups"): [server_groups.CREATE_SCHEMA, server_groups.CREATE_SCHEMA_V264],
    ("PUT", "/os-quota-sets/{project_id}"): [quota_sets.update_schema(
        "quota_set", (), {"force": quota_sets.BOOLEAN})],
    ("PUT", "/os-quota-class-sets/{class_name}"): [quota_sets.update_schema("quota_class_set", ())],
    ("POST", "/servers"): [servers_create.create_schema(APIVersion.parse("2.64")),
                           servers_create.create_schema(MAX_VERSION)],
    ("PUT", "/servers/{server_id}"): [servers._update_schema(APIVersion.parse("2.64")),
                                      servers._update_schema(MAX_VERSION)],
    ("POST", "/servers/{server_id}/action"): [server_actions._REBOOT_SCHEMA, server_actions._CONSOLE_SCHEMA,
                                              server_actions._CREATE_IMAGE_SCHEMA],
}


#: the actions Nova's schemas let take any value (null by convention)
ANY_VALUE_ACTIONS = ("os-stop", "os-start", "pause", "unpause", "suspend", "resume", "lock", "unlock")


# --- strategies --------------------------------------------------------------------------------------------------

#: raw JSON tokens no ``json.dumps`` writes: numbers past every range, NaN, deep nesting, absurd digits
RAW_TOKENS = ["1e400", "-1e400", "NaN", "Infinity", "-0", "1.0e-400", "9" * 5000, "-" + "9" * 40,
              "[" * 999 + "]" * 999, "[" * 1000 + "1" * 20 + "]" * 1000, "[" * 1030 + "]" * 1030,
              "{\"a\":" * 600 + "1" + "}" * 600, "[" * 5000 + "]" * 5000, "\"\\ud800\"", "\"\\udfff\\ud800\"",
              "\"\\u0000\""]
NASTY = ["\x00", "a\x00b", "\r\n", "x\ny", "\ud800", "\udfff", "😀", "\U0010ffff", " ", "", "%00", "../..",
         "a" * 300, "' OR 1=1 --", "\u202e", "\ufeff", "null", "[", "*", "(?P<", "\\", "a,b", "%", "é",
         "\U0001d518\U0001d52b", "\t", "-1", "0", "99999999999999999999", "1.5", "true", "ab\x7f", "1e5",
         "0x10", "\x1b[31m"]
INTS = st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30,
                        -(10**30)]) | st.integers()
TEXT = st.sampled_from(NASTY) | st.text(max_size=12)
SCALARS = st.none() | st.booleans() | INTS | st.floats(allow_nan=False, allow_infinity=False) | TEXT
JUNK = st.recursive(SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(TEXT, c, max_size=3),
                    max_leaves=6)
RAW = st.sampled_from(RAW_TOKENS).map(lambda t: _Raw(t))
JUNK_OR_RAW = st.one_of(JUNK, RAW)


class _Raw:
    """A JSON token written as it is (what no Python value serialises to)."""

    def __init__(self, text: str) -> None:
        self.text = text


def mutate(draw: Any, value: Any, depth: int = 0) -> Any:
    """One mutation somewhere in ``value``: replace a node (junk, a raw token, a list for an object), drop or add
    a key, or go down into a child."""
    ops = ["replace", "raw", "raw", "wrap"]
    if isinstance(value, dict) and value and depth < 6:
        ops += ["descend", "descend", "descend", "add", "drop"]
    elif isinstance(value, list) and value and depth < 6:
        ops += ["descend", "descend", "append"]
    op = draw(st.sampled_from(ops))
    if op == "replace":
        return draw(JUNK)
    if op == "raw":
        return draw(RAW)
    if op == "wrap":
        return [value]
    if op == "add":
        return {**value, draw(TEXT): draw(JUNK)}
    if op == "drop":
        key = draw(st.sampled_from(sorted(value)))
        return {k: v for k, v in value.items() if k != key}
    if op == "append":
        return [*value, draw(JUNK_OR_RAW)]
    if isinstance(value, dict):
        key = draw(st.sampled_from(sorted(value)))
        return {**value, key: mutate(draw, value[key], depth + 1)}
    index = draw(st.integers(0, len(value) - 1))
    return [*value[:index], mutate(draw, value[index], depth + 1), *value[index + 1:]]


def encode(value: Any, ascii_only: bool) -> bytes:
    """``value`` as JSON text: raw tokens put in as they are; lone surrogates either escaped (``\\ud800``, valid
    JSON text naming no character) or written as the invalid UTF-8 they make."""
    raws: dict[str, str] = {}

    def default(obj: Any) -> Any:
        if isinstance(obj, _Raw):
            mark = f"__raw{len(raws)}__"
            raws[mark] = obj.text
            return mark
        raise TypeError(obj)

    text = json.dumps(value, ensure_ascii=ascii_only, default=default)
    for mark, raw in raws.items():
        text = text.replace(f'"{mark}"', raw)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw: Any, seed_list: list[Any]) -> bytes | None:
    kind = draw(st.sampled_from(["mutant", "mutant", "mutant", "mutant", "junk", "bytes", "none"]
                                if seed_list else ["junk", "bytes", "none", "none"]))
    if kind == "none":
        return None
    if kind == "bytes":
        return draw(st.sampled_from([b"", b"{", b"\xff\xfe\x00", b"null", b"[]", b"{}", b"\"x\"", b"1",
                                     b"{\"a\":1,\"a\":2}", b"\xef\xbb\xbf{}", b"{\"\xc3\x28\":1}", b" " * 100]))
    value = mutate(draw, draw(st.sampled_from(seed_list))) if kind == "mutant" else draw(JUNK_OR_RAW)
    return encode(value, draw(st.booleans()))


QUERY_KEYS = ["limit", "marker", "changes-since", "changes-before", "name", "flavor", "image", "status",
              "all_tenants", "deleted", "sort_key", "sort_dir", "minDisk", "minRam", "is_public", "host", "user_id",
              "hypervisor_hostname_pattern", "with_servers", "tags", "tags-any", "not-tags", "not-tags-any", "ip",
              "ip6", "reservation_id", "project_id", "tenant_id", "detailed", "usage", "uuid", "locked",
              "availability_zone", "key_name", "config_drive", "launched_at", "power_state", "task_state",
              "vm_state", "description", "binary", "zone", TEXT]
QUERY_VALUES = TEXT | INTS.map(str) | st.sampled_from(["2000-01-01T00:00:00Z", "0001-01-01", "9999-12-31T23:59:59",
                                                       "10000-01-01", ".*", "(", "a{99999999}", "[[:alpha:]]",
                                                       "asc", "desc", "created_at", "True", "no"])
VERSIONS = st.sampled_from(["compute 2.1", "compute 2.26", "compute 2.53", "compute 2.64", "compute 2.100",
                            "compute latest",
                            "compute 2.999", "compute 3.0", "compute 1.1", "compute 2.a", "compute", "",
                            "compute 2.1, compute 2.5", "compute  2.60", "volume 2.5", "compute -2.5",
                            "compute 2." + "9" * 5000, "compute 02.010", "compute \xe9"])
CONTENT_TYPES = st.sampled_from([None, "application/json", "text/plain", "", "application/xml",
                                 "application/json; charset=latin-1", "multipart/form-data; boundary=x",
                                 "application/vnd.openstack.compute+json", "application/json-patch+json", ";",
                                 "application/octet-stream"])
JUNK_IDS = st.sampled_from([n for n in NASTY if n] + [str(uuid.UUID(int=0)), str(uuid.uuid4()), "1", "-1",
                                                      str(2**31), str(2**63), "9" * 400, "a/b", "a?b", "a#b",
                                                      "%2F", "..", "."]) | st.text(min_size=1, max_size=20)


def _q(text: object) -> str:
    return quote(str(text).encode("utf-8", "surrogatepass"), safe="")


def fill(path: str, ids: dict[str, str], draw: Any) -> str:
    """The path with each ``{name}`` a real object's id or junk, each segment percent-encoded."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        value = ids.get(name) if draw(st.booleans()) else None
        if value is None:
            value = draw(JUNK_IDS)
        return quote(str(value).encode("utf-8", "surrogatepass"), safe="")

    return re.sub(r"\{(\w+)\}", one, path)


# --- the checks ---------------------------------------------------------------------------------------------------

def check_response(resp: httpx.Response, what: str) -> None:
    assert resp.status_code < 500, f"{what}: {resp.status_code} {resp.text[:2000]}"
    assert not TRACEBACK.search(resp.text), f"{what}: traceback in the body: {resp.text[:2000]}"
    if 400 <= resp.status_code < 500:
        body = resp.json()
        name = FAULT_NAMES.get(resp.status_code, "computeFault")
        assert isinstance(body, dict) and list(body) == [name], f"{what}: {resp.status_code} {body}"
        assert body[name]["code"] == resp.status_code and isinstance(body[name]["message"], str), \
            f"{what}: {body}"
        assert set(body[name]) == {"code", "message"}, f"{what}: {body}"


def differences(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> dict[str, Any]:
    out = {}
    for table in sorted(set(before) | set(after)):
        b, a = before.get(table, []), after.get(table, [])
        if b != a:
            out[table] = {"gone": [r for r in b if r not in a][:5], "new": [r for r in a if r not in b][:5]}
    return out


COUNTER = {"requests": 0, "refused": 0}
TIMES: dict[str, float] = {}
SNAPSHOT: dict[str, Any] = {}


def route_id(route: Route) -> str:
    return f"{route.method} {route.path} {route.min_version}-{route.max_version or ''}"


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_fuzz_route(fx: Fixtures, route: Route) -> None:
    seed_list = seeds(route, fx.ids, fx.image_id)

    @SETTINGS
    @given(st.data())
    def run(data: st.DataObject) -> None:
        t0 = time.perf_counter()
        draw = data.draw
        path = fill(route.path, fx.ids, draw)
        query = draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS).flatmap(
            lambda k: k if isinstance(k, st.SearchStrategy) else st.just(k)), QUERY_VALUES), max_size=3))
        headers: list[tuple[bytes, bytes]] = [(b"X-Auth-Token", draw(st.sampled_from([ADMIN, MEMBER])).encode())]
        version = draw(st.sampled_from(["ok", "ok", "odd", "legacy", "none"]))
        if version == "ok":
            lo = APIVersion.parse(route.min_version)
            hi = APIVersion.parse(route.max_version) if route.max_version else MAX_VERSION
            minor = draw(st.integers(lo.minor, hi.minor))
            headers.append((b"OpenStack-API-Version", f"compute 2.{minor}".encode()))
        elif version == "odd":
            headers.append((b"OpenStack-API-Version", draw(VERSIONS).encode("latin-1")))
        elif version == "legacy":
            headers.append((b"X-OpenStack-Nova-API-Version", draw(VERSIONS).removeprefix("compute").strip().encode(
                "latin-1")))
        content_type = draw(CONTENT_TYPES)
        if content_type is not None:
            headers.append((b"Content-Type", content_type.encode()))
        body = draw(bodies(seed_list))
        url = fx.cloud.compute_url + path
        if query:  # percent-encoded here: a lone surrogate goes as the invalid UTF-8 it makes
            url += "?" + "&".join(f"{_q(k)}={_q(v)}" for k, v in query)
        what = f"{route.method} {path} ?{query} {headers[1:]} body={body[:300] if body else body!r}"
        before = SNAPSHOT.get("snap") or fx.snapshot()
        t = time.perf_counter()
        TIMES["draw_s"] = TIMES.get("draw_s", 0) + t - t0
        resp = fx.http.request(route.method, url, headers=headers, content=body)
        COUNTER["requests"] += 1
        TIMES["request_s"] = TIMES.get("request_s", 0) + time.perf_counter() - t
        check_response(resp, what)
        if resp.status_code >= 400 or route.method == "GET":
            COUNTER["refused"] += resp.status_code >= 400
            after = fx.snapshot()
            assert after == before, f"{what}: {resp.status_code} {resp.text[:500]} but changed " \
                                    f"{differences(before, after)}"
            SNAPSHOT["snap"] = after
        else:
            t = time.monotonic()
            fx.settle()
            fx.repair()
            SNAPSHOT["snap"] = fx.settle()
            TIMES["accepted"] = TIMES.get("accepted", 0) + time.monotonic() - t

    SNAPSHOT.clear()
    fx.settle()
    SNAPSHOT["snap"] = fx.settle()
    run()


def test_seeds_are_valid(fx: Fixtures) -> None:
    """Each seed passes the schema of its route: a mutation then starts from what the handler accepts."""
    for route in ROUTES:
        schemas = SEED_SCHEMAS.get((route.method, route.path))
        if not schemas:
            continue
        for seed in seeds(route, fx.ids, fx.image_id):
            if list(seed) in ([a] for a in ANY_VALUE_ACTIONS):
                continue
            assert any(validation.error_message(s, seed) is None for s in schemas), (route_id(route), seed)
    assert quotas.RESOURCES  # the quota schema above is built from the resources the cloud counts
    assert services_api.UPDATE_SCHEMA_V253


def test_every_body_route_has_seeds(fx: Fixtures) -> None:
    """A route that reads a body is fuzzed from a valid one: a new route with a body needs its seed here."""
    readers = {(r.method, r.path) for r in ROUTES if r.method in ("POST", "PUT")}
    no_body = {("PUT", "/servers/{server_id}/tags/{tag}"),
               *((r.method, r.path) for r in gone.ROUTES if r.handler is gone.gone)}
    for method, path in sorted(readers - no_body):
        route = next(r for r in ROUTES if (r.method, r.path) == (method, path))
        assert seeds(route, fx.ids, fx.image_id), (method, path)
