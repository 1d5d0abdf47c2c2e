"""One Ceph cluster as the image store and the RBD disk backend see it: librados/librbd calls, blocking.

Every function here blocks (librbd does) and is meant for a worker thread (``asyncio.to_thread``). A
``Cluster`` keeps one connection for the process, as Nova's ``RBDDriver`` and Glance's store do per call: a
connection costs a monitor round trip and a few threads, an image open much less.

Images in Glance's RBD store are addressed ``rbd://<fsid>/<pool>/<image>/<snapshot>``; an image of the same
cluster (same fsid) can be cloned copy-on-write from that protected snapshot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from stratus import exception

LOG = logging.getLogger(__name__)

SNAPSHOT = "snap"  # the protected snapshot every image of the store has, as Glance's RBD store names it
#: the plain (unprotected) snapshot of a guest's root disk taken before a resize or cold migration grows it, so
#: that a revert rolls the disk back to it (Nova's ``RESIZE_SNAPSHOT_NAME``)
RESIZE_SNAPSHOT = "nova-resize"


class RbdUnavailable(exception.StratusException):
    msg_fmt = "Ceph cluster %(conf)s is unavailable: %(reason)s"
    code = 503


class RbdImageBusy(exception.StratusException):
    msg_fmt = "RBD image %(name)s is in use: %(reason)s"
    code = 409


def _modules() -> tuple[Any, Any]:
    try:
        import rados
        import rbd
    except ImportError as exc:  # pragma: no cover - depends on the host
        raise RbdUnavailable(conf="-", reason=f"python rados/rbd modules missing ({exc}); "
                                              "run scripts/ceph.sh install VENV") from None
    return rados, rbd


@dataclasses.dataclass(frozen=True)
class Location:
    fsid: str
    pool: str
    image: str
    snapshot: str | None

    @property
    def url(self) -> str:
        return f"rbd://{self.fsid}/{self.pool}/{self.image}/{self.snapshot or ''}".rstrip("/")


def parse_location(url: str) -> Location | None:
    """``rbd://fsid/pool/image/snap`` (Glance's form; each part URL-quoted); None for anything else."""
    if not url.startswith("rbd://"):
        return None
    parts = [unquote(p) for p in url[len("rbd://"):].split("/")]
    if len(parts) not in (3, 4) or not all(parts[:3]):
        return None
    return Location(parts[0], parts[1], parts[2], parts[3] if len(parts) == 4 and parts[3] else None)


