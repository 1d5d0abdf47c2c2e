"""Where the embedded image store keeps image data: a local directory, or a Ceph pool (Glance's file and rbd
stores), one or several at once (Glance's multi-store).

Configured as Glance's multi-store is: ``[image_store] enabled_backends = NAME:TYPE, …`` and
``default_backend = NAME``; each store's own options are in a section named after it (``[NAME]
filesystem_store_datadir`` for a file store; ``rbd_store_pool``, ``rbd_store_ceph_conf``, ``rbd_store_user`` for
an rbd store). Without ``enabled_backends`` there is one file store, ``file``, at ``[image_store]
filesystem_store_datadir``.

Every method blocks (file and librbd I/O): callers run them in worker threads.
"""

from __future__ import annotations

import abc
import contextlib
import os
from typing import IO, Any, Protocol

from oslo_config import cfg

from stratus.conf import GROUPS
from stratus.db.engine import PRIVATE_FILE, make_private_dir
from stratus.image import rbd

FILE_STORE_OPTS = [
    cfg.StrOpt("filesystem_store_datadir", default=None, help="Directory of this store's image files."),
]
RBD_STORE_OPTS = [
    cfg.StrOpt("rbd_store_pool", default="images", help="Ceph pool of this store's images."),
    cfg.StrOpt("rbd_store_ceph_conf", default="/etc/ceph/ceph.conf", help="Ceph configuration file."),
    cfg.StrOpt("rbd_store_user", default=None, help="Ceph client name (cephx); unset: the default client."),
]
TYPES = ("file", "rbd")


class Sink(Protocol):
    """One upload's destination: opened, written in order, then finished (complete) or discarded."""

    def open(self) -> None: ...
    def write(self, data: bytes) -> None: ...
    def finish(self) -> None: ...
    def discard(self) -> None: ...


class Store(abc.ABC):
    name: str
    kind: str
    description: str

    @abc.abstractmethod
    def begin(self, image_id: str, token: str) -> tuple[str, Sink]:
        """The URL the image's data will have here, and where to write it."""

    @abc.abstractmethod
    def open(self, url: str) -> IO[bytes] | Any:
        """The data at ``url`` for reading (``read(n)``, ``close()``); ``FileNotFoundError`` if gone."""

    @abc.abstractmethod
    def remove(self, url: str) -> None:
        """Remove the data at ``url`` and any partial upload of it; missing data is fine."""

    def check_removable(self, url: str) -> None:
        """Raise if the data cannot be removed now (an RBD image with clones)."""

    def owns(self, url: str) -> bool:
        """Whether ``url`` is data of this store."""
        return False


class _FileSink:
    def __init__(self, path: str) -> None:
        self.path = path
        self.part = path + ".part"
        self._file: IO[bytes] | None = None

    def open(self) -> None:
        make_private_dir(os.path.dirname(self.path))
        # owner-only, as the database: a private image's data is no other local user's to read
        self._file = os.fdopen(os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE), "wb")

    def write(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)

    def finish(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.part, self.path)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
        remove_file(self.path)


