"""Real external components for integration tests, started by the project's own scripts."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stratus.local_cloud import free_port

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server (scripts/postgres.sh), torn down after the session."""
    if os.geteuid() != 0 and not shutil.which("pg_ctl"):
        pytest.skip("PostgreSQL needs root to install and start here (runuser, apt-get)")
    parent = Path(tempfile.mkdtemp(prefix="stratus-pg-"))  # not under pytest's 0700 tree: postgres must enter it
    parent.chmod(0o755)
    data = parent / "data"
    proc = subprocess.run([str(SCRIPTS / "postgres.sh"), "start", str(data), str(free_port())],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"postgres.sh failed:\n{proc.stdout}\n{proc.stderr}")
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(SCRIPTS / "postgres.sh"), "stop", str(data)], check=False, timeout=120)
        shutil.rmtree(parent, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class RabbitMQ:
    """A private broker (scripts/rabbitmq.sh): its transport URL, and restart (its data kept: durable queues and
    persistent messages survive)."""

    url: str
    directory: Path
    port: int

    def stop(self) -> None:
        subprocess.run([str(SCRIPTS / "rabbitmq.sh"), "stop", str(self.directory)], check=True, timeout=120)

    def start(self) -> None:
        proc = subprocess.run([str(SCRIPTS / "rabbitmq.sh"), "start", str(self.directory), str(self.port)],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"rabbitmq.sh failed:\n{proc.stdout}\n{proc.stderr}")


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    import socket

    for _ in range(50):
        first = free_port()
        if first + count > 65535:
            continue
        with contextlib.ExitStack() as stack:
            try:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports")


@contextlib.contextmanager
def private_broker(prefix: str = "stratus-rabbitmq-") -> Iterator[RabbitMQ]:
    """A private RabbitMQ (scripts/rabbitmq.sh: AMQP on PORT, its Erlang distribution and epmd on PORT+1 and
    PORT+2, loopback only), stopped after. A cloud that outlives one test module needs one of its own: queues are
    named by topic alone (``conductor``, ``compute.<host>``), so two clouds on one broker take each other's
    messages."""
    if os.geteuid() != 0 and not os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server"):
        pytest.skip("RabbitMQ needs root to install here (apt-get rabbitmq-server)")
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    port = _free_ports(3)
    broker = RabbitMQ(url=f"rabbit://guest:guest@127.0.0.1:{port}/", directory=directory, port=port)
    try:
        broker.start()
        yield broker
    finally:
        subprocess.run([str(SCRIPTS / "rabbitmq.sh"), "stop", str(directory)], check=False, timeout=120)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQ]:
    """The session's private RabbitMQ, torn down after the session."""
    with private_broker() as broker:
        yield broker


@dataclasses.dataclass(frozen=True)
class Keystone:
    """A running Keystone: its auth URL (``http://127.0.0.1:PORT/v3``) and bootstrap admin (project ``admin``)."""

    auth_url: str
    admin_password: str
    directory: Path

    @property
    def www_authenticate_uri(self) -> str:
        return self.auth_url.removesuffix("/v3")

    def connect(self, username: str = "admin", password: str | None = None, project_name: str = "admin") -> Any:
        """An openstacksdk connection logged in with a password and this auth URL only."""
        import openstack

        return openstack.connect(
            auth_url=self.auth_url, username=username,
            password=self.admin_password if password is None else password, project_name=project_name,
            user_domain_name="Default", project_domain_name="Default", region_name="RegionOne",
            identity_api_version="3", load_yaml_config=False, load_envvars=False)


