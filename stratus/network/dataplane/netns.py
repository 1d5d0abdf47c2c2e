"""Network namespaces and netlink inside them (pyroute2), and running a program inside one.

Every call names its namespace: nothing here ever opens a netlink socket on the host's own namespace.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

import pyroute2
from pyroute2 import NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

# pyroute2 opens a socket in a namespace from a forked child, which it stops with SIGTERM. The child inherits
# the service's signal handlers and asyncio's wakeup fd, so without this each socket looked to the service's
# event loop like a SIGTERM of its own (the all-in-one shut down cleanly at its first namespace). With it the
# child takes SIGTERM's default action.
pyroute2.config.disable_mp_signal = True

NETNS_DIR = "/var/run/netns"
ENOENT = 2
EEXIST = 17
ENODEV = 19


class CommandFailed(RuntimeError):
    """A program run inside a namespace exited non-zero; its stderr is the message."""


def exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def list_namespaces(prefix: str = "") -> list[str]:
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix))


def ensure(name: str) -> None:
    """Create the namespace if missing and bring its loopback up (idempotent)."""
    if not exists(name):
        with contextlib.suppress(FileExistsError):
            netns.create(name)
    with NetNS(name) as ns:
        lo = ns.link_lookup(ifname="lo")
        if lo:
            ns.link("set", index=lo[0], state="up")


def remove(name: str) -> None:
    """Delete the namespace (its devices go with it; a veth's peer elsewhere goes too). Fine if missing."""
    if exists(name):
        with contextlib.suppress(FileNotFoundError):
            netns.remove(name)


@contextlib.contextmanager
def ipr(name: str) -> Iterator[NetNS]:
    """A netlink socket inside namespace ``name`` (which must exist)."""
    with NetNS(name) as ns:
        yield ns


def link_index(ns: NetNS, ifname: str) -> int | None:
    found = ns.link_lookup(ifname=ifname)
    return found[0] if found else None


def link_kind(ns: NetNS, index: int) -> str | None:
    links = ns.get_links(index)
    return links[0].get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") if links else None


def links(ns: NetNS) -> list[dict[str, Any]]:
    """Every link of the namespace as {ifname, index, kind, master, alias, address, state}."""
    out = []
    for link in ns.get_links():
        out.append({
            "ifname": link.get("ifname"), "index": link["index"],
            "kind": link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"), "master": link.get("master"),
            "alias": link.get("ifalias"), "address": link.get("address"), "state": link.get("operstate"),
        })
    return out


def delete_link(ns: NetNS, ifname: str) -> bool:
    index = link_index(ns, ifname)
    if index is None:
        return False
    try:
        ns.link("del", index=index)
    except NetlinkError as exc:
        if exc.code != ENODEV:
            raise
    return True


def set_addresses(ns: NetNS, ifname: str, cidrs: Sequence[str]) -> None:
    """Make the IPv4/IPv6 (non link-local) addresses of ``ifname`` exactly ``cidrs`` (``a.b.c.d/len``)."""
    index = link_index(ns, ifname)
    if index is None:
        raise CommandFailed(f"no device {ifname}")
    want = {(c.split("/")[0], int(c.split("/")[1])) for c in cidrs}
    have = set()
    for addr in ns.get_addr(index=index):
        address = addr.get("IFA_ADDRESS")
        if address is None or address.startswith("fe80:"):
            continue
        have.add((address, addr["prefixlen"]))
    for address, plen in have - want:
        ns.addr("del", index=index, address=address, prefixlen=plen)
    for address, plen in want - have:
        try:
            ns.addr("add", index=index, address=address, prefixlen=plen)
        except NetlinkError as exc:
            if exc.code != EEXIST:
                raise


def run(name: str, argv: Sequence[str], *, input: str | None = None, check: bool = True,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside namespace ``name`` (``ip netns exec``, which also gives it that namespace's /sys)."""
    proc = subprocess.run(["ip", "netns", "exec", name, *argv], input=input, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} in {name}: {proc.stderr.strip() or proc.returncode}")
    return proc


def sysctl(name: str, key: str, value: str) -> None:
    """Set a per-namespace sysctl (``net.ipv4.ip_forward``): /proc/sys/net shows the writer's namespace."""
    path = "/proc/sys/" + key.replace(".", "/")
    run(name, ["sh", "-c", f'echo "$1" > {path}', "sysctl", value])
