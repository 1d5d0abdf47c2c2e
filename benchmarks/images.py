"""Root disk preparation per image backend, as the image grows: qcow2, raw, RBD clone, RBD download-and-import.

    python benchmarks/images.py [--sizes 64,512,2048] [--runs 3] [--json PATH]

For each image size (MiB; the data is incompressible and has no zero blocks, so nothing is skipped as sparse)
the benchmark uploads one raw image into the embedded image service's file store and one into its RBD store
(a private single-node Ceph from scripts/ceph.sh, data in the OSD's memory), then times, with the real code
the compute host runs (``stratus.image``):

- ``qcow2``: the copy-on-write overlay on the host's cached base (the cache already holds the image);
- ``raw``: a full copy of the cached base;
- ``cold cache``: the first boot of the image on a host: download from the image service into the cache
  (verified against the image's sha512), then the qcow2 overlay;
- ``rbd clone``: the image is in the host's Ceph cluster: a copy-on-write clone of its snapshot;
- ``rbd import``: the image is not (file store only): download into the host cache, ``qemu-img convert`` into
  the pool as the cached base, snapshot, clone; what Nova does for **every** instance (minus the clone);
- ``rbd after import``: the next instance of that image on any host of the cluster: a clone of the cached base.

Each figure is the median of ``--runs`` runs (the import and cold-cache runs each start from nothing). Prints
a table and writes JSON (default benchmarks/results/images.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stratus import conf as conf_mod  # noqa: E402
from stratus import service  # noqa: E402
from stratus.context import RequestContext  # noqa: E402
from stratus.image.backends import backend_for  # noqa: E402
from stratus.image.backends.rbd import BASE_PREFIX, RbdBackend  # noqa: E402
from stratus.image.cache import ImageCache  # noqa: E402
from stratus.image.embedded import Caller, EmbeddedImageClient, ImageStore  # noqa: E402
from stratus.image.stores import register_opts as register_store_opts  # noqa: E402

MiB = 1 << 20
CHUNK = 4 * MiB


async def _data(size: int, seed: bytes) -> AsyncIterator[bytes]:
    """Incompressible, no zero blocks: 4 MiB of random bytes, each chunk varied by its index."""
    block = bytearray(os.urandom(CHUNK))
    for i in range(0, size, CHUNK):
        block[:8] = i.to_bytes(8, "little")
        block[8:8 + len(seed)] = seed
        yield bytes(block[:min(CHUNK, size - i)])


async def _time(work: Awaitable[Any]) -> float:
    started = time.perf_counter()
    await work
    return time.perf_counter() - started


async def _cold(cache: ImageCache, image: dict[str, Any], disk: Path, size: int) -> None:
    base = await cache.fetch(image)
    await backend_for("qcow2").create(base, "raw", str(disk), size)


async def run(sizes: list[int], runs: int, work: Path, ceph_conf: str) -> list[dict[str, Any]]:
    conf = conf_mod.load(overrides={
        "DEFAULT": {"state_path": str(work / "state"), "instances_path": str(work / "instances")},
        "image_store": {"enabled_backends": ["local:file", "ceph:rbd"], "default_backend": "local"},
        "libvirt": {"images_type": "rbd", "images_rbd_pool": "vms", "images_rbd_ceph_conf": ceph_conf},
    })
    register_store_opts(conf)  # the [ceph] section of the store
    db = await service.open_database(conf)
    conf.set_override("rbd_store_pool", "images", group="ceph")
    conf.set_override("rbd_store_ceph_conf", ceph_conf, group="ceph")
    store = ImageStore(conf, db)
    client = EmbeddedImageClient(store)
    admin = Caller(project_id="bench", is_admin=True)
    context = RequestContext.admin().to_dict()
    base_dir = work / "instances" / "_base"
    qcow2, raw = backend_for("qcow2"), backend_for("raw")
    rows = []
    try:
        for size_mib in sizes:
            size = size_mib * MiB
            images = {}
            for store_name in ("local", "ceph"):
                image = await store.create(admin, {"name": f"bench-{size_mib}-{store_name}", "disk_format": "raw",
                                                   "container_format": "bare", "visibility": "public"})
                await store.upload(admin, image["id"], _data(size, store_name.encode()), store_name=store_name)
                images[store_name] = await store.get(admin, image["id"])
            local = images["local"]
            results: dict[str, list[float]] = {k: [] for k in (
                "qcow2", "raw", "cold cache", "rbd clone", "rbd import", "rbd after import")}
            for _ in range(runs):
                # cold cache: the first boot of the image on a host
                shutil.rmtree(base_dir, ignore_errors=True)
                cache = ImageCache(str(base_dir), client)
                disk = work / f"disk-{uuid.uuid4().hex}"
                results["cold cache"].append(await _time(_cold(cache, local, disk, size)))
                disk.unlink()
                base = await cache.fetch(local)  # warm from here on
                for name, backend in (("qcow2", qcow2), ("raw", raw)):
                    disk = work / f"disk-{uuid.uuid4().hex}"
                    results[name].append(await _time(backend.create(base, "raw", str(disk), size)))
                    disk.unlink()
                # RBD: a fresh backend (its own locks), an empty host cache and no cached base in the pool
                shutil.rmtree(base_dir, ignore_errors=True)
                rbd = RbdBackend(conf, client, ImageCache(str(base_dir), client))
                await asyncio.to_thread(rbd._remove_quietly, BASE_PREFIX + local["id"])
                for name, image in (("rbd clone", images["ceph"]), ("rbd import", local), ("rbd after import", local)):
                    instance = str(uuid.uuid4())
                    results[name].append(await _time(rbd.create_root(context, image, instance, size)))
                    expected = {"rbd clone": "clone"}.get(name, "cached-base-clone")
                    assert rbd.made[instance] == expected, (name, rbd.made[instance])
                    await rbd.remove_instance_disks(instance)
            for store_name in ("local", "ceph"):
                await store.delete(admin, images[store_name]["id"])
            rbd = RbdBackend(conf, client, ImageCache(str(base_dir), client))
            await asyncio.to_thread(rbd._remove_quietly, BASE_PREFIX + local["id"])
            row = {"size_mib": size_mib, **{k: statistics.median(v) for k, v in results.items()}}
            rows.append(row)
            print(_line(row), flush=True)
    finally:
        await db.dispose()
    return rows


COLUMNS = ("qcow2", "raw", "cold cache", "rbd clone", "rbd import", "rbd after import")


def _line(row: dict[str, Any]) -> str:
    return f"| {row['size_mib']:>6} MiB | " + " | ".join(f"{row[c]:>9.3f} s" for c in COLUMNS) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,512,2048", help="image sizes in MiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "images.json"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-images-", dir="/var/tmp"))
    ceph_dir = Path(tempfile.mkdtemp(prefix="stratus-bench-ceph-", dir="/tmp"))
    # the images pool keeps one copy of each size, the vms pool a base and clones: room for both, twice over
    env = {**os.environ, "CEPH_MEMSTORE_BYTES": str(max(1 << 30, 4 * max(sizes) * MiB))}
    started = subprocess.run([str(ROOT / "scripts" / "ceph.sh"), "start", str(ceph_dir)], capture_output=True,
                             text=True, env=env, timeout=600)
    if started.returncode != 0:
        sys.exit(f"ceph.sh failed:\n{started.stdout}\n{started.stderr}")
    ceph_conf = started.stdout.strip().splitlines()[-1]
    header = "| image | " + " | ".join(f"{c:>11}" for c in COLUMNS) + " |"
    print(header)
    print("|" + "---|" * (len(COLUMNS) + 1))
    try:
        rows = asyncio.run(run(sizes, args.runs, work, ceph_conf))
    finally:
        subprocess.run([str(ROOT / "scripts" / "ceph.sh"), "stop", str(ceph_dir)], check=False)
        shutil.rmtree(ceph_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"benchmark": "images", "runs": args.runs, "unit": "seconds",
                                           "rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
