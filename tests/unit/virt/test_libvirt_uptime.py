"""The libvirt driver's ``get_host_uptime``: what ``uptime`` prints on this host, as Nova's driver returns it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stratus import conf as conf_mod

pytest.importorskip("libvirt", reason="libvirt-python is not installed (scripts/libvirt.sh install .venv)")


async def _uptime() -> str:
    proc = await asyncio.create_subprocess_exec("env", "LANG=C", "uptime", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return out.decode()


def _middle(line: str) -> str:
    """How long up and how many users: what does not move between two calls (unless a minute ticks)."""
    return line.split(" up ", 1)[1].split("load average")[0]


async def test_host_uptime_is_the_hosts_uptime_output(tmp_path: Path) -> None:
    from stratus.virt.libvirt.driver import LibvirtDriver

    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)},
                                    "libvirt": {"virt_type": "qemu", "connection_uri": "test:///default"}})
    driver = LibvirtDriver(conf, "h1")  # never connected: the host answers, not libvirtd
    before = await _uptime()
    got = await driver.get_host_uptime()
    after = await _uptime()
    assert got.endswith("\n") and " up " in got and "load average: " in got  # the raw output, as Nova's
    assert _middle(got) in {_middle(before), _middle(after)}
