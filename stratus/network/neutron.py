"""Nova's network API on Neutron (``nova/network/neutron.py``): what the compute API and the compute hosts ask of
the Networking service, through its HTTP API only (``neutron_client``), so the same code drives a real Neutron.

- the API: ``validate_networks`` before the instance rows are written (unknown network or port, a port in use,
  ambiguous networks, ``auto``, the port quota), ``validate_security_groups``;
- the compute host: ``allocate_for_instance`` (ports made or taken, bound to the host, the network info back),
  ``deallocate_for_instance`` (ports Nova made deleted, ports the user gave unbound), ``get_instance_nw_info``,
  ``setup_instance_network_on_host`` and ``migrate_instance_start/finish`` (the binding moved to another host).

Requested networks travel as Nova's ``NetworkRequest`` dicts: ``{"network_id", "port_id", "fixed_ip", "tag"}``,
or the single ``{"network_id": "auto"}`` / ``{"network_id": "none"}`` of 2.37.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Collection
from typing import Any

from oslo_config import cfg

from stratus import exception
from stratus.network import model
from stratus.network.neutron_client import NeutronClient, NeutronClientError

LOG = logging.getLogger(__name__)
AUTO, NONE = "auto", "none"
#: Nova's device_owner prefix of a server's port: compute:<availability zone>
DEVICE_OWNER_PREFIX = "compute:"
DEFAULT_ZONE = "nova"
#: what validate_networks reads of each network named in a boot (its existence, and whether it is external or
#: shared): asked with Neutron's ``fields``, so the service builds (and sends) no more of it, its subnets not read
_VALIDATED_FIELDS = ("id", "router:external", "shared")


class NetworkNotFound(exception.StratusException):
    msg_fmt = "Network %(network_id)s could not be found."
    code = 400


class PortNotFound(exception.StratusException):
    msg_fmt = "Port id %(port_id)s could not be found."
    code = 400


class PortInUse(exception.StratusException):
    msg_fmt = "Port %(port_id)s is still in use."
    code = 409


class NetworkAmbiguous(exception.StratusException):
    msg_fmt = "Multiple possible networks found, use a Network ID to be more specific."
    code = 409


class ExternalNetworkAttachForbidden(exception.StratusException):
    msg_fmt = "It is not allowed to create an interface on external network %(network_uuid)s"
    code = 403


class PortLimitExceeded(exception.StratusException):
    msg_fmt = "Maximum number of ports exceeded"
    code = 403


class UnableToAutoAllocateNetwork(exception.StratusException):
    msg_fmt = "Unable to automatically allocate a network for project %(project_id)s"
    code = 400


class FixedIpAlreadyInUse(exception.StratusException):
    msg_fmt = "Fixed IP address %(address)s is already in use on instance %(instance_uuid)s."
    code = 400


class InvalidFixedIp(exception.StratusException):
    msg_fmt = "Fixed IP %(address)s is not a valid ip address for network %(network_id)s."
    code = 400


class SecurityGroupNotFound(exception.StratusException):
    msg_fmt = "Security group %(security_group_id)s not found."
    code = 400


class PortBindingFailed(exception.StratusException):
    msg_fmt = ("Binding failed for port %(port_id)s, please check neutron logs for more information.")
    code = 500


class NetworkAllocationFailed(exception.StratusException):
    """A port could not be made or bound for a build (Nova's ``BuildAbortException`` reason)."""

    msg_fmt = "Failed to allocate the network(s): %(reason)s"
    code = 500


def requested_networks(networks: Any) -> list[dict[str, Any]] | None:
    """The API's ``networks`` as NetworkRequest dicts; None when the body had none (pre-2.37: Nova picks)."""
    if networks is None:
        return None
    if isinstance(networks, str):
        return [{"network_id": networks, "port_id": None, "fixed_ip": None, "tag": None}]
    return [{"network_id": n.get("uuid"), "port_id": n.get("port"), "fixed_ip": n.get("fixed_ip"),
             "tag": n.get("tag")} for n in networks]


def is_none(requested: list[dict[str, Any]] | None) -> bool:
    """``networks: none``: the server gets no port at all."""
    return _is(requested, NONE)


def _is(requested: list[dict[str, Any]] | None, which: str) -> bool:
    return bool(requested) and len(requested or []) == 1 and (requested or [{}])[0].get("network_id") == which


class API:
    """The network API one service uses (one pooled client per process)."""

    def __init__(self, conf: cfg.ConfigOpts, client: NeutronClient | None = None) -> None:
        self.conf = conf
        self.client = client or NeutronClient(conf)

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- the API side -----------------------------------------------------------------------------------
    async def _available_networks(self, context: dict[str, Any], project_id: str,
                                  net_ids: list[str] | None = None, fields: list[str] | None = None
                                  ) -> list[dict[str, Any]]:
        """Nova's ``_get_available_networks``: the networks asked for (as the user sees them), or, with none asked,
        the project's own networks, else the shared ones; never external ones unless asked for by id (only the
        attributes ``fields`` names, Neutron's ``fields`` filter, when the caller needs no more)."""
        if net_ids:
            return await self.client.list(context, "networks", id=net_ids, **({"fields": fields} if fields else {}))
        nets = await self.client.list(context, "networks", tenant_id=project_id, shared="False")
        if not nets:
            nets = await self.client.list(context, "networks", shared="True")
        return [n for n in nets if not n.get("router:external")]

    async def validate_networks(self, context: dict[str, Any], requested: list[dict[str, Any]] | None,
                                num_instances: int, attach_external: bool = False) -> int:
        """How many of ``num_instances`` the ports quota allows (Nova's ``validate_networks``); raises Nova's
        errors for an unknown network or port, a port in use, a fixed IP in use, ambiguous networks, a project
        that cannot have a network made (``auto``), or an external network that is not shared without
        ``attach_external`` (the policy ``network:attach_external_network``)."""
        project_id = context["project_id"]
        if _is(requested, NONE):
            return num_instances
        if _is(requested, AUTO):
            if await self._available_networks(context, project_id):
                return await self._check_ports_quota(context, num_instances, 1)
            try:
                await self.client.auto_allocated_topology(context, project_id, dry_run=True)
            except NeutronClientError as exc:
                LOG.info("auto-allocated topology of %s refused: %s", project_id, exc.message)
                raise UnableToAutoAllocateNetwork(project_id=project_id) from None
            return await self._check_ports_quota(context, num_instances, 1)
        ports_needed = 0
        net_ids: list[str] = []
        for request in requested or []:
            if request.get("port_id"):
                port = await self._port_or_404(context, request["port_id"])
                if port.get("device_id"):
                    raise PortInUse(port_id=request["port_id"])
                request["network_id"] = port["network_id"]
                continue
            ports_needed += 1
            net_ids.append(request["network_id"])
            if request.get("fixed_ip"):
                await self._check_fixed_ip(context, request["network_id"], request["fixed_ip"])
        if requested:
            if not net_ids:  # only ports the user brought: nothing to look up, no port to make
                return num_instances
            # the networks and the quota asked at once (the networks' refusals come first, as in turn)
            found, allowed = await asyncio.gather(
                self._available_networks(context, project_id, sorted(set(net_ids)), list(_VALIDATED_FIELDS)),
                self._check_ports_quota(context, num_instances, ports_needed), return_exceptions=True)
            if isinstance(found, BaseException):
                raise found
            nets = {n["id"]: n for n in found}
            for net_id in net_ids:
                if net_id not in nets:
                    raise NetworkNotFound(network_id=net_id)
                if nets[net_id].get("router:external") and not nets[net_id].get("shared") and not attach_external:
                    raise ExternalNetworkAttachForbidden(network_uuid=net_id)
            if isinstance(allowed, BaseException):
                raise allowed
            return allowed
        else:
            nets = await self._available_networks(context, project_id)
            if len(nets) > 1:
                raise NetworkAmbiguous()
            ports_needed = len(nets)
        return await self._check_ports_quota(context, num_instances, ports_needed)

    async def _port_or_404(self, context: dict[str, Any] | None, port_id: str) -> dict[str, Any]:
        try:
            return await self.client.show(context, "ports", port_id)
        except NeutronClientError as exc:
            if exc.status == 404:
                raise PortNotFound(port_id=port_id) from None
            raise

    async def _check_fixed_ip(self, context: dict[str, Any], network_id: str, address: str) -> None:
        ports = await self.client.list(context, "ports", network_id=network_id,
                                       fixed_ips=f"ip_address={address}")
        if ports:
            raise FixedIpAlreadyInUse(address=address, instance_uuid=ports[0].get("device_id") or "")

    async def _check_ports_quota(self, context: dict[str, Any], num_instances: int, ports_needed: int) -> int:
        if not ports_needed:
            return num_instances
        extensions = await self.client.extensions()
        if "quota_details" in extensions:  # Nova's way when it can: the service counts, no list of every port
            project = urllib.parse.quote(str(context["project_id"]), safe="")
            body = await self.client.request(None, "GET", f"/quotas/{project}/details")
            port = body["quota"].get("port") or {}
            if int(port.get("limit", -1)) < 0:
                return num_instances
            free = int(port["limit"]) - int(port.get("used", 0)) - int(port.get("reserved", 0))
        elif "quotas" in extensions:
            quota = (await self.client.show_quota(context["project_id"])).get("port", -1)
            if quota is None or int(quota) < 0:
                return num_instances
            free = int(quota) - len(await self.client.list(None, "ports", tenant_id=context["project_id"],
                                                           fields="id"))
        else:
            return num_instances  # a Networking service without the quotas extension limits nothing
        if free < ports_needed:
            raise PortLimitExceeded()
        return min(num_instances, free // ports_needed)

    async def validate_security_groups(self, context: dict[str, Any], names: list[str]) -> list[str]:
        """The ids of the security groups named (by name, or by id) in a boot, as the user sees them; Nova's 400
        for one that does not exist or whose name is not unique."""
        groups = await self.client.list(context, "security-groups", tenant_id=context["project_id"],
                                        fields=["id", "name"])
        ids = []
        for name in names:
            by_id = [g for g in groups if g["id"] == name]
            by_name = [g for g in groups if g["name"] == name]
            match = by_id or by_name
            if not match and name != "default":
                try:  # another project's group shared with this one, or an admin naming any by id
                    match = [await self.client.show(context, "security-groups", name)]
                except NeutronClientError:
                    match = []
            if len(match) != 1:
                if len(match) > 1:
                    raise SecurityGroupNotFound(security_group_id=f"{name} (more than one group has that name)")
                raise SecurityGroupNotFound(security_group_id=name)
            ids.append(match[0]["id"])
        return ids

    # --- the compute side ---------------------------------------------------------------------------------
    async def allocate_for_instance(self, context: dict[str, Any], instance: dict[str, Any],
                                    requested: list[dict[str, Any]] | None, security_groups: list[str],
                                    host: str) -> list[dict[str, Any]]:
        """Nova's ``allocate_for_instance``: a port on each requested network (ports the user gave are taken),
        owned by the instance, bound to ``host``; the network info of them all. A failure deletes the ports it
        made and gives back the ports it took, so a failed build leaves nothing behind."""
        if _is(requested, NONE):
            return []
        project_id = instance["project_id"]
        requests = [dict(r) for r in requested] if requested else []
        if _is(requests, AUTO):
            nets = await self._available_networks(context, project_id)
            if not nets:
                topology = await self.client.auto_allocated_topology(context, project_id)
                nets = [await self.client.show(context, "networks", topology["id"])]
            if len(nets) > 1:
                raise NetworkAmbiguous()
            requests = [{"network_id": n["id"], "port_id": None, "fixed_ip": None, "tag": None} for n in nets]
        elif not requests:
            nets = await self._available_networks(context, project_id)
            if len(nets) > 1:
                raise NetworkAmbiguous()
            requests = [{"network_id": n["id"], "port_id": None, "fixed_ip": None, "tag": None} for n in nets]
        if not requests:
            return []
        # only the project's default group: Neutron puts a port in it when none is named (no lookup needed)
        named = [g for g in security_groups if g != "default"]
        group_ids = await self.validate_security_groups(context, security_groups) if named else []
        binding = self._binding(instance, host)
        created: list[str] = []
        taken: list[str] = []
        ports: list[tuple[dict[str, Any], bool]] = []
        tags: dict[str, str | None] = {}  # the device tag of each port (2.32+), shown by os-interface at 2.70
        try:
            for request in requests:
                if request.get("port_id"):
                    port = await self._port_or_404(context, request["port_id"])
                    if port.get("device_id") and port["device_id"] != instance["uuid"]:
                        raise PortInUse(port_id=port["id"])
                    port = await self.client.update(None, "ports", port["id"], binding)
                    taken.append(port["id"])
                    tags[port["id"]] = request.get("tag")
                    ports.append((port, True))
                    continue
                values: dict[str, Any] = {"network_id": request["network_id"], "project_id": project_id,
                                          "admin_state_up": True, **binding}
                if group_ids:
                    values["security_groups"] = group_ids
                if request.get("fixed_ip"):
                    values["fixed_ips"] = [{"ip_address": request["fixed_ip"]}]
                try:
                    port = await self.client.create(None, "ports", values)
                except NeutronClientError as exc:
                    raise self._create_error(exc, request) from None
                created.append(port["id"])
                tags[port["id"]] = request.get("tag")
                ports.append((port, False))
            for port, _preserve in ports:
                if port.get("binding:vif_type") == "binding_failed":
                    raise PortBindingFailed(port_id=port["id"])
            # a port made just now has no floating IP yet (one associated later is a network-changed event, and
            # the refresh reads it): only the ports the user brought are asked about
            network_info = await self._network_info(context, ports, floating_of=taken)
            for entry in network_info:
                entry["tag"] = tags.get(entry["id"])
            return network_info
        except BaseException:
            await self._undo(created, taken)
            raise

    def _binding(self, instance: dict[str, Any], host: str) -> dict[str, Any]:
        zone = instance.get("availability_zone") or self.conf.default_availability_zone or DEFAULT_ZONE
        return {"device_id": instance["uuid"], "device_owner": DEVICE_OWNER_PREFIX + zone, "binding:host_id": host}

    @staticmethod
    def _create_error(exc: NeutronClientError, request: dict[str, Any]) -> exception.StratusException:
        if exc.type == "IpAddressAlreadyAllocated":
            return FixedIpAlreadyInUse(address=request.get("fixed_ip"), instance_uuid="")
        if exc.type in ("InvalidIpForNetwork", "InvalidInput") and request.get("fixed_ip"):
            return InvalidFixedIp(address=request["fixed_ip"], network_id=request["network_id"])
        if exc.type == "OverQuota":
            return PortLimitExceeded()
        if exc.status == 404:
            return NetworkNotFound(network_id=request["network_id"])
        return NetworkAllocationFailed(reason=exc.message)

    async def _undo(self, created: list[str], taken: list[str]) -> None:
        for port_id in created:
            await self._delete_port(port_id)
        for port_id in taken:
            await self._unbind_port(port_id)

    async def _delete_port(self, port_id: str) -> None:
        try:
            await self.client.delete(None, "ports", port_id)
        except NeutronClientError as exc:
            if exc.status != 404:
                LOG.warning("port %s could not be deleted: %s", port_id, exc.message)

    async def _unbind_port(self, port_id: str) -> None:
        """Give a port the user brought back to them: no device, no host (Nova's ``_unbind_ports``)."""
        try:
            # Nova sends binding:host_id None; "" means the same to Neutron and to stricter validators alike
            await self.client.update(None, "ports", port_id, {"device_id": "", "device_owner": "",
                                                              "binding:host_id": "", "binding:profile": {}})
        except NeutronClientError as exc:
            if exc.status != 404:
                LOG.warning("port %s could not be unbound: %s", port_id, exc.message)

    async def _network_info(self, context: dict[str, Any] | None, ports: list[tuple[dict[str, Any], bool]],
                            floating_of: list[str] | None = None) -> list[dict[str, Any]]:
        """The VIFs of ``ports`` (each with whether the user brought it), in order: their networks, subnets, DHCP
        ports and floating IPs read at once, whatever the number of ports (the floating IPs of ``floating_of``
        only, when given). Only the attributes the VIFs are made of are asked for (``fields``)."""
        if not ports:
            return []
        net_ids = sorted({p["network_id"] for p, _ in ports})
        subnet_ids = sorted({f["subnet_id"] for p, _ in ports for f in p.get("fixed_ips") or []})
        fip_ports = [p["id"] for p, _ in ports] if floating_of is None else floating_of
        nets, subnets, fips, dhcp_ports = await asyncio.gather(
            self.client.list(None, "networks", id=net_ids, fields=list(model.NETWORK_FIELDS)),
            self.client.list(None, "subnets", id=subnet_ids, fields=list(model.SUBNET_FIELDS)) if subnet_ids
            else _nothing(),
            self._floating_ips(fip_ports) if fip_ports else _nothing(),
            self.client.list(None, "ports", network_id=net_ids, device_owner="network:dhcp", fields="fixed_ips"))
        networks = {n["id"]: n for n in nets}
        by_id = {s["id"]: s for s in subnets}
        for subnet in subnets:  # the DHCP server of each subnet: the address of the network's DHCP port
            subnet.setdefault("dhcp_server", None)
        for port in dhcp_ports:
            for fixed in port.get("fixed_ips") or []:
                if fixed["subnet_id"] in by_id:
                    by_id[fixed["subnet_id"]]["dhcp_server"] = fixed["ip_address"]
        return [model.vif(p, networks.get(p["network_id"], {"id": p["network_id"]}), by_id, fips,
                          preserve_on_delete=preserve, default_bridge=self.conf.neutron.ovs_bridge)
                for p, preserve in ports]

    async def _floating_ips(self, port_ids: list[str]) -> list[dict[str, Any]]:
        """The floating IPs on the ports; none without the router extension (Neutron's L3)."""
        if "router" not in await self.client.extensions():
            return []
        return await self.client.list(None, "floatingips", port_id=port_ids)

    async def get_instance_nw_info(self, context: dict[str, Any] | None, instance: dict[str, Any],
                                   cached: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The network info of the instance's ports as Neutron has them now, in the order of ``cached`` (the info
        cache) with new ports last; ``preserve_on_delete`` is kept from the cache."""
        ports = await self.client.list(None, "ports", device_id=instance["uuid"])
        preserve = {v["id"]: bool(v.get("preserve_on_delete")) for v in cached or []}
        order = {v["id"]: i for i, v in enumerate(cached or [])}
        ports.sort(key=lambda p: (order.get(p["id"], len(order)), p.get("created_at") or "", p["id"]))
        network_info = await self._network_info(context, [(p, preserve.get(p["id"], False)) for p in ports])
        tags = {v["id"]: v.get("tag") for v in cached or []}
        for entry in network_info:
            entry["tag"] = tags.get(entry["id"])
        return network_info

    async def deallocate_for_instance(self, context: dict[str, Any] | None, instance: dict[str, Any],
                                      network_info: list[dict[str, Any]] | None = None,
                                      preserve: Collection[str] = ()) -> None:
        """Nova's ``deallocate_for_instance``: the instance's ports deleted, those the user brought
        (``preserve_on_delete`` in the info cache, or named in ``preserve``: the ports of the boot request, for a
        build whose cache may not be written yet) unbound instead. Ports already gone are fine."""
        preserve = {*preserve, *(v["id"] for v in network_info or [] if v.get("preserve_on_delete"))}
        ports = await self.client.list(None, "ports", device_id=instance["uuid"])
        for port in ports:
            if port["id"] in preserve:
                await self._unbind_port(port["id"])
            else:
                await self._delete_port(port["id"])

    async def setup_instance_network_on_host(self, context: dict[str, Any] | None, instance: dict[str, Any],
                                             host: str) -> None:
        """The instance's ports bound to ``host`` (a reschedule, an unshelve, the end of a move): Nova's
        ``_update_port_binding_for_instance``."""
        for port in await self.client.list(None, "ports", device_id=instance["uuid"]):
            if port.get("binding:host_id") != host:
                await self.client.update(None, "ports", port["id"], {"binding:host_id": host})

    async def migrate_instance_start(self, context: dict[str, Any] | None, instance: dict[str, Any],
                                     source_host: str) -> None:
        """A move begins: nothing to do with port bindings of the ML2 kind (Nova's is a no-op too, apart from
        the floating IPs of nova-network)."""
        LOG.debug("migration of %s from %s starts", instance["uuid"], source_host)

    async def migrate_instance_finish(self, context: dict[str, Any] | None, instance: dict[str, Any],
                                      dest_host: str) -> None:
        """A move ends on ``dest_host``: the ports are bound there."""
        await self.setup_instance_network_on_host(context, instance, dest_host)

    # --- interfaces and security groups of a running server ------------------------------------------------
    async def attach_interface(self, context: dict[str, Any], instance: dict[str, Any], host: str, *,
                               network_id: str | None, port_id: str | None, fixed_ip: str | None,
                               security_groups: list[str], tag: str | None = None) -> dict[str, Any]:
        """One more port for a running server (os-interface POST): the VIF of it."""
        request = {"network_id": network_id, "port_id": port_id, "fixed_ip": fixed_ip, "tag": tag}
        if not port_id and not network_id:
            request = {}
        if port_id:
            port = await self._port_or_404(context, port_id)
            if port.get("device_id"):
                raise PortInUse(port_id=port_id)
        elif network_id:
            if not await self.client.list(context, "networks", id=network_id):
                raise NetworkNotFound(network_id=network_id)
        info = await self.allocate_for_instance(context, instance, [request] if request else None,
                                                security_groups if not port_id else [], host)
        if not info:
            raise NetworkNotFound(network_id=network_id or "")
        return info[0]

    async def deallocate_port_for_instance(self, context: dict[str, Any] | None, instance: dict[str, Any],
                                           port_id: str, preserve: bool) -> None:
        if preserve:
            await self._unbind_port(port_id)
        else:
            await self._delete_port(port_id)

    async def instance_ports(self, context: dict[str, Any] | None, instance_uuid: str) -> list[dict[str, Any]]:
        return await self.client.list(None, "ports", device_id=instance_uuid)

    async def instance_security_groups(self, context: dict[str, Any], instance_uuid: str) -> list[dict[str, Any]]:
        """The security groups on the server's ports (Nova reads them from Neutron, not its own records)."""
        ports = await self.instance_ports(context, instance_uuid)
        ids = sorted({g for p in ports for g in p.get("security_groups") or []})
        if not ids:
            return []
        return await self.client.list(None, "security-groups", id=ids)

    async def add_to_instance(self, context: dict[str, Any], instance: dict[str, Any], name: str) -> None:
        """addSecurityGroup: the group on every port of the server (Nova's messages for no port, a group
        already there)."""
        group_id = (await self.validate_security_groups(context, [name]))[0]
        ports = await self.instance_ports(context, instance["uuid"])
        if not ports:
            raise SecurityGroupCannotApply(instance_id=instance["uuid"])
        for port in ports:
            groups = list(port.get("security_groups") or [])
            if group_id in groups:
                raise SecurityGroupExistsForInstance(security_group_id=name, instance_id=instance["uuid"])
            await self.client.update(None, "ports", port["id"], {"security_groups": [*groups, group_id]})

    async def remove_from_instance(self, context: dict[str, Any], instance: dict[str, Any], name: str) -> None:
        group_id = (await self.validate_security_groups(context, [name]))[0]
        ports = await self.instance_ports(context, instance["uuid"])
        found = False
        for port in ports:
            groups = list(port.get("security_groups") or [])
            if group_id in groups:
                found = True
                await self.client.update(None, "ports", port["id"],
                                         {"security_groups": [g for g in groups if g != group_id]})
        if not found:
            raise SecurityGroupNotExistsForInstance(security_group_id=name, instance_id=instance["uuid"])


class SecurityGroupCannotApply(exception.StratusException):
    msg_fmt = "Network requires port_security_enabled and subnet associated in order to apply security groups."
    code = 400


class SecurityGroupExistsForInstance(exception.StratusException):
    msg_fmt = "Security group %(security_group_id)s is already associated with the instance %(instance_id)s"
    code = 400


class SecurityGroupNotExistsForInstance(exception.StratusException):
    msg_fmt = "Security group %(security_group_id)s not associated with the instance %(instance_id)s"
    code = 400


async def _nothing() -> list[dict[str, Any]]:
    return []



