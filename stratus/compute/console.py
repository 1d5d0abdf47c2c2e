"""What a caller reads from this host's hypervisor: a guest's console log and diagnostics, the host's uptime (RPC
calls)."""

from __future__ import annotations

from typing import Any

from stratus import exception
from stratus.compute.host import ComputeHost
from stratus.compute.instance_action import require
from stratus.compute.rpcapi import NotSupportedByDriver
from stratus.db import instances


async def get_console_output(host: ComputeHost, context: dict[str, Any], instance_uuid: str,
                             tail_length: int | None = None) -> str:
    """The guest's console log, its last ``tail_length`` lines (an RPC call, as Nova's)."""
    async with host.db.read() as conn:
        row = await instances.get_plain(conn, instance_uuid)
    if row is None or row["deleted"]:
        raise exception.InstanceNotFound(instance_id=instance_uuid)
    require(host.driver.capabilities.supports_console_output)
    try:
        output = await host.driver.get_console_output(host.driver_instance(row))
    except NotImplementedError:
        raise NotSupportedByDriver() from None
    return tail(output, tail_length).decode("ascii", "replace")


async def get_instance_diagnostics(host: ComputeHost, context: dict[str, Any], instance_uuid: str
                                   ) -> dict[str, Any]:
    """The guest's diagnostics in Nova's standard form (2.48), as the driver reports them (an RPC call)."""
    async with host.db.read() as conn:
        row = await instances.get_plain(conn, instance_uuid)
    if row is None or row["deleted"]:
        raise exception.InstanceNotFound(instance_id=instance_uuid)
    try:
        return await host.driver.get_instance_diagnostics(host.driver_instance(row))
    except NotImplementedError:
        raise NotSupportedByDriver() from None


async def get_host_uptime(host: ComputeHost, context: dict[str, Any]) -> str:
    """The host's ``uptime`` output (an RPC call, as Nova's); a driver without it is the API's 501."""
    try:
        return await host.driver.get_host_uptime()
    except NotImplementedError:
        raise NotSupportedByDriver() from None


def tail(output: bytes, length: int | None) -> bytes:
    """Nova's ``_tail_log``: the last ``length`` newline-separated pieces (None or -1: all of it, as the API's
    schema documents -1; 0: nothing)."""
    if length is None or length == -1:
        return output
    if length <= 0:
        return b""
    return b"\n".join(output.split(b"\n")[-length:])
