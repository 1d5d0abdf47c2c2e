"""An upload racing a delete of the same image: whichever wins, the answers are Glance's (the upload 204, or 404 /
410 / 409 with Glance's error body), nothing is left half-written, and no data file or ``.part`` file stays."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import httpx

from stratus.image.embedded import ImageStore
from tests.unit.image.conftest import data_files

JSON = {"Accept": "application/json"}


async def _body(parts: int, size: int, pause: asyncio.Event) -> AsyncIterator[bytes]:
    for i in range(parts):
        if i == parts // 2:
            pause.set()  # half way: let the delete go
        yield bytes([i % 256]) * size
        await asyncio.sleep(0)


async def test_upload_racing_delete_many_times(api: httpx.AsyncClient, store: ImageStore) -> None:
    rng = random.Random(14)
    outcomes: dict[tuple[int, int], int] = {}
    for _ in range(60):
        image = (await api.post("/v2/images", json={"disk_format": "raw", "container_format": "bare"})).json()
        half = asyncio.Event()
        upload = asyncio.create_task(api.put(
            f"/v2/images/{image['id']}/file", content=_body(rng.randint(1, 6), rng.choice([1, 4096, 1 << 20]), half),
            headers={**JSON, "Content-Type": "application/octet-stream"}))

        async def delete_soon(image_id: str = image["id"], half: asyncio.Event = half) -> httpx.Response:
            if rng.random() < 0.7:
                await half.wait()
            for _ in range(rng.randint(0, 30)):
                await asyncio.sleep(0)
            return await api.delete(f"/v2/images/{image_id}", headers=JSON)

        uploaded, deleted = await asyncio.gather(upload, delete_soon())
        outcomes[(uploaded.status_code, deleted.status_code)] = outcomes.get(
            (uploaded.status_code, deleted.status_code), 0) + 1
        assert uploaded.status_code in (204, 404, 409, 410), uploaded.text
        assert deleted.status_code == 204, deleted.text
        if uploaded.status_code != 204:
            error = uploaded.json()  # Glance's error body, not a plain-text 500
            assert error["code"].startswith(str(uploaded.status_code)) and error["message"]
        assert (await api.get(f"/v2/images/{image['id']}", headers=JSON)).status_code == 404
        assert data_files(store) == [], (uploaded.status_code, data_files(store))
    assert len(outcomes) > 1, outcomes  # the race went both ways


async def test_unexpected_errors_are_glances_500(api: httpx.AsyncClient, store: ImageStore) -> None:
    image = (await api.post("/v2/images", json={"disk_format": "raw", "container_format": "bare"})).json()

    async def broken() -> AsyncIterator[bytes]:
        yield b"x"
        raise OSError("the disk is on fire")

    answered = await api.put(f"/v2/images/{image['id']}/file", content=broken(),
                             headers={**JSON, "Content-Type": "application/octet-stream"})
    assert answered.status_code == 500
    assert answered.json()["code"] == "500 Internal Server Error" and "fire" not in answered.text
    assert (await api.get(f"/v2/images/{image['id']}")).json()["status"] == "queued"
    assert data_files(store) == []
