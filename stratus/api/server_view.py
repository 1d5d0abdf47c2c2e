"""Server bodies, per microversion, the way Nova's view builder writes them.

Built from plain instance rows (with ``metadata``, ``tags`` and ``fault`` attached by the DB layer) in
one pass, without further queries: a detail page of a thousand servers is one loop.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest
from stratus.identity import policy
from stratus.network import model
from stratus.objects.states import status_from_state
from stratus.utils import isotime, isotime_usec

V23 = APIVersion.parse("2.3")
V29 = APIVersion.parse("2.9")
V216 = APIVersion.parse("2.16")
V219 = APIVersion.parse("2.19")
V226 = APIVersion.parse("2.26")
V247 = APIVersion.parse("2.47")
V263 = APIVersion.parse("2.63")
PROGRESS_STATUSES = frozenset({"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"})


def host_id(project_id: str, host: str | None) -> str:
    """An opaque id of the host, stable per project, as Nova's hostId (sha224 of project and host)."""
    if not host:
        return ""
    return hashlib.sha224((project_id + host).encode()).hexdigest()


class ServerViewBuilder:
    """Per-request settings computed once, then ``basic``/``full`` per instance."""

    def __init__(self, req: ApiRequest, host_status: dict[str, str] | None = None) -> None:
        self.req = req
        self.version = req.version
        self.self_prefix, self.bookmark_prefix = req.link_prefix()
        ctx = req.context
        self.show_extended = policy.check(ctx, "os_compute_api:os-extended-server-attributes")
        self.show_host_status = (self.version >= V216
                                 and policy.check(ctx, "os_compute_api:servers:show:host_status"))
        self.show_extra_specs = policy.check(ctx, "os_compute_api:servers:show:flavor-extra-specs")
        self.host_status = host_status or {}
        self.template = req.services.conf.instance_name_template

    def _links(self, uuid: str) -> list[dict[str, str]]:
        return [{"rel": "self", "href": f"{self.self_prefix}/servers/{uuid}"},
                {"rel": "bookmark", "href": f"{self.bookmark_prefix}/servers/{uuid}"}]

    def basic(self, inst: dict[str, Any]) -> dict[str, Any]:
        return {"id": inst["uuid"], "name": inst["display_name"], "links": self._links(inst["uuid"])}

    def _flavor(self, flavor: dict[str, Any]) -> dict[str, Any]:
        if self.version >= V247:
            body: dict[str, Any] = {
                "vcpus": flavor["vcpus"], "ram": flavor["memory_mb"], "disk": flavor["root_gb"],
                "ephemeral": flavor.get("ephemeral_gb", 0), "swap": flavor.get("swap", 0),
                "original_name": flavor["name"]}
            if self.show_extra_specs:
                body["extra_specs"] = dict(flavor.get("extra_specs") or {})
            return body
        fid = flavor["flavorid"]
        return {"id": fid, "links": [{"rel": "bookmark", "href": f"{self.bookmark_prefix}/flavors/{fid}"}]}

    def _image(self, image_ref: str | None) -> Any:
        if not image_ref:
            return ""
        return {"id": image_ref, "links": [{"rel": "bookmark", "href": f"{self.bookmark_prefix}/images/{image_ref}"}]}

    def _fault(self, fault: dict[str, Any]) -> dict[str, Any]:
        """Nova's ``_get_fault``: ``details`` (a traceback, or the rest of a long message) only when there are
        some, and for code 500 only to admins."""
        body = {"code": fault["code"], "created": isotime(fault["created_at"]), "message": fault["message"]}
        if fault.get("details") and (self.req.context.is_admin or fault["code"] != 500):
            body["details"] = fault["details"]
        return body

    def full(self, inst: dict[str, Any], update: bool = False) -> dict[str, Any]:
        """The server as show and detail give it; ``update`` for the body of PUT /servers/{id}, which before 2.75
        leaves out the AZ, config drive, key name, usage times, security groups, extended attributes, status and
        volumes, host status and the addresses' type and MAC, as Nova's does."""
        status = status_from_state(inst["vm_state"], inst["task_state"])
        server: dict[str, Any] = {
            "id": inst["uuid"],
            "name": inst["display_name"],
            "status": status,
            "tenant_id": inst["project_id"],
            "user_id": inst["user_id"],
            "metadata": inst.get("metadata", {}),
            "hostId": host_id(inst["project_id"], inst["host"]),
            "image": self._image(inst["image_ref"]),
            "flavor": self._flavor(inst["flavor"]),
            "created": isotime(inst["created_at"]),
            "updated": isotime(inst["updated_at"]),
            "addresses": addresses(inst.get("network_info") or [], extended=not update),
            "accessIPv4": inst["access_ip_v4"] or "",
            "accessIPv6": inst["access_ip_v6"] or "",
            "links": self._links(inst["uuid"]),
            "OS-DCF:diskConfig": "AUTO" if inst["auto_disk_config"] else "MANUAL",
        }
        if not update:
            server.update({
                "OS-EXT-AZ:availability_zone": inst["availability_zone"] or "",
                "config_drive": inst["config_drive"] or "",
                "key_name": inst["key_name"],
                "OS-EXT-STS:task_state": inst["task_state"],
                "OS-EXT-STS:vm_state": inst["vm_state"],
                "OS-EXT-STS:power_state": inst["power_state"],
                "os-extended-volumes:volumes_attached": [],
                "OS-SRV-USG:launched_at": isotime_usec(inst["launched_at"]),
                "OS-SRV-USG:terminated_at": isotime_usec(inst["terminated_at"]),
            })
        if status in PROGRESS_STATUSES:
            server["progress"] = inst["progress"] or 0
        groups = inst.get("security_groups") or []
        if groups and not update:
            server["security_groups"] = [{"name": g} for g in groups]
        if self.show_extended and not update:
            server["OS-EXT-SRV-ATTR:host"] = inst["host"]
            server["OS-EXT-SRV-ATTR:hypervisor_hostname"] = inst["node"]
            server["OS-EXT-SRV-ATTR:instance_name"] = self.template % inst["id"]
            if self.version >= V23:
                server["OS-EXT-SRV-ATTR:reservation_id"] = inst["reservation_id"]
                server["OS-EXT-SRV-ATTR:launch_index"] = inst["launch_index"]
                server["OS-EXT-SRV-ATTR:kernel_id"] = inst["kernel_id"] or ""
                server["OS-EXT-SRV-ATTR:ramdisk_id"] = inst["ramdisk_id"] or ""
                server["OS-EXT-SRV-ATTR:hostname"] = inst["hostname"]
                server["OS-EXT-SRV-ATTR:root_device_name"] = inst["root_device_name"]
                server["OS-EXT-SRV-ATTR:user_data"] = inst["user_data"]
        if inst.get("fault") and status in ("ERROR", "DELETED"):
            server["fault"] = self._fault(inst["fault"])
        if self.version >= V29:
            server["locked"] = bool(inst["locked"])
        if self.show_host_status and not update:
            server["host_status"] = self.host_status.get(inst["host"] or "", "") if inst["host"] else ""
        if self.version >= V219:
            server["description"] = inst["display_description"]
        if self.version >= V226:
            server["tags"] = inst.get("tags", [])
        if self.version >= V263:
            server["trusted_image_certificates"] = inst.get("trusted_certs")
        return server


def addresses(network_info: list[dict[str, Any]], extended: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Nova's ``addresses``: network label -> [{version, addr, OS-EXT-IPS:type, OS-EXT-IPS-MAC:mac_addr}] (the
    last two only when ``extended``), each VIF's fixed IPs, then the floating IPs on them."""
    out: dict[str, list[dict[str, Any]]] = {}
    for ip in model.fixed_ips(network_info):
        entries = out.setdefault(ip["label"], [])
        for address, kind in [(ip["address"], "fixed"), *((f, "floating") for f in ip["floating"])]:
            item: dict[str, Any] = {"version": ipaddress.ip_address(address).version, "addr": address}
            if extended:
                item["OS-EXT-IPS:type"] = kind
                item["OS-EXT-IPS-MAC:mac_addr"] = ip["mac"]
            entries.append(item)
    return out
