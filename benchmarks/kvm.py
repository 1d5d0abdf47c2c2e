"""Real-guest benchmark: the test guest booted through the REST API with the libvirt driver.

    python benchmarks/kvm.py [--counts 1,8] [--json PATH]

Brings up a private libvirtd (scripts/libvirt.sh) and the test guest (scripts/test-guest.sh), then:

1. **Direct**: the same guest defined and started straight through libvirt-python (kernel, initramfs, qcow2
   overlay, serial log), N at once: the time from ``create()`` to the boot marker in the serial log. This is
   qemu's own start plus the guest's boot, the part no controller can make faster.
2. **Through Stratus**: an all-in-one with ``compute_driver = libvirt.LibvirtDriver``; N concurrent
   ``POST /servers`` (after one warm-up boot that fills the host's image cache), timing POST → ACTIVE and
   POST → boot marker (read from the instance's serial log file, so polling adds no API load).

The controller's share is ``1 - direct / through-Stratus`` of the median time to the marker: everything that is
not qemu starting and the guest booting (API, scheduling, claims, image cache, disk creation, domain XML, state
writes). Also reported: the compute agent's peak RSS (the all-in-one process's VmHWM). Guests run under TCG
here (no VT-x), KVM where the host has it. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from boot import peak_rss_mib  # noqa: E402

from stratus.local_cloud import Cloud, start_cloud, stop_cloud  # noqa: E402
from stratus.virt.libvirt import config as guest_config  # noqa: E402
from stratus.virt.libvirt.driver import detect_virt_type  # noqa: E402
from tests.integration.guest import BOOTED, CMDLINE, upload_guest  # noqa: E402

SCRIPTS = ROOT / "scripts"


def wait_marker(log: Path, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if BOOTED.encode() in log.read_bytes():
                return time.monotonic()
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no boot marker in {log} after {timeout}s")


def direct(uri: str, guest: Path, work: Path, count: int) -> list[float]:
    """Seconds from libvirt's create() to the marker, ``count`` guests at once, no controller involved."""
    import libvirt

    conn = libvirt.open(uri)
    doms, logs = [], []
    try:
        for _ in range(count):
            uid = str(uuid.uuid4())
            d = work / uid
            d.mkdir(parents=True)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                            str(guest / "disk.qcow2"), str(d / "disk")], check=True)
            cfg = guest_config.GuestConfig(
                uuid=uid, name=f"direct-{uid[:8]}", virt_type=detect_virt_type(), memory_mb=256, vcpus=1,
                disks=[guest_config.Disk(path=str(d / "disk"), driver_format="qcow2", target_dev="vda")],
                console_log=str(d / "console.log"),
                kernel=str(guest / "vmlinuz"), ramdisk=str(guest / "initrd.img"), cmdline=CMDLINE, host="bench")
            doms.append(conn.defineXML(cfg.to_xml()))
            logs.append(d / "console.log")

        def one(i: int) -> float:
            start = time.monotonic()
            doms[i].create()
            return wait_marker(logs[i]) - start

        with ThreadPoolExecutor(count) as pool:
            return list(pool.map(one, range(count)))
    finally:
        for dom in doms:
            try:
                dom.destroy()
            except libvirt.libvirtError:
                pass
            dom.undefine()
        conn.close()


def through_api(cloud: Cloud, image_id: str, flavor: str, count: int) -> dict[str, list[float]]:
    """POST → ACTIVE and POST → marker for ``count`` concurrent boots; deletes them afterwards."""
    client = cloud.client(version="2.64")

    def one(i: int) -> tuple[str, float, float]:
        start = time.monotonic()
        resp = client.post("/servers", json={"server": {"name": f"bench-{i}", "imageRef": image_id,
                                                        "flavorRef": flavor, "networks": "none"}})
        resp.raise_for_status()
        server_id = resp.json()["server"]["id"]
        while True:
            status = client.get(f"/servers/{server_id}").json()["server"]["status"]
            if status == "ACTIVE":
                active = time.monotonic()
                break
            if status == "ERROR":
                raise RuntimeError(f"server {server_id} went to ERROR")
            time.sleep(0.05)
        marker = wait_marker(cloud.state_path / "instances" / server_id / "console.log")
        return server_id, active - start, marker - start

    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    for server_id, _, _ in results:
        client.delete(f"/servers/{server_id}")
    for server_id, _, _ in results:
        while client.get(f"/servers/{server_id}").status_code != 404:
            time.sleep(0.1)
    return {"active": [r[1] for r in results], "marker": [r[2] for r in results]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,8", help="Concurrent guests per run (comma-separated).")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "kvm.json"))
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stratus" / "test-guest"
    subprocess.run([str(SCRIPTS / "test-guest.sh"), str(cache)], check=True, stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="stratus-kvm-bench-"))
    lv_dir = work / "libvirt"
    uri = subprocess.run([str(SCRIPTS / "libvirt.sh"), "start", str(lv_dir)], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    results: dict[str, Any] = {"virt_type": detect_virt_type(), "runs": {}}
    cloud = None
    try:
        for n in counts:
            results["runs"].setdefault(str(n), {})["direct_marker"] = direct(uri, cache, work / "direct", n)
        (work / "cloud").mkdir()
        cloud = start_cloud(work / "cloud", f"""
            [DEFAULT]
            compute_driver = libvirt.LibvirtDriver
            reserved_host_memory_mb = 256
            [libvirt]
            connection_uri = {uri}
            """)
        with cloud.image_client() as images:
            guest = upload_guest(images, cache)
        with cloud.client() as client:
            flavor = client.post("/flavors", json={"flavor": {"name": "bench.tiny", "ram": 256, "vcpus": 1,
                                                               "disk": 1}}).json()["flavor"]["id"]
        warm = through_api(cloud, guest.disk_id, flavor, 1)  # fills the image cache: not measured below
        results["cold_first_boot"] = {"active": warm["active"][0], "marker": warm["marker"][0]}
        for n in counts:
            results["runs"][str(n)].update(through_api(cloud, guest.disk_id, flavor, n))
        results["peak_rss_mib"] = peak_rss_mib(cloud.proc.pid)
    finally:
        if cloud is not None:
            stop_cloud(cloud)
        subprocess.run([str(SCRIPTS / "libvirt.sh"), "stop", str(lv_dir)], check=False)
        shutil.rmtree(work, ignore_errors=True)

    print(f"guests under {results['virt_type']}; first boot with a cold image cache: "
          f"ACTIVE {results['cold_first_boot']['active']:.2f} s, marker {results['cold_first_boot']['marker']:.2f} s")
    print(f"{'guests':>6} | {'direct: create→marker':>22} | {'POST→ACTIVE':>12} | {'POST→marker':>12} | "
          f"{'controller share':>16}")
    for n, run in results["runs"].items():
        direct_med = statistics.median(run["direct_marker"])
        api_med = statistics.median(run["marker"])
        run["controller_share"] = max(0.0, 1 - direct_med / api_med)
        print(f"{n:>6} | {direct_med:>20.2f} s | {statistics.median(run['active']):>10.2f} s | "
              f"{api_med:>10.2f} s | {run['controller_share']:>15.1%}")
    print(f"compute agent (all-in-one) peak RSS: {results['peak_rss_mib']:.0f} MiB")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