def remove_file(path: str) -> None:
    for candidate in (path, path + ".part"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(candidate)


class FileStore(Store):
    kind = "file"

    def __init__(self, name: str, datadir: str) -> None:
        self.name = name
        self.datadir = os.path.abspath(datadir)
        self.description = f"files under {self.datadir}"

    def begin(self, image_id: str, token: str) -> tuple[str, Sink]:
        path = os.path.join(self.datadir, f"{image_id}.{token}")
        return "file://" + path, _FileSink(path)

    def open(self, url: str) -> IO[bytes]:
        return open(_path_of(url), "rb")

    def remove(self, url: str) -> None:
        remove_file(_path_of(url))

    def owns(self, url: str) -> bool:
        return url.startswith("file://")


def _path_of(url: str) -> str:
    return url[len("file://"):] if url.startswith("file://") else url


class _RbdSink:
    def __init__(self, cluster: rbd.Cluster, pool: str, name: str) -> None:
        self.cluster, self.pool, self.name = cluster, pool, name
        self._writer: rbd.RbdWriter | None = None

    def open(self) -> None:
        self._writer = self.cluster.write_stream(self.pool, self.name)
        self._writer.open()

    def write(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    def finish(self) -> None:
        assert self._writer is not None
        self._writer.finish()

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self.cluster.remove(self.pool, self.name)


class RbdStore(Store):
    """Glance's RBD store: an image is an RBD image named by its id with a protected snapshot ``snap``; its
    location, ``rbd://<fsid>/<pool>/<id>/snap``, lets a compute host of the same cluster clone it."""

    kind = "rbd"

    def __init__(self, name: str, conffile: str, pool: str, user: str | None = None) -> None:
        self.name = name
        self.cluster = rbd.cluster(conffile, user)
        self.pool = pool
        self.description = f"RBD pool {pool} of the Ceph cluster of {conffile}"

    def begin(self, image_id: str, token: str) -> tuple[str, Sink]:
        location = rbd.Location(self.cluster.fsid, self.pool, image_id, rbd.SNAPSHOT)
        return location.url, _RbdSink(self.cluster, self.pool, image_id)

    def _location(self, url: str) -> rbd.Location:
        location = rbd.parse_location(url)
        if location is None:
            raise ValueError(f"not an RBD location: {url}")
        return location

    def open(self, url: str) -> rbd.RbdReader:
        location = self._location(url)
        return self.cluster.read(location.pool, location.image, location.snapshot)

    def check_removable(self, url: str) -> None:
        location = self._location(url)
        if location.snapshot and self.cluster.exists(location.pool, location.image, location.snapshot):
            children = self.cluster.children(location.pool, location.image, location.snapshot)
            if children:
                raise rbd.RbdImageBusy(name=f"{location.pool}/{location.image}",
                                       reason=f"{len(children)} clone(s) of it exist (e.g. {'/'.join(children[0])})")

    def remove(self, url: str) -> None:
        location = self._location(url)
        self.cluster.remove(location.pool, location.image)

    def owns(self, url: str) -> bool:
        location = rbd.parse_location(url)
        return location is not None and location.pool == self.pool and location.fsid == self.cluster.fsid


def register_opts(conf: cfg.ConfigOpts) -> list[tuple[str, str]]:
    """Register each enabled store's section; returns (name, type) in configured order."""
    backends: list[tuple[str, str]] = []
    for entry in conf.image_store.enabled_backends or []:
        name, _, kind = entry.partition(":")
        name, kind = name.strip(), kind.strip()
        if not name or kind not in TYPES:
            raise ValueError(f"[image_store] enabled_backends: {entry!r} is not NAME:TYPE with TYPE one of "
                             f"{', '.join(TYPES)}")
        if name in GROUPS or name in (n for n, _ in backends):
            raise ValueError(f"[image_store] enabled_backends: store name {name!r} is taken (a store or a "
                             "section Stratus uses)")
        conf.register_opts(FILE_STORE_OPTS if kind == "file" else RBD_STORE_OPTS, group=name)
        backends.append((name, kind))
    return backends


def stores_from_conf(conf: cfg.ConfigOpts) -> tuple[dict[str, Store], str]:
    """The configured stores by name, and the default store's name."""
    default_dir = conf.image_store.filesystem_store_datadir or os.path.join(conf.state_path, "images")
    backends = register_opts(conf)
    if not backends:
        return {"file": FileStore("file", default_dir)}, "file"
    stores: dict[str, Store] = {}
    for name, kind in backends:
        section = conf[name]
        if kind == "file":
            stores[name] = FileStore(name, section.filesystem_store_datadir or os.path.join(default_dir, name))
        else:
            stores[name] = RbdStore(name, section.rbd_store_ceph_conf, section.rbd_store_pool,
                                    section.rbd_store_user)
    default = conf.image_store.default_backend or backends[0][0]
    if default not in stores:
        raise ValueError(f"[image_store] default_backend {default!r} is not in enabled_backends")
    return stores, default
