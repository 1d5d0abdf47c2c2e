"""Helpers for functional tests: upload an image, boot and wait, through the public APIs only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx


def upload_image(image: httpx.Client, name: str | None = None, data: bytes = b"\0" * 4096,
                 **props: Any) -> dict[str, Any]:
    body = {"name": name or f"img-{uuid.uuid4().hex[:8]}", "disk_format": "raw", "container_format": "bare",
            "visibility": "public", **props}
    created = image.post("/v2/images", json=body)
    assert created.status_code == 201, created.text
    image_id = created.json()["id"]
    put = image.put(f"/v2/images/{image_id}/file", content=data,
                    headers={"Content-Type": "application/octet-stream"})
    assert put.status_code == 204, put.text
    return image.get(f"/v2/images/{image_id}").json()


def wait_for_status(client: httpx.Client, server_id: str, statuses: set[str], timeout: float = 30
                    ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(f"/servers/{server_id}")
        assert resp.status_code == 200, resp.text
        server = resp.json()["server"]
        if server["status"] in statuses:
            return server
        if time.monotonic() > deadline:
            raise AssertionError(f"server {server_id} stayed {server['status']}: {server}")
        time.sleep(0.05)


def wait_gone(client: httpx.Client, server_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while client.get(f"/servers/{server_id}").status_code != 404:
        if time.monotonic() > deadline:
            raise AssertionError(f"server {server_id} was not deleted")
        time.sleep(0.05)


def boot(client: httpx.Client, image_id: str, flavor: str = "1", name: str | None = None, **extra: Any
         ) -> httpx.Response:
    server = {"name": name or f"vm-{uuid.uuid4().hex[:6]}", "imageRef": image_id, "flavorRef": flavor, **extra}
    return client.post("/servers", json={"server": server})


def check_schema(schema: dict[str, Any], resp: httpx.Response) -> dict[str, Any]:
    """Validate a response the way tempest does (status code, body against its schema and format checker);
    returns the body."""
    from tempest.lib.common import jsonschema_validator

    codes = schema["status_code"] if isinstance(schema["status_code"], list) else [schema["status_code"]]
    assert resp.status_code in codes, resp.text
    body: dict[str, Any] = resp.json() if resp.content else {}
    if schema.get("response_body"):
        jsonschema_validator.JSONSCHEMA_VALIDATOR(
            schema["response_body"], format_checker=jsonschema_validator.FORMAT_CHECKER).validate(body)
    return body


def fault(resp: httpx.Response, code: int, kind: str) -> str:
    """Assert Nova's error body ``{kind: {code, message}}`` with that status; returns the message."""
    assert resp.status_code == code, resp.text
    body = resp.json()
    assert list(body) == [kind] and body[kind]["code"] == code, body
    return str(body[kind]["message"])


def race_boots(cloud: Any, project: str, image_id: str, requests: int = 20) -> tuple[list[int], list[dict[str, Any]]]:
    """``requests`` concurrent ``POST /servers`` in one project, each from its own thread and connection: the
    sorted status codes, and the servers the project has afterwards. A refusal must be Nova's instances 403."""
    token = f"racer:{project}"

    def one(i: int) -> int:
        with cloud.client(token=token, version="2.47") as c:
            resp = boot(c, image_id, name=f"race-{i}", networks="none")
            if resp.status_code != 202:
                assert fault(resp, 403, "forbidden").startswith("Quota exceeded for instances: Requested 1, "
                                                                "but already used "), resp.text
            return resp.status_code

    with ThreadPoolExecutor(max_workers=requests) as pool:
        codes = sorted(pool.map(one, range(requests)))
    with cloud.client(token=token, version="2.47") as c:
        servers: list[dict[str, Any]] = c.get("/servers").json()["servers"]
    return codes, servers


def openstack_cli(clouds_yaml: Path, cwd: Path) -> Any:
    """The real ``openstack`` CLI with ``--os-cloud stratus`` from ``clouds_yaml`` and no other ``OS_*``
    variable: ``run(*args)`` asserts success (``check``) and parses ``-f json`` output; ``run.tmp`` is ``cwd``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds_yaml)
    openstack = str(Path(sys.executable).with_name("openstack"))

    def run(*args: str, check: bool = True) -> Any:
        proc = subprocess.run([openstack, "--os-cloud", "stratus", *args], env=env, capture_output=True,
                              text=True, timeout=120, cwd=cwd)
        if check:
            assert proc.returncode == 0, f"openstack {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        if "-f" in args and args[args.index("-f") + 1] == "json" and proc.returncode == 0:
            return json.loads(proc.stdout)
        return proc

    run.tmp = cwd  # type: ignore[attr-defined]
    return run