class Cluster:
    """A process-wide connection to one cluster, reopened after it fails."""

    def __init__(self, conffile: str, user: str | None = None, connect_timeout: int = 10) -> None:
        self.conffile = conffile
        self.user = user or None
        self.connect_timeout = connect_timeout
        self._client: Any = None
        self._fsid: str | None = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        rados, _rbd = _modules()
        with self._lock:
            if self._client is None:
                client = rados.Rados(conffile=self.conffile, rados_id=self.user,
                                     conf={"client_mount_timeout": str(self.connect_timeout)})
                try:
                    client.connect(timeout=self.connect_timeout)
                except rados.Error as exc:
                    client.shutdown()
                    raise RbdUnavailable(conf=self.conffile, reason=str(exc)) from None
                self._client = client
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.shutdown()
                self._client = None

    @contextlib.contextmanager
    def ioctx(self, pool: str) -> Iterator[Any]:
        rados, _rbd = _modules()
        client = self._connect()
        try:
            ioctx = client.open_ioctx(pool)
        except rados.ObjectNotFound:
            raise RbdUnavailable(conf=self.conffile, reason=f"no pool {pool}") from None
        except rados.Error as exc:
            self.close()  # a broken connection: the next call makes a new one
            raise RbdUnavailable(conf=self.conffile, reason=str(exc)) from None
        try:
            yield ioctx
        finally:
            ioctx.close()

    @property
    def fsid(self) -> str:
        if self._fsid is None:
            self._fsid = str(self._connect().get_fsid())
        return self._fsid

    def monitors(self) -> list[tuple[str, str]]:
        """(address, port) of each monitor for libvirt's ``<host>``: msgr1 addresses (qemu's librbd speaks
        both, but a bare host:port other than 3300 means msgr1)."""
        out: list[tuple[str, str]] = []
        raw = str(self._connect().conf_get("mon_host") or "")
        for entry in raw.replace(" ", ",").split(","):  # "[v2:h:p1,v1:h:p2],h2:p3"
            addr = entry.strip().strip("[]")
            if not addr or addr.startswith("v2:"):
                continue
            addr = addr.removeprefix("v1:").split("/")[0]
            host, _, port = addr.rpartition(":")
            out.append((host, port) if host and port.isdigit() else (addr, "6789"))
        return out

    # --- images -------------------------------------------------------------------------------------------
    def exists(self, pool: str, name: str, snapshot: str | None = None) -> bool:
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx:
            try:
                with rbd.Image(ioctx, name, snapshot=snapshot, read_only=True):
                    return True
            except rbd.ImageNotFound:
                return False

    def size(self, pool: str, name: str) -> int:
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx, rbd.Image(ioctx, name, read_only=True) as image:
            return int(image.size())

    def resize(self, pool: str, name: str, size: int) -> None:
        """The image made ``size`` bytes big (``rbd resize``)."""
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx, rbd.Image(ioctx, name) as image:
            image.resize(size)

    def parent(self, pool: str, name: str) -> tuple[str, str, str] | None:
        """(pool, image, snapshot) the image is a clone of; None for a standalone image."""
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx, rbd.Image(ioctx, name, read_only=True) as image:
            try:
                spec = image.get_parent_image_spec()
            except rbd.ImageNotFound:
                return None
            return str(spec["pool_name"]), str(spec["image_name"]), str(spec["snap_name"])

    def children(self, pool: str, name: str, snapshot: str = SNAPSHOT) -> list[tuple[str, str]]:
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx, rbd.Image(ioctx, name, snapshot=snapshot, read_only=True) as image:
            return [(str(c["pool"]), str(c["image"])) for c in image.list_children2()]

    def create(self, pool: str, name: str, size: int) -> None:
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx:
            rbd.RBD().create(ioctx, name, size, old_format=False, features=rbd.RBD_FEATURE_LAYERING)

    def write_stream(self, pool: str, name: str) -> RbdWriter:
        return RbdWriter(self, pool, name)

    def read(self, pool: str, name: str, snapshot: str | None = SNAPSHOT) -> RbdReader:
        return RbdReader(self, pool, name, snapshot)

    def snapshot_and_protect(self, pool: str, name: str, snapshot: str = SNAPSHOT) -> None:
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx, rbd.Image(ioctx, name) as image:
            image.create_snap(snapshot)
            image.protect_snap(snapshot)

    def snapshots(self, pool: str, name: str) -> list[str]:
        """The names of the image's snapshots; [] when there is no such image."""
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx:
            try:
                with rbd.Image(ioctx, name, read_only=True) as image:
                    return [str(snap["name"]) for snap in image.list_snaps()]
            except rbd.ImageNotFound:
                return []

    def create_snapshot(self, pool: str, name: str, snapshot: str) -> bool:
        """A plain (unprotected) snapshot of the image; False, and nothing changed, if it has one of that name
        already (the first one is the one to go back to)."""
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx, rbd.Image(ioctx, name) as image:
            if snapshot in {str(snap["name"]) for snap in image.list_snaps()}:
                return False
            image.create_snap(snapshot)
            return True

    def rollback(self, pool: str, name: str, snapshot: str) -> bool:
        """The image's contents and size as they were at ``snapshot`` (``rbd snap rollback``; the image must
        not be in use); False, and nothing changed, when the image or the snapshot is not there."""
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx:
            try:
                with rbd.Image(ioctx, name) as image:
                    if snapshot not in {str(snap["name"]) for snap in image.list_snaps()}:
                        return False
                    image.rollback_to_snap(snapshot)
                    return True
            except rbd.ImageNotFound:
                return False

    def remove_snapshot(self, pool: str, name: str, snapshot: str) -> bool:
        """The snapshot removed (unprotected first if it is protected); False when the image or the snapshot
        is not there."""
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx:
            try:
                with rbd.Image(ioctx, name) as image:
                    if image.is_protected_snap(snapshot):
                        image.unprotect_snap(snapshot)
                    image.remove_snap(snapshot)
                    return True
            except rbd.ImageNotFound:
                return False

    def clone(self, source: Location, pool: str, name: str, size: int = 0) -> None:
        """A copy-on-write clone of ``source`` (a protected snapshot) as ``pool/name``, grown to ``size``."""
        _rados, rbd = _modules()
        assert source.snapshot
        with self.ioctx(source.pool) as src, self.ioctx(pool) as dst:
            rbd.RBD().clone(src, source.image, source.snapshot, dst, name, features=rbd.RBD_FEATURE_LAYERING)
            if size:
                with rbd.Image(dst, name) as image:
                    if image.size() < size:
                        image.resize(size)

    def rename(self, pool: str, old: str, new: str) -> bool:
        """Rename; False (and nothing changed) if ``new`` exists already."""
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx:
            try:
                rbd.RBD().rename(ioctx, old, new)
            except rbd.ImageExists:
                return False
            return True

    def flatten(self, pool: str, name: str) -> None:
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx, rbd.Image(ioctx, name) as image:
            image.flatten()

    def remove(self, pool: str, name: str, attempts: int = 10, interval: float | None = None) -> bool:
        """Remove an image with its snapshots (unprotecting them; among them the ``nova-resize`` snapshot of a
        server deleted while its resize waited for a confirm, which Nova's ``_destroy_volume`` removes on
        ``ImageHasSnapshots``); False if it did not exist. An image with clones of a snapshot is
        ``RbdImageBusy``. A watcher that is going away (a guest's qemu just destroyed)
        is waited for, as Nova's ``RBDDriver.remove_image`` retries: ``attempts`` tries, ``interval`` seconds
        apart (None: briefly, 0.2 s more each time)."""
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx:
            try:
                with rbd.Image(ioctx, name) as image:
                    for snap in list(image.list_snaps()):
                        if image.is_protected_snap(snap["name"]):
                            if self._has_children(image, snap["name"]):
                                raise RbdImageBusy(name=f"{pool}/{name}", reason=f"snapshot {snap['name']} has clones")
                            image.unprotect_snap(snap["name"])
                        image.remove_snap(snap["name"])
            except rbd.ImageNotFound:
                return False
            for attempt in range(attempts):
                try:
                    rbd.RBD().remove(ioctx, name)
                    return True
                except rbd.ImageNotFound:
                    return False
                except rbd.ImageBusy:
                    if attempt == attempts - 1:
                        raise RbdImageBusy(name=f"{pool}/{name}", reason="it has watchers") from None
                    time.sleep(0.2 * (attempt + 1) if interval is None else interval)
                except rbd.ImageHasSnapshots:
                    raise RbdImageBusy(name=f"{pool}/{name}", reason="it has snapshots") from None
        return False

    @staticmethod
    def _has_children(image: Any, snapshot: str) -> bool:
        image.set_snap(snapshot)
        try:
            return bool(list(image.list_children2()))
        finally:
            image.set_snap(None)

    def list(self, pool: str) -> list[str]:
        _rados, rbd = _modules()
        with self.ioctx(pool) as ioctx:
            return [str(n) for n in rbd.RBD().list(ioctx)]


