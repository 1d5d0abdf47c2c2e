"""The libvirt driver's diagnostics and NMI on libvirt's test driver (in process, a running domain with a disk
and a NIC): the body is what tempest's 2.48 schema accepts, with the domain's own counters."""

from __future__ import annotations

import datetime
from pathlib import Path

import jsonschema
import pytest
from tempest.lib.api_schema.response.compute.v2_48 import servers as schema_248

from stratus import conf as conf_mod
from stratus.utils import utcnow

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")

from stratus.virt.libvirt.driver import LibvirtDriver  # noqa: E402


def _driver(tmp_path: Path) -> LibvirtDriver:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "libvirt": {"virt_type": "qemu", "connection_uri": "test:///default"}})
    return LibvirtDriver(conf, "a")


async def test_diagnostics_are_the_domains_counters_in_novas_standard_form(tmp_path: Path) -> None:
    dom = libvirt.open("test:///default").lookupByName("test")
    launched = utcnow() - datetime.timedelta(seconds=90)
    diag = await _driver(tmp_path).get_instance_diagnostics(
        {"uuid": dom.UUIDString(), "name": "test", "launched_at": launched, "config_drive": "True"})
    jsonschema.validate(diag, schema_248.show_server_diagnostics["response_body"])
    assert diag["state"] == "running" and diag["driver"] == "libvirt" and diag["hypervisor"] == "qemu"
    assert diag["config_drive"] is True and 90 <= diag["uptime"] < 120
    info = dom.info()
    assert diag["num_cpus"] == info[3] == len(diag["cpu_details"])
    assert diag["memory_details"] == {"maximum": info[1] // 1024, "used": info[2] // 1024}
    read_req, read_bytes, *_ = dom.blockStats("vda")  # the test driver's counters grow with the clock
    assert diag["num_disks"] == 1 and 0 < diag["disk_details"][0]["read_bytes"] <= read_bytes
    assert 0 < diag["disk_details"][0]["read_requests"] <= read_req
    [nic] = diag["nic_details"]
    assert nic["mac_address"] == "aa:bb:cc:dd:ee:ff" and nic["rx_rate"] is None


async def test_diagnostics_of_a_guest_that_is_not_there(tmp_path: Path) -> None:
    from stratus import exception

    with pytest.raises(exception.InstanceNotFound):
        await _driver(tmp_path).get_instance_diagnostics({"uuid": "0b8e3c52-6a57-4a4e-8a8e-4d3f0b6a9c11"})


async def test_a_crash_dump_is_an_nmi(tmp_path: Path) -> None:
    dom = libvirt.open("test:///default").lookupByName("test")
    await _driver(tmp_path).trigger_crash_dump({"uuid": dom.UUIDString(), "name": "test"})
