"""Server bodies, per microversion, the way Nova's view builder writes them.

Built from plain instance rows (with ``metadata``, ``tags`` and ``fault`` attached by the DB layer) in
one pass, without further queries: a detail page of a thousand servers is one loop.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

import orjson

from stratus.api import image_properties
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
V254 = APIVersion.parse("2.54")  # key_name in the rebuild body
V257 = APIVersion.parse("2.57")  # user_data in the rebuild body
V271 = APIVersion.parse("2.71")  # server_groups (show, update, rebuild; not detail)
V273 = APIVersion.parse("2.73")  # locked_reason
V275 = APIVersion.parse("2.75")  # update (and rebuild) bodies are the full server
V290 = APIVersion.parse("2.90")  # OS-EXT-SRV-ATTR:hostname for every caller
V296 = APIVersion.parse("2.96")  # pinned_availability_zone
V298 = APIVersion.parse("2.98")  # the image's properties
V2100 = APIVersion.parse("2.100")  # scheduler_hints
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
        #: request specs by instance uuid (2.96's pinned zone, 2.100's hints), loaded by the caller for the page
        self.specs: dict[str, dict[str, Any]] = {}
        #: server group uuids by instance uuid (2.71), for show, update and rebuild only
        self.server_groups: dict[str, list[str]] | None = None
        self.template = req.services.conf.instance_name_template

    def settings(self) -> tuple[Any, ...]:
        """What of the request ``full`` depends on besides the instance, its host's status and its request spec
        (part of a rendered body's key, api/server_cache.py)."""
        return (self.version, self.self_prefix, self.bookmark_prefix, self.show_extended, self.show_host_status,
                self.show_extra_specs, bool(self.req.context.is_admin), self.template)

    def spec_key(self, uuid: str) -> bytes:
        """The parts of the instance's request spec ``full`` shows at this microversion (2.96's zone, 2.100's
        hints), as a hashable value."""
        if self.version < V296:
            return b""
        spec = self.specs.get(uuid) or {}
        return orjson.dumps([spec.get("availability_zone"), spec.get("scheduler_hints")],
                            option=orjson.OPT_SORT_KEYS)

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

    def _image(self, inst: dict[str, Any]) -> Any:
        image_ref = inst["image_ref"]
        if not image_ref:
            return ""
        image: dict[str, Any] = {
            "id": image_ref, "links": [{"rel": "bookmark", "href": f"{self.bookmark_prefix}/images/{image_ref}"}]}
        if self.version >= V298:
            image["properties"] = image_properties.from_system_metadata(inst.get("system_metadata") or {})
        return image

    def _fault(self, fault: dict[str, Any]) -> dict[str, Any]:
        """Nova's ``_get_fault``: ``details`` (a traceback, or the rest of a long message) only when there are
        some, and for code 500 only to admins."""
        body = {"code": fault["code"], "created": isotime(fault["created_at"]), "message": fault["message"]}
        if fault.get("details") and (self.req.context.is_admin or fault["code"] != 500):
            body["details"] = fault["details"]
        return body

    def full(self, inst: dict[str, Any], update: bool = False, rebuild: bool = False) -> dict[str, Any]:
        """The server as show and detail give it; ``update`` for the body of PUT /servers/{id}, which before 2.75
        leaves out the AZ, config drive, key name, usage times, security groups, extended attributes, status and
        volumes, host status and the addresses' type and MAC, as Nova's does (from 2.75 it is the full body).
        ``rebuild`` (with ``update``) for the rebuild action's body: the update's, with ``key_name`` from 2.54 and
        ``user_data`` from 2.57 (not ``OS-EXT-SRV-ATTR:user_data``)."""
        update = update and self.version < V275
        status = status_from_state(inst["vm_state"], inst["task_state"])
        server: dict[str, Any] = {
            "id": inst["uuid"],
            "name": inst["display_name"],
            "status": status,
            "tenant_id": inst["project_id"],
            "user_id": inst["user_id"],
            "metadata": inst.get("metadata", {}),
            "hostId": host_id(inst["project_id"], inst["host"]),
            "image": self._image(inst),
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
        if rebuild and update and self.version >= V254:
            server["key_name"] = inst["key_name"]
        if rebuild and self.version >= V257:  # in place of the extended attribute (an admin's), as Nova's
            server.pop("OS-EXT-SRV-ATTR:user_data", None)
            server["user_data"] = inst["user_data"]
        self._since_271(server, inst, update)
        return server

    def _since_271(self, server: dict[str, Any], inst: dict[str, Any], update: bool) -> None:
        """The fields of 2.71 and later, in Nova's order."""
        if self.version >= V271 and self.server_groups is not None:
            server["server_groups"] = self.server_groups.get(inst["uuid"], [])
        if self.version >= V273:
            server["locked_reason"] = (inst.get("system_metadata") or {}).get("locked_reason")
        if self.version >= V290 and "OS-EXT-SRV-ATTR:hostname" not in server:
            server["OS-EXT-SRV-ATTR:hostname"] = inst["hostname"]
        spec = self.specs.get(inst["uuid"]) or {}
        if self.version >= V296 and not update:
            server["pinned_availability_zone"] = spec.get("availability_zone")
        if self.version >= V2100:
            server["scheduler_hints"] = _hints(spec.get("scheduler_hints"))


#: hints whose value Nova's (and tempest's) response schema wants as one value, not a list
_SINGLE_HINTS = frozenset({"group", "query", "target_cell", "build_near_host_ip", "cidr"})


def _hints(hints: dict[str, Any] | None) -> dict[str, Any]:
    """The boot's scheduler hints as Nova's request spec keeps them, every value a list, except the hints that
    Nova's response schema for 2.100 declares single-valued (``group``, ``query``, ...): Nova's request spec would
    wrap those as well, which its own schema and tempest's refuse; the schema is the contract here."""
    out: dict[str, Any] = {}
    for key, value in (hints or {}).items():
        if key in _SINGLE_HINTS:
            out[key] = value[0] if isinstance(value, list) and len(value) == 1 else value
        else:
            out[key] = value if isinstance(value, list) else [value]
    return out


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
