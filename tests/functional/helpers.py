"""Helpers for functional tests: upload an image, boot and wait, through the public APIs only."""

from __future__ import annotations

import time
import uuid
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
