"""Two libvirt compute hosts on this machine (tests/integration/libvirt_pair.py: a libvirtd each, with its own host
UUID and its own instances_path; no shared file system), the ground for moves between hosts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.integration.libvirt_pair import LibvirtPair

pytestmark = pytest.mark.integration
libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (scripts/libvirt.sh install .venv)")


def test_the_pair_is_two_libvirt_hosts(libvirt_pair: LibvirtPair) -> None:
    """Two daemons libvirt tells apart (host UUIDs), two hypervisors up, two instance directories."""
    a, b = libvirt_pair.hosts
    uuids = []
    for host in (a, b):
        with host.connect() as conn:
            uuids.append(ET.fromstring(conn.getCapabilities()).findtext("host/uuid"))
    assert uuids == [a.host_uuid, b.host_uuid] and uuids[0] != uuids[1]
    hypervisors = libvirt_pair.cluster.api.get("/os-hypervisors/detail").json()["hypervisors"]
    assert sorted(h["hypervisor_hostname"] for h in hypervisors) == sorted([a.name, b.name])
    assert all(h["hypervisor_type"] == "QEMU" and h["state"] == "up" for h in hypervisors)
    assert a.instances_path != b.instances_path
