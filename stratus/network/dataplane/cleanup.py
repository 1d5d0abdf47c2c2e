"""Removing the data plane from a machine (Neutron's ``neutron-netns-cleanup``): every dnsmasq of a ``qdhcp-``
namespace, then the ``qdhcp-``, ``qrouter-`` and ``stratus-host-`` namespaces (their devices go with them),
and the fabric. For a machine taken out of service, or after tests; the agents would make it all again from the
server's records. A libvirtd still running in a host namespace keeps that namespace alive, nameless and off the
fabric: its guests lose every network, so stop them first."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

from stratus.network.dataplane import fabric, names
from stratus.network.dataplane import netns as nsutil

LOG = logging.getLogger(__name__)
PREFIXES = (names.DHCP_NAMESPACE_PREFIX, names.ROUTER_NAMESPACE_PREFIX, names.HOST_NAMESPACE_PREFIX)


def _processes_in(namespace: str) -> list[int]:
    """Pids of the processes whose network namespace is ``namespace`` (dnsmasq, a metadata proxy)."""
    try:
        target = os.stat(os.path.join(nsutil.NETNS_DIR, namespace))
    except FileNotFoundError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            pids.append(int(entry))
    return pids


def remove_all(only: Callable[[str], bool] = lambda name: True) -> list[str]:
    """Remove the Stratus namespaces ``only`` accepts (by name) and the processes in the qdhcp/qrouter ones;
    the fabric too once no host is left on it. Returns what was removed, in order."""
    removed = []
    for namespace in nsutil.list_namespaces():
        if not namespace.startswith(PREFIXES) or not only(namespace):
            continue
        if not namespace.startswith(names.HOST_NAMESPACE_PREFIX):   # libvirtd and QEMU are not ours to kill
            for pid in _processes_in(namespace):
                LOG.info("stopping process %d in %s", pid, namespace)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if namespace.startswith(names.HOST_NAMESPACE_PREFIX):
            fabric.leave(namespace[len(names.HOST_NAMESPACE_PREFIX):])
        else:
            nsutil.remove(namespace)
        removed.append(namespace)
    if only(names.FABRIC_NAMESPACE) and nsutil.exists(names.FABRIC_NAMESPACE) and fabric.remove_fabric_if_unused():
        removed.append(names.FABRIC_NAMESPACE)
    return removed