class RbdWriter:
    """Sequential writes into a new image, grown as data arrives (the size of an upload is not known)."""

    GROW = 64 << 20

    def __init__(self, cluster: Cluster, pool: str, name: str) -> None:
        self.cluster, self.pool, self.name = cluster, pool, name
        self.offset = 0
        self._ioctx_cm: Any = None
        self._image: Any = None
        self._capacity = 0

    def open(self) -> None:
        _rados, rbd = _modules()
        self.cluster.create(self.pool, self.name, 0)
        self._ioctx_cm = self.cluster.ioctx(self.pool)
        ioctx = self._ioctx_cm.__enter__()
        self._image = rbd.Image(ioctx, self.name)

    def write(self, data: bytes) -> None:
        end = self.offset + len(data)
        if end > self._capacity:
            self._capacity = max(end, self._capacity + self.GROW)
            self._image.resize(self._capacity)
        self._image.write(data, self.offset)
        self.offset = end

    def finish(self) -> None:
        """Exact size, flushed, then the protected snapshot clones are made from."""
        self._image.resize(self.offset)
        self._image.flush()
        self._image.create_snap(SNAPSHOT)
        self._image.protect_snap(SNAPSHOT)
        self.close()

    def close(self) -> None:
        if self._image is not None:
            self._image.close()
            self._image = None
        if self._ioctx_cm is not None:
            self._ioctx_cm.__exit__(None, None, None)
            self._ioctx_cm = None


class RbdReader:
    """A file-like, sequential read of an image (at a snapshot)."""

    def __init__(self, cluster: Cluster, pool: str, name: str, snapshot: str | None) -> None:
        _rados, rbd = _modules()
        self._ioctx_cm = cluster.ioctx(pool)
        ioctx = self._ioctx_cm.__enter__()
        try:
            self._image = rbd.Image(ioctx, name, snapshot=snapshot, read_only=True)
        except rbd.ImageNotFound:
            self._ioctx_cm.__exit__(None, None, None)
            raise FileNotFoundError(f"rbd {pool}/{name}@{snapshot}") from None
        self._size = int(self._image.size())
        self.size = self._size
        self._offset = 0
        self.closed = False

    def read(self, n: int) -> bytes:
        n = min(n, self._size - self._offset)
        if n <= 0:
            return b""
        data = bytes(self._image.read(self._offset, n))
        self._offset += len(data)
        return data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._image.close()
            self._ioctx_cm.__exit__(None, None, None)


_CLUSTERS: dict[tuple[str, str | None], Cluster] = {}
_CLUSTERS_LOCK = threading.Lock()


def cluster(conffile: str, user: str | None = None) -> Cluster:
    """The process's connection to the cluster of ``conffile`` as ``user`` (one per pair)."""
    key = (conffile, user or None)
    with _CLUSTERS_LOCK:
        found = _CLUSTERS.get(key)
        if found is None:
            found = _CLUSTERS[key] = Cluster(conffile, user)
        return found
