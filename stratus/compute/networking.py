"""The network steps of a compute host's flows (Nova's ``_build_networks_for_instance``, ``_try_deallocate_network``,
``external_instance_event``, ``attach_interface``/``detach_interface``), through Nova's network API
(stratus/network/neutron.py); each is a no-op without a Networking service.

The instance info cache is the compute's record of the ports: written after each change, read by the views, the
metadata service and the next flow (a reschedule finds its ports there and re-binds them to the new host).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from stratus import exception
from stratus.compute.instance_events import VIF_PLUGGED, VirtualInterfaceCreateException
from stratus.db import info_cache, instances
from stratus.network import neutron
from stratus.network.neutron_client import NeutronUnavailable

if TYPE_CHECKING:
    from stratus.compute.host import ComputeHost
    from stratus.db.engine import Database

LOG = logging.getLogger(__name__)

#: network errors no other host could fix (Nova aborts on them): plugging that never completed
NOT_RESCHEDULABLE = (VirtualInterfaceCreateException,)


async def build_networks(manager: ComputeHost, context: dict[str, Any], instance: dict[str, Any],
                         request_spec: dict[str, Any], cached: list[dict[str, Any]] | None = None
                         ) -> list[dict[str, Any]]:
    """The ports of a build, bound to this host, as network info (also saved in the info cache). A build
    rescheduled here finds the ports its last host made in the cache and binds them here instead (``cached``: the
    cache as the caller read it in its own transaction; None, read here).

    As in Nova, a port another host could bind (``binding_failed`` here: no live agent) reschedules; any other
    failure is Nova's ``Failed to allocate the network(s), not rescheduling.`` (the cause in the fault's
    details)."""
    try:
        return await _build_networks(manager, context, instance, request_spec, cached)
    except (neutron.PortBindingFailed, exception.InstanceNotFound):
        raise
    except Exception as exc:
        LOG.warning("failed to allocate the network(s) of %s: %s", instance["uuid"], exc)
        raise exception.BuildAbortException(instance_uuid=instance["uuid"],
                                            reason="Failed to allocate the network(s), not rescheduling.",
                                            details=str(exc)) from exc


async def _build_networks(manager: ComputeHost, context: dict[str, Any], instance: dict[str, Any],
                          request_spec: dict[str, Any], cached: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    network = manager.network
    if network is None:
        return []
    uuid = instance["uuid"]
    manager.instance_events.collect(uuid)  # before any port is bound: the flow stops collecting at its end
    if cached is None:
        async with manager.db.read() as conn:
            cached = await info_cache.get(conn, uuid)
    if cached:
        await network.setup_instance_network_on_host(context, instance, manager.host)
        network_info = await network.get_instance_nw_info(context, instance, cached)
    else:
        network_info = await network.allocate_for_instance(
            context, instance, request_spec.get("requested_networks"),
            list(request_spec.get("security_group_names") or []), manager.host)
    if network_info or cached:  # a build without ports (networks: none) leaves the empty cache it was created with
        async with manager.db.write() as conn:
            await info_cache.save(conn, uuid, network_info)
    return network_info


async def bind_here(manager: ComputeHost, context: dict[str, Any], instance: dict[str, Any]
                    ) -> list[dict[str, Any]]:
    """The instance's ports bound to this host and its network info refreshed from them, for a guest that comes
    up here after living elsewhere (a resize or migration's destination, a revert back on the source, the end of
    a live migration, an evacuation, an unshelve): Nova's ``setup_instance_network_on_host`` /
    ``migrate_instance_finish``. Nothing without a Networking service."""
    network = manager.network
    if network is None:
        return []
    async with manager.db.read() as conn:
        cached = await info_cache.get(conn, instance["uuid"])
    if not cached:
        return []
    await network.migrate_instance_finish(context, instance, manager.host)
    network_info = await network.get_instance_nw_info(context, instance, cached)
    async with manager.db.write() as conn:
        await info_cache.save(conn, instance["uuid"], network_info)
    return network_info


async def wait_for_vif_plugged(manager: ComputeHost, instance: dict[str, Any],
                               network_info: list[dict[str, Any]]) -> None:
    """Wait for ``network-vif-plugged`` of each port not active yet, as Nova's libvirt driver does: up to ``[DEFAULT]
    vif_plugging_timeout``; past it the build fails when ``vif_plugging_is_fatal``, else goes on."""
    timeout = manager.conf.vif_plugging_timeout
    expected = [(VIF_PLUGGED, vif["id"]) for vif in network_info if not vif.get("active")]
    if not timeout or not expected:
        return
    collector = manager.instance_events.collect(instance["uuid"])
    try:
        await collector.wait(expected, timeout)
    except TimeoutError:
        if manager.conf.vif_plugging_is_fatal:
            LOG.warning("timeout waiting for %s of %s", ", ".join(f"{n}:{t}" for n, t in expected),
                        instance["uuid"])
            raise VirtualInterfaceCreateException(
                details=f"no network-vif-plugged within {timeout} s for ports "
                        f"{', '.join(t or '' for _, t in expected)}") from None
        LOG.warning("timeout waiting for vif plugging of %s; going on (vif_plugging_is_fatal is False)",
                    instance["uuid"])


async def deallocate(manager: ComputeHost, context: dict[str, Any], instance: dict[str, Any],
                     cached: list[dict[str, Any]] | None = None) -> None:
    """The instance's ports released (deleted, or unbound when the user brought them) and the cache emptied;
    failures are logged, never raised: the flow that calls this is cleaning up already. ``cached``: the info cache
    as the caller just read it (else read here). The Networking service is asked even with an empty cache, as
    Nova does (a port may carry the instance's id without being in the cache yet); an empty cache is left as it
    is, not written again."""
    network = manager.network
    if network is None:
        return
    if cached is None:
        cached = await cached_network_info(manager, instance["uuid"])
    try:
        await network.deallocate_for_instance(context, instance, cached)
    except Exception:
        LOG.exception("ports of %s could not be released", instance["uuid"])
        return
    if cached:
        async with manager.db.write() as conn:
            await info_cache.save(conn, instance["uuid"], [])


class PortOwner(Protocol):
    """What releasing a failed build's ports needs: a compute host, or a conductor whose recovery pass timed out a
    build no host took (after a reschedule its ports, made by the first host, are still there)."""

    db: Database
    network: neutron.API | None


#: seconds between tries to release a failed build's ports while the Networking service cannot be reached (a host
#: that starts before it, as the all-in-one's compute does): about two minutes in all
RELEASE_RETRY_DELAYS = (0.5, 1, 2, 4, 8, 16, 30, 60)


async def release_failed_build(manager: PortOwner, context: dict[str, Any], instance_uuid: str,
                               retry_delays: tuple[float, ...] = RELEASE_RETRY_DELAYS) -> None:
    """The ports of a build that a timeout or recovery path put in ERROR (``[DEFAULT] instance_build_timeout``,
    a build interrupted by a restart of this host), released as for a failed build: deleted, and those the user
    brought unbound and kept. The build itself may still be running, stuck before its cache was written, so the
    ports its request named count as the user's too; if it carries on, its next step finds the instance no longer
    building and releases what it made since. Run in the background (:meth:`ComputeHost.dispatch`): while the
    Networking service cannot be reached it is tried again for a while (``retry_delays``; none when a flow waits
    for it); other failures are logged, never raised, as :func:`deallocate`'s. Also Nova's conductor's
    ``_cleanup_allocated_networks``, for a build that ran out of hosts or timed out waiting for one."""
    network = manager.network
    if network is None:
        return
    async with manager.db.read() as conn:
        cached = await info_cache.get(conn, instance_uuid)
        spec = await instances.request_spec(conn, instance_uuid) or {}
    requested = [r["port_id"] for r in spec.get("requested_networks") or [] if r.get("port_id")]
    for delay in (*retry_delays, None):
        try:
            await network.deallocate_for_instance(context, {"uuid": instance_uuid}, cached, preserve=requested)
            break
        except NeutronUnavailable as exc:
            if delay is None:
                LOG.error("ports of %s not released, the Networking service stayed unreachable: %s",
                          instance_uuid, exc)
                return
            await asyncio.sleep(delay)
        except Exception:
            LOG.exception("ports of %s could not be released", instance_uuid)
            return
    async with manager.db.write() as conn:
        await info_cache.save(conn, instance_uuid, [])
    LOG.info("ports of failed build %s released", instance_uuid)


async def cached_network_info(manager: ComputeHost, uuid: str) -> list[dict[str, Any]]:
    async with manager.db.read() as conn:
        return await info_cache.get(conn, uuid)


async def refresh_cache(manager: ComputeHost, context: dict[str, Any], instance: dict[str, Any]
                        ) -> list[dict[str, Any]]:
    """The network info as the Networking service has it now (``network-changed``), saved in the cache."""
    assert manager.network is not None
    cached = await cached_network_info(manager, instance["uuid"])
    network_info = await manager.network.get_instance_nw_info(context, instance, cached)
    async with manager.db.write() as conn:
        await info_cache.save(conn, instance["uuid"], network_info)
    return network_info


async def inject_network_info(manager: ComputeHost, context: dict[str, Any], instance_uuid: str) -> None:
    """Nova's ``inject_network_info``: the network info read from the Networking service again (the cache
    refreshed) and given to the driver, for guests that take their addresses from it (a cast)."""
    async with manager.db.read() as conn:
        row = await instances.get_plain(conn, instance_uuid)
    if row is None or row["deleted"] or row["host"] != manager.host:
        return
    network_info = await refresh_cache(manager, context, row) if manager.network is not None else []
    await manager.driver.inject_network_info(manager.driver_instance(row), network_info)


async def external_instance_event(manager: ComputeHost, context: dict[str, Any], events: list[dict[str, Any]]
                                  ) -> None:
    """Nova's ``external_instance_event``: plug events wake the waiting build or attach; ``network-changed`` and
    ``network-vif-deleted`` refresh the instance's info cache."""
    for event in events:
        name = event.get("name")
        if name in ("network-changed", "network-vif-deleted") and manager.network is not None:
            try:
                await refresh_cache(manager, context, {"uuid": event["server_uuid"]})
            except Exception:
                LOG.exception("refreshing the network info of %s failed", event["server_uuid"])
            continue
        manager.instance_events.deliver(event)