@pytest.fixture(scope="session")
def keystone() -> Iterator[Keystone]:
    """A real Keystone, the ``keystone`` package from PyPI in a venv of its own (scripts/keystone.sh: SQLite, fernet
    tokens, gunicorn on loopback), bootstrapped, and torn down after the session."""
    python3 = shutil.which("python3")
    if python3 is None or (os.geteuid() != 0 and subprocess.run([python3, "-c", "import ensurepip, venv"],
                                                                capture_output=True).returncode != 0):
        pytest.skip("Keystone installs into a venv of its own: needs python3 with venv and ensurepip (Debian: "
                    "python3-venv, which scripts/keystone.sh installs itself when run as root)")
    directory = Path(tempfile.mkdtemp(prefix="stratus-keystone-"))
    try:
        proc = subprocess.run([str(SCRIPTS / "keystone.sh"), "start", str(directory), str(free_port())],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"keystone.sh failed:\n{proc.stdout}\n{proc.stderr}")
        yield Keystone(auth_url=proc.stdout.strip().splitlines()[-1],
                       admin_password=(directory / "admin-password").read_text().strip(), directory=directory)
    finally:
        subprocess.run([str(SCRIPTS / "keystone.sh"), "stop", str(directory)], check=False, timeout=120)
        shutil.rmtree(directory, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class LibvirtDaemon:
    uri: str
    directory: Path


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stratus"


@pytest.fixture(scope="session")
def libvirt_daemon() -> Iterator[LibvirtDaemon]:
    """A private libvirtd with QEMU (scripts/libvirt.sh), torn down after the session."""
    if os.geteuid() != 0 and not shutil.which("libvirtd"):
        pytest.skip("libvirt needs root to install and start here (apt-get, libvirtd with QEMU as root)")
    directory = Path(tempfile.mkdtemp(prefix="stratus-libvirt-"))
    proc = subprocess.run([str(SCRIPTS / "libvirt.sh"), "start", str(directory)], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"libvirt.sh failed:\n{proc.stdout}\n{proc.stderr}")
    try:
        yield LibvirtDaemon(uri=proc.stdout.strip().splitlines()[-1], directory=directory)
    finally:
        subprocess.run([str(SCRIPTS / "libvirt.sh"), "stop", str(directory)], check=False, timeout=120)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def libvirt_uri(libvirt_daemon: LibvirtDaemon) -> str:
    return libvirt_daemon.uri


@pytest.fixture(scope="session")
def libvirt_pair(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Two libvirt compute hosts on this machine (tests/integration/libvirt_pair.py: a private libvirtd each, with
    its own host UUID and instances_path, and ``stratus compute --host`` each, in a multi-process cloud on a
    RabbitMQ of its own and PostgreSQL), shared by the session's tests of moves between hosts; each test module
    leaves it as it found it (no servers, both services up and enabled). Its broker is its own: the cloud runs
    until the session ends, and on the session's broker it would answer the later modules' calls."""
    if os.geteuid() != 0 and not shutil.which("libvirtd"):
        pytest.skip("libvirt needs root to install and start here (apt-get, libvirtd with QEMU as root)")
    pytest.importorskip("libvirt", reason="libvirt-python is not installed (scripts/libvirt.sh install .venv)")
    from tests.integration.libvirt_pair import libvirt_pair as start_pair

    with private_broker("lvpmq-") as broker, start_pair(broker, postgres_url,
                                                       tmp_path_factory.mktemp("libvirt-pair")) as pair:
        yield pair


@pytest.fixture(scope="session")
def test_guest() -> Path:
    """The test guest's kernel, initramfs and disk (scripts/test-guest.sh), built once and cached: one directory
    per version of the script, so checkouts with different versions on one machine do not rebuild each other's."""
    version = hashlib.sha256((SCRIPTS / "test-guest.sh").read_bytes()).hexdigest()[:12]
    out = _cache_dir() / f"test-guest-{version}"
    proc = subprocess.run([str(SCRIPTS / "test-guest.sh"), str(out)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"test-guest.sh failed:\n{proc.stdout}\n{proc.stderr}")
    return out


@pytest.fixture(scope="session")
def cloud_guest() -> Path:
    """The cloud-init guest's kernel, initramfs, root disk and command line (scripts/cloud-guest.sh: debootstrap
    from this machine's Debian mirror, ~3 minutes once, then cached). Skipped, with the script's reason, when the
    root file system cannot be built here (no root, no debootstrap, the mirror out of reach)."""
    if os.geteuid() != 0 and not shutil.which("debootstrap"):
        pytest.skip("the cloud-init guest's root file system is built with debootstrap as root (apt-get install "
                    "debootstrap, chroot): not root here")
    out = _cache_dir() / "cloud-guest"
    proc = subprocess.run([str(SCRIPTS / "cloud-guest.sh"), str(out)], capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        reason = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        pytest.skip(f"the cloud-init guest's root file system could not be built (scripts/cloud-guest.sh): {reason}")
    return out


@dataclasses.dataclass(frozen=True)
class CephCluster:
    conf: Path  # DIR/ceph.conf: what clients (and Stratus' options) are given
    fsid: str


def _start_ceph(directory: Path) -> CephCluster:
    proc = subprocess.run([str(SCRIPTS / "ceph.sh"), "start", str(directory)], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"ceph.sh failed:\n{proc.stdout}\n{proc.stderr}")
    fsid, conf = proc.stdout.strip().splitlines()[-2:]
    return CephCluster(conf=Path(conf), fsid=fsid)


@pytest.fixture(scope="session")
def ceph_clusters() -> Iterator[tuple[CephCluster, CephCluster]]:
    """Two private single-node Ceph clusters (scripts/ceph.sh): the compute hosts' own, and another one that
    plays "a Ceph that is not this host's". Torn down after the session."""
    if os.geteuid() != 0 and not shutil.which("ceph-mon"):
        pytest.skip("Ceph needs root to install and start here (apt-get, ceph-mon/-osd/-mgr)")
    pytest.importorskip("rbd", reason="the rbd module is not importable (scripts/ceph.sh install .venv)")
    # short paths: the daemons' admin sockets live under DIR and a socket path has at most 107 bytes
    parent = Path(tempfile.mkdtemp(prefix="stratus-ceph-", dir="/tmp"))
    dirs = [parent / "a", parent / "b"]
    try:
        clusters = (_start_ceph(dirs[0]), _start_ceph(dirs[1]))
        yield clusters
    finally:
        for d in dirs:
            subprocess.run([str(SCRIPTS / "ceph.sh"), "stop", str(d)], check=False, timeout=120)
        shutil.rmtree(parent, ignore_errors=True)
