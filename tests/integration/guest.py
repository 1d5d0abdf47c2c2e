"""The test guest (scripts/test-guest.sh) as images in the image service: kernel, ramdisk and root disk.

The disk image names its kernel and ramdisk through ``kernel_id`` and ``ramdisk_id``, as an AMI-style image
does in Glance, and the command line through ``os_command_line``: the driver boots the kernel directly.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

BOOTED = "STRATUS-GUEST-BOOTED"
CMDLINE = "console=ttyS0 quiet panic=-1"


@dataclasses.dataclass(frozen=True)
class GuestImages:
    kernel_id: str
    ramdisk_id: str
    disk_id: str
    disk_bytes: bytes


def _upload(client: httpx.Client, body: dict[str, object], data: bytes, store: str | None = None) -> str:
    created = client.post("/v2/images", json={"visibility": "public", **body})
    assert created.status_code == 201, created.text
    image_id = str(created.json()["id"])
    headers = {"Content-Type": "application/octet-stream", **({"X-Image-Meta-Store": store} if store else {})}
    put = client.put(f"/v2/images/{image_id}/file", content=data, headers=headers)
    assert put.status_code == 204, put.text
    return image_id


def raw_disk(guest_dir: Path) -> bytes:
    """The guest's disk converted to raw (what an RBD clone needs), made once next to the qcow2."""
    raw = guest_dir / "disk.raw"
    if not raw.exists() or raw.stat().st_mtime < (guest_dir / "disk.qcow2").stat().st_mtime:
        part = guest_dir / "disk.raw.part"
        subprocess.run(["qemu-img", "convert", "-q", "-f", "qcow2", "-O", "raw", str(guest_dir / "disk.qcow2"),
                        str(part)], check=True)
        part.replace(raw)
    return raw.read_bytes()


def upload_disk(client: httpx.Client, images: GuestImages, data: bytes, name: str, disk_format: str = "raw",
                store: str | None = None) -> str:
    """Another root disk image booting with the guest's kernel and ramdisk, into ``store`` (None: default)."""
    return _upload(client, {"name": name, "disk_format": disk_format, "container_format": "bare",
                            "kernel_id": images.kernel_id, "ramdisk_id": images.ramdisk_id,
                            "os_command_line": CMDLINE}, data, store)


def upload_guest(client: httpx.Client, guest_dir: Path, name: str = "stratus-test-guest",
                 cmdline: str = CMDLINE) -> GuestImages:
    """The guest's kernel (aki), ramdisk (ari) and root disk (qcow2, naming them and the command line) uploaded
    as public images."""
    kernel = _upload(client, {"name": f"{name}-kernel", "disk_format": "aki", "container_format": "aki"},
                     (guest_dir / "vmlinuz").read_bytes())
    ramdisk = _upload(client, {"name": f"{name}-ramdisk", "disk_format": "ari", "container_format": "ari"},
                      (guest_dir / "initrd.img").read_bytes())
    disk_bytes = (guest_dir / "disk.qcow2").read_bytes()
    disk = _upload(client, {"name": name, "disk_format": "qcow2", "container_format": "bare",
                            "kernel_id": kernel, "ramdisk_id": ramdisk, "os_command_line": cmdline}, disk_bytes)
    return GuestImages(kernel_id=kernel, ramdisk_id=ramdisk, disk_id=disk, disk_bytes=disk_bytes)


def console(api: httpx.Client, server_id: str, length: int | None = None) -> str:
    """The server's console log through the compute API (``os-getConsoleOutput``), its last ``length`` lines."""
    body = {"os-getConsoleOutput": {} if length is None else {"length": length}}
    resp = api.post(f"/servers/{server_id}/action", json=body)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["output"])


def wait(what: str, check: Callable[[], Any], timeout: float = 180, interval: float = 0.5) -> Any:
    """Call ``check`` until it returns something true, and return that; fail after ``timeout`` seconds saying
    what was awaited (a guest under TCG takes its time, and a console line or a state comes when it comes)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