async def _live_instance(manager: ComputeHost, instance_uuid: str) -> dict[str, Any]:
    """The instance, if it is live and this host's."""
    async with manager.db.read() as conn:
        instance = await instances.get_plain(conn, instance_uuid)
    if instance is None or instance["deleted"] or instance["host"] != manager.host:
        raise exception.InstanceNotFound(instance_id=instance_uuid)
    return instance


async def attach_interface_of(manager: ComputeHost, context: dict[str, Any], instance_uuid: str,
                              network_id: str | None, port_id: str | None, fixed_ip: str | None,
                              tag: str | None = None) -> dict[str, Any]:
    """:func:`attach_interface` under the instance's lock, on this host's live instance."""
    async with manager.locks(instance_uuid):
        instance = await _live_instance(manager, instance_uuid)
        return await attach_interface(manager, context, instance, network_id, port_id, fixed_ip, tag)


async def detach_interface_of(manager: ComputeHost, context: dict[str, Any], instance_uuid: str,
                              port_id: str) -> None:
    """:func:`detach_interface` under the instance's lock, on this host's live instance."""
    async with manager.locks(instance_uuid):
        instance = await _live_instance(manager, instance_uuid)
        await detach_interface(manager, context, instance, port_id)


async def attach_interface(manager: ComputeHost, context: dict[str, Any], instance: dict[str, Any],
                           network_id: str | None, port_id: str | None, fixed_ip: str | None,
                           tag: str | None = None) -> dict[str, Any]:
    """os-interface POST on the host: a port made (or the user's taken) and bound here, plugged by the driver,
    the cache updated; the VIF back. A driver that refuses leaves the port as it was."""
    network = manager.network
    if network is None:
        raise neutron.NetworkNotFound(network_id=network_id or port_id or "")
    collector = manager.instance_events.collect(instance["uuid"])
    vif = await network.attach_interface(context, instance, manager.host, network_id=network_id, port_id=port_id,
                                         fixed_ip=fixed_ip, tag=tag,
                                         security_groups=list(instance.get("security_groups") or []))
    try:
        await manager.driver.attach_interface(manager.driver_instance(instance), vif)
        if not vif.get("active") and manager.conf.vif_plugging_timeout:
            try:
                await collector.wait([(VIF_PLUGGED, vif["id"])], manager.conf.vif_plugging_timeout)
            except TimeoutError:
                LOG.warning("no network-vif-plugged for port %s of %s", vif["id"], instance["uuid"])
    except BaseException:
        await network.deallocate_port_for_instance(context, instance, vif["id"], preserve=bool(port_id))
        raise
    finally:
        manager.instance_events.stop(instance["uuid"])
    vif["preserve_on_delete"] = bool(port_id)
    async with manager.db.write() as conn:
        cached = await info_cache.get(conn, instance["uuid"])
        await info_cache.save(conn, instance["uuid"], [*(v for v in cached if v["id"] != vif["id"]), vif])
    return vif


async def detach_interface(manager: ComputeHost, context: dict[str, Any], instance: dict[str, Any],
                           port_id: str) -> None:
    """os-interface DELETE on the host: unplugged, then deleted (or unbound when the user brought it)."""
    network = manager.network
    cached = await cached_network_info(manager, instance["uuid"])
    vif = next((v for v in cached if v["id"] == port_id), None)
    if vif is None or network is None:
        raise PortNotFoundForInstance(port_id=port_id, instance_uuid=instance["uuid"])
    await manager.driver.detach_interface(manager.driver_instance(instance), vif)
    await network.deallocate_port_for_instance(context, instance, port_id,
                                               preserve=bool(vif.get("preserve_on_delete")))
    async with manager.db.write() as conn:
        cached = await info_cache.get(conn, instance["uuid"])
        await info_cache.save(conn, instance["uuid"], [v for v in cached if v["id"] != port_id])


class PortNotFoundForInstance(exception.StratusException):
    msg_fmt = "Port %(port_id)s is not attached"
    code = 404
