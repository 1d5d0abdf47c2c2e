"""POST /servers: validate, check the flavor, image, key pair and quota, write the records, ask the conductor.

Everything about one boot request is written in one transaction (instances, metadata, tags, request specs,
the 'create' action) after the quota is counted inside that same transaction under the project's quota lock
(``quotas.lock_project``), so concurrent boots cannot both take the last slot, on SQLite or PostgreSQL, and a
refused request leaves nothing behind.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import re
import secrets
import string
from typing import Any

from sqlalchemy import select
from starlette.responses import Response

from stratus import exception
from stratus.api import validation
from stratus.api.common import visible_project
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, json_response, location
from stratus.conductor.rpcapi import ConductorAPI
from stratus.db import flavors as flavors_db
from stratus.db import instances
from stratus.db import keypairs as keypairs_db
from stratus.db import quotas as quotas_db
from stratus.db import server_groups as server_groups_db
from stratus.db.models import aggregate_metadata, compute_nodes
from stratus.identity import policy
from stratus.network import neutron
from stratus.objects import states
from stratus.objects.states import task_states
from stratus.scheduler.manager import resources_from_flavor
from stratus.utils import is_uuid_like, new_uuid

LOG = logging.getLogger(__name__)

V219 = APIVersion.parse("2.19")
V232 = APIVersion.parse("2.32")
V237 = APIVersion.parse("2.37")
V236 = APIVersion.parse("2.36")
V242 = APIVersion.parse("2.42")
V252 = APIVersion.parse("2.52")  # tags at create
V257 = APIVersion.parse("2.57")  # no more personality
V263 = APIVersion.parse("2.63")  # trusted_image_certificates
V267 = APIVersion.parse("2.67")  # block_device_mapping_v2 volume_type
V274 = APIVersion.parse("2.74")  # host and hypervisor_hostname
V290 = APIVersion.parse("2.90")  # hostname
V294 = APIVersion.parse("2.94")  # hostname may be an FQDN

PERSONALITY_SCHEMA = {"type": "array", "items": {"type": "object", "properties": {
    "path": {"type": "string"}, "contents": {"type": "string", "format": "base64"}},
    "additionalProperties": False}}


def _device_tags(version: APIVersion) -> bool:
    """Device tags on networks and block devices: added in 2.32, dropped in 2.37, restored in 2.42."""
    return V232 <= version <= V236 or version >= V242


def _network_item(version: APIVersion) -> dict[str, Any]:
    props: dict[str, Any] = {"fixed_ip": {"type": "string", "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
                             "port": {"type": ["string", "null"], "format": "uuid"},
                             "uuid": {"type": "string"}}
    if _device_tags(version):
        props["tag"] = validation.tag
    return {"type": "object", "properties": props, "additionalProperties": False}


def _bdm_item(version: APIVersion) -> dict[str, Any]:
    props: dict[str, Any] = {
        "source_type": {"type": "string", "enum": ["volume", "image", "snapshot", "blank"]},
        "destination_type": {"type": "string", "enum": ["local", "volume"]},
        "uuid": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9._-]*$"},
        "boot_index": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$"},
        "volume_size": validation.non_negative_integer,
        "device_name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9._/-]*$"},
        "device_type": {"type": "string"},
        "disk_bus": {"type": "string"},
        "guest_format": {"type": "string"},
        "delete_on_termination": {"type": ["boolean", "string"], "enum": [True, "True", False, "False"]},
        "no_device": {},
        "connection_info": {"type": "string", "maxLength": 16777215},
    }
    if _device_tags(version):
        props["tag"] = validation.tag
    if version >= V267:
        props["volume_type"] = {"type": ["string", "null"], "minLength": 0, "maxLength": 255}
    return {"type": "object", "properties": props, "additionalProperties": False}


def hostname_schema(version: APIVersion) -> dict[str, Any]:
    """The ``hostname`` a server may be given (create, update, rebuild): a host label from 2.90, an FQDN from
    2.94."""
    return validation.fqdn if version >= V294 else validation.hostname


@functools.lru_cache(maxsize=128)  # one per microversion served; never changed by a caller
def create_schema(version: APIVersion) -> dict[str, Any]:
    networks: dict[str, Any] = {"type": "array", "items": _network_item(version)}
    if version >= V237:
        networks = {"oneOf": [networks, {"type": "string", "enum": ["none", "auto"]}]}
    server: dict[str, Any] = {
        "type": "object",
        "properties": {
            "name": validation.name,
            "imageRef": {"oneOf": [{"type": "string", "format": "uuid"}, {"type": "string", "maxLength": 0}]},
            "flavorRef": {"type": ["string", "integer"], "minLength": 1},
            "adminPass": {"type": "string"},
            "metadata": validation.metadata,
            "networks": networks,
            "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
            "accessIPv4": {"type": "string", "format": "ipv4"},
            "accessIPv6": {"type": "string", "format": "ipv6"},
            "availability_zone": {"type": "string", "minLength": 1, "maxLength": 255},
            "block_device_mapping": {"type": "array", "items": {"type": "object"}},
            "block_device_mapping_v2": {"type": "array", "items": _bdm_item(version)},
            "key_name": validation.name_with_leading_trailing_spaces,
            "user_data": {"type": "string", "maxLength": 65535},
            "config_drive": {"type": ["boolean", "string"],
                             "enum": [True, "True", "true", False, "False", "false", ""]},
            "security_groups": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 255}},
                "additionalProperties": False}},
            "min_count": validation.positive_integer,
            "max_count": validation.positive_integer,
            "return_reservation_id": {"type": ["boolean", "string"],
                                      "enum": [True, "True", "true", False, "False", "false"]},
        },
        "required": ["name", "flavorRef"] + (["networks"] if version >= V237 else []),
        "additionalProperties": False,
    }
    if version >= V219:
        server["properties"]["description"] = validation.description
    if version >= V252:
        server["properties"]["tags"] = validation.tags
    if version < V257:
        server["properties"]["personality"] = PERSONALITY_SCHEMA
    if version >= V263:
        server["properties"]["trusted_image_certificates"] = validation.trusted_certs
    if version >= V274:
        server["properties"]["host"] = validation.fqdn
        server["properties"]["hypervisor_hostname"] = validation.fqdn
    if version >= V290:
        server["properties"]["hostname"] = hostname_schema(version)
    hints = {"type": "object", "properties": {
        "group": {"type": "string", "format": "uuid"},
        "different_host": {"oneOf": [{"type": "string", "format": "uuid"},
                                     {"type": "array", "items": {"type": "string", "format": "uuid"}}]},
        "same_host": {"oneOf": [{"type": "string", "format": "uuid"},
                                {"type": "array", "items": {"type": "string", "format": "uuid"}}]},
        "query": {"type": ["string", "object"]},
        "target_cell": {"type": "string"},
        "build_near_host_ip": {"type": "string"},
        "cidr": {"type": "string"}}, "additionalProperties": True}
    return {"type": "object", "properties": {"server": server, "os:scheduler_hints": hints,
                                             "OS-SCH-HNT:scheduler_hints": hints},
            "required": ["server"], "additionalProperties": False}


_SPACE_OR_UNDERSCORE = re.compile(r"[ _]")
_NOT_HOSTNAME = re.compile(r"[^\w.-]+", flags=re.ASCII)


def _hostname(display_name: str) -> str:
    """Nova's sanitize_hostname: lower case, [a-z0-9-.], at most 63 characters, never empty."""
    name = _SPACE_OR_UNDERSCORE.sub("-", display_name.lower())
    name = _NOT_HOSTNAME.sub("", name).strip(".-")[:63].strip(".-")
    return name or "server"


_PASSWORD_ALPHABET = string.ascii_letters + string.digits
#: random bytes below this map evenly onto the alphabet (byte % 62); the rest are drawn again
_EVEN_BELOW = 256 - 256 % len(_PASSWORD_ALPHABET)


def _admin_password(given: str | None) -> str:
    """The given password, else 12 characters drawn evenly from letters and digits, from one read of the
    system's random source (``secrets.choice`` reads it once per character)."""
    if given:
        return given
    chars: list[str] = []
    while len(chars) < 12:
        chars += [_PASSWORD_ALPHABET[b % len(_PASSWORD_ALPHABET)] for b in secrets.token_bytes(24) if b < _EVEN_BELOW]
    return "".join(chars[:12])


def _check_user_data(user_data: str | None) -> None:
    if user_data is None:
        return
    try:
        base64.b64decode(user_data, validate=True)
    except (binascii.Error, ValueError):
        raise Fault(400, "User data needs to be valid base 64.") from None


def _trusted_certs(req: ApiRequest, server: dict[str, Any]) -> list[str] | None:
    """2.63's trusted image certificate ids, if any: policy-checked, and only for a server with an imageRef."""
    certs: list[str] | None = server.get("trusted_image_certificates")
    if not certs:
        return None
    policy.authorize(req.context, "os_compute_api:servers:create:trusted_certs",
                     {"project_id": req.context.project_id, "user_id": req.context.user_id})
    if not server.get("imageRef"):
        raise Fault(400, "Image certificate validation is not supported when booting from volume")
    return certs


def _image_from_bdm(bdms: list[dict[str, Any]]) -> str | None:
    """The image of a boot-from-image BDM (source image → local, boot_index 0); volumes need a volume service."""
    image = None
    for bdm in bdms:
        source, dest = bdm.get("source_type"), bdm.get("destination_type", "local")
        if bdm.get("volume_type") is not None:
            raise Fault(400, "Block Device Mapping is Invalid: volume_type needs a block storage service, which "
                             "this cloud does not have.")
        if dest == "volume" or source in ("volume", "snapshot"):
            raise Fault(400, "Block Device Mapping is Invalid: boot from volume needs a block storage "
                             "service, which this cloud does not have.")
        if source == "image" and str(bdm.get("boot_index", "")) == "0":
            image = bdm.get("uuid")
    return image


async def _image(req: ApiRequest, image_ref: str) -> dict[str, Any]:
    images = req.services.images
    if images is None:
        raise Fault(400, "Can not find requested image")
    try:
        return await images.show(req.context.to_dict(), image_ref)
    except exception.ImageNotFound:
        raise Fault(400, "Can not find requested image") from None


async def _kernel_and_ramdisk(req: ApiRequest, image: dict[str, Any]) -> tuple[str, str]:
    """Nova's ``_handle_kernel_and_ramdisk``: the image's ``kernel_id`` and ``ramdisk_id`` properties, both
    none when the kernel is ``nokernel``; each must be an image the caller can see (fail fast, a 400 as for the
    image itself), and the instance records its id."""
    kernel_id, ramdisk_id = image.get("kernel_id") or None, image.get("ramdisk_id") or None
    if kernel_id == "nokernel":
        return "", ""
    kernel = str((await _image(req, str(kernel_id)))["id"]) if kernel_id else ""
    ramdisk = str((await _image(req, str(ramdisk_id)))["id"]) if ramdisk_id else ""
    return kernel, ramdisk


def _check_image_fits(image: dict[str, Any], flavor: dict[str, Any]) -> None:
    if image.get("status") != "active":
        raise Fault(400, f"Image {image['id']} is not active.")
    if int(image.get("min_ram") or 0) > flavor["memory_mb"]:
        raise Fault(400, "Flavor's memory is too small for requested image.")
    root_bytes = flavor["root_gb"] * 1024 ** 3
    if flavor["root_gb"] and (int(image.get("size") or 0) > root_bytes
                              or int(image.get("min_disk") or 0) > flavor["root_gb"]):
        raise Fault(400, "Flavor's disk is too small for requested image.")


def _availability_zone(req: ApiRequest, requested: str | None) -> tuple[str | None, list[str], list[str]]:
    """(zone, forced hosts, forced nodes) from ``zone[:host[:node]]``; forcing a host is for admins."""
    conf = req.services.conf
    if not requested:
        return conf.default_schedule_zone, [], []
    zone, _, rest = requested.partition(":")
    host, _, node = rest.partition(":")
    if host or node:
        policy.authorize(req.context, "os_compute_api:servers:create:forced_host")
    return zone or None, [host] if host else [], [node] if node else []


def _requested_destination(req: ApiRequest, server: dict[str, Any], forced: bool) -> dict[str, str] | None:
    """2.74's ``host`` and ``hypervisor_hostname``: an admin's wish the scheduler's filters still check (unlike
    ``zone:host:node``, which skips them, and with which it cannot be combined)."""
    host, node = server.get("host"), server.get("hypervisor_hostname")
    if not host and not node:
        return None
    policy.authorize(req.context, "compute:servers:create:requested_destination",
                     {"project_id": req.context.project_id, "user_id": req.context.user_id})
    if forced:
        raise Fault(400, "One mechanism with host and/or hypervisor_hostname and another mechanism with "
                         "zone:host:node are mutually exclusive.")
    return {k: v for k, v in (("host", host), ("node", node)) if v}


async def _check_destination(conn: Any, destination: dict[str, str] | None) -> None:
    """Nova's ``_validate_host_or_node``: a compute node on that host (and with that name) must exist."""
    if destination is None:
        return
    query = select(compute_nodes.c.id)
    if "host" in destination:
        query = query.where(compute_nodes.c.host == destination["host"])
    if "node" in destination:
        query = query.where(compute_nodes.c.hypervisor_hostname == destination["node"])
    if (await conn.execute(query.limit(1))).first() is None:
        raise Fault(400, f"Compute host {destination.get('host') or destination['node']} could not be found.")


async def _check_zone(conn: Any, req: ApiRequest, zone: str | None) -> None:
    """A requested zone must be one the cloud has: the default zone, or an aggregate's ``availability_zone``."""
    if not zone or zone == req.services.conf.default_availability_zone:
        return
    known = (await conn.execute(select(aggregate_metadata.c.aggregate_id).where(
        aggregate_metadata.c.key == "availability_zone", aggregate_metadata.c.value == zone).limit(1))).first()
    if known is None:
        raise Fault(400, f"The requested availability zone is not available (zone {zone}).")


def _counts(server: dict[str, Any]) -> tuple[int, int]:
    min_count = int(server.get("min_count", 1))
    max_count = int(server.get("max_count", min_count))
    if min_count > max_count:
        raise Fault(400, "min_count must be <= max_count")
    return min_count, max_count


async def check_request_limits(conn: Any, req: ApiRequest, metadata: dict[str, str],
                                personality: list[dict[str, str]]) -> None:
    """Nova's per-request limits: metadata items, then the number, path length and content size of injected
    files, each against the project's and the user's limits."""
    ctx, conf = req.context, req.services.conf
    if metadata:
        try:
            await quotas_db.limit_check(conn, conf, ctx.project_id, ctx.user_id, {"metadata_items": len(metadata)})
        except quotas_db.OverQuota as exc:
            raise Fault(403, "Maximum number of metadata items exceeds "
                             f"{exc.quotas['metadata_items']}") from None
    if not personality:
        return
    try:
        await quotas_db.limit_check(conn, conf, ctx.project_id, ctx.user_id, {"injected_files": len(personality)})
    except quotas_db.OverQuota:
        raise Fault(403, "Personality file limit exceeded") from None
    sizes = {"injected_file_path_bytes": max(len(f.get("path") or "") for f in personality),
             "injected_file_content_bytes": max(len(f.get("contents") or "") for f in personality)}
    try:
        await quotas_db.limit_check(conn, conf, ctx.project_id, ctx.user_id, sizes)
    except quotas_db.OverQuota as exc:
        if "injected_file_path_bytes" in exc.overs:
            raise Fault(403, "Personality file path exceeds maximum "
                             f"{exc.quotas['injected_file_path_bytes']}") from None
        raise Fault(403, "Personality file content exceeds maximum "
                         f"{exc.quotas['injected_file_content_bytes']}") from None


async def _check_quota(conn: Any, req: ApiRequest, flavor: dict[str, Any], min_count: int, max_count: int) -> int:
    """Nova's ``check_num_instances_quota``: how many instances (between min and max) the project's and the user's
    instances, cores and ram quotas allow; else 403 naming the resources over.

    The caller holds the project's quota lock, so the count stays true until its transaction commits."""
    ctx = req.context
    vcpus, ram = flavor["vcpus"], flavor["memory_mb"]
    deltas = {"instances": max_count, "cores": max_count * vcpus, "ram": max_count * ram}
    try:
        await quotas_db.check_deltas(conn, req.services.conf, ctx.project_id, ctx.user_id, deltas)
        return max_count
    except quotas_db.OverQuota as exc:
        hard, used, overs = exc.quotas, exc.usages, exc.overs
    # Room left per resource (an unlimited one leaves room for as many instances as the others allow).
    room = {r: (hard[r] - used.get(r, 0)) if hard[r] >= 0 else None for r in deltas}
    allowed = room["instances"] if room["instances"] is not None else max_count
    for resource, per_instance in (("cores", vcpus), ("ram", ram)):
        if per_instance and room[resource] is not None:
            allowed = min(allowed, room[resource] // per_instance)
    if 0 < allowed and min_count <= allowed < max_count:
        return await _check_quota(conn, req, flavor, min_count, allowed)
    requested = {"instances": str(min_count) if min_count == max_count else f"{min_count}-{max_count}",
                 "cores": str(deltas["cores"]), "ram": str(deltas["ram"])}
    raise Fault(403, f"Quota exceeded for {', '.join(overs)}: Requested "
                     f"{', '.join(requested[r] for r in overs)}, but already used "
                     f"{', '.join(str(used.get(r, 0)) for r in overs)} of {', '.join(str(hard[r]) for r in overs)} "
                     f"{', '.join(overs)}")


async def _join_server_group(conn: Any, req: ApiRequest, hints: dict[str, Any], specs: list[dict[str, Any]]
                             ) -> None:
    """The ``group`` scheduler hint: the new servers join that server group, within its server_group_members
    quota, in the boot's transaction. Each request spec carries ``instance_group`` ({uuid, policy, rules}, or
    None without a hint) for the scheduler."""
    group = None
    if hints.get("group"):
        ctx = req.context
        found = await server_groups_db.get(conn, hints["group"], visible_project(ctx))
        if found is None:  # none such, or another project's: Nova's 400 either way
            raise Fault(400, f"Instance group {hints['group']} could not be found.")
        await quotas_db.lock_group(conn, found["id"])
        members = await server_groups_db.count_members(conn, found["id"], ctx.user_id)
        try:
            await quotas_db.limit_check(conn, req.services.conf, ctx.project_id, ctx.user_id,
                                        {"server_group_members": members + len(specs)})
        except quotas_db.OverQuota:
            raise Fault(403, "Quota exceeded, too many servers in group") from None
        await server_groups_db.add_members(conn, found["id"], [s["instance_uuid"] for s in specs])
        group = {"uuid": found["uuid"], "policy": found["policy"], "rules": found["rules"]}
    for spec in specs:
        spec["instance_group"] = group


def _check_networks(networks: Any, max_count: int) -> Any:
    """Nova's checks of ``networks`` that need no Networking service: uuid format, a port or a fixed IP in a
    request for several servers (each needs its own)."""
    if not isinstance(networks, list):
        return networks
    for net in networks:
        if net.get("uuid") and not is_uuid_like(net["uuid"]):
            raise Fault(400, f"Bad networks format: network uuid is not in proper format ({net['uuid']})")
        if not net.get("uuid") and not net.get("port"):
            raise Fault(400, "Bad network format: missing 'uuid'")
        if net.get("port") and max_count > 1:
            raise Fault(400, "Unable to launch multiple instances with a single configured port ID. Please "
                             "launch your instance one by one with different ports.")
        if net.get("fixed_ip") and max_count > 1:
            raise Fault(400, "Failed to launch instances: max_count cannot be greater than 1 if an fixed_ip "
                             "is specified.")
    return networks


async def _validate_with_network_service(req: ApiRequest, networks: Any, group_names: list[str], min_count: int,
                                         max_count: int) -> int:
    """The requested networks and security groups as the Networking service knows them (Nova's
    ``validate_networks``), and how many servers its ports quota allows: fewer than ``min_count``, 403. Without
    a Networking service, a network or port named cannot exist."""
    network = req.services.network
    if network is None:
        for net in networks if isinstance(networks, list) else []:
            if net.get("port"):
                raise Fault(400, f"Port id {net['port']} could not be found.")
            raise Fault(400, f"Network {net['uuid']} could not be found.")
        return max_count
    context = req.context.to_dict()
    requested = neutron.requested_networks(networks)
    allowed = await network.validate_networks(
        context, requested, max_count,
        attach_external=policy.check(req.context, "network:attach_external_network",
                                     {"project_id": req.context.project_id, "user_id": req.context.user_id}))
    if allowed < min_count:
        raise neutron.PortLimitExceeded()
    if isinstance(networks, list) and requested:
        for net, request in zip(networks, requested, strict=True):  # a port's network, found by the check
            net.setdefault("uuid", request["network_id"])
    if group_names and not neutron.is_none(requested):
        await network.validate_security_groups(context, group_names)
    return allowed


async def _hand_to_conductor(conductor: ConductorAPI, context: dict[str, Any], request_spec: dict[str, Any],
                             uuids: list[str]) -> None:
    """Cast the build to the conductors. The rows are committed already, so a cast the transport could not hand
    over (the broker away past ``rpc_response_timeout``, no conductor queue) is not the request's failure: the
    builds stay in BUILD/scheduling, nobody's lease, and the first conductor's recovery pass that sees them older
    than ``[conductor] build_recovery_interval`` schedules them (or, past ``[DEFAULT] instance_build_timeout``,
    puts them in ERROR with a fault). The POST answers 202 as Nova's does once its rows are written."""
    try:
        await conductor.schedule_and_build_instances(context, request_spec, uuids)
    except exception.MessagingTimeout as exc:
        LOG.warning("build of %s not handed to a conductor (%s); the conductors' recovery pass will schedule it",
                    ", ".join(uuids), exc)


async def create(req: ApiRequest) -> Response:
    body = await req.json()
    validation.validate(create_schema(req.version), body)
    ctx = req.context
    policy.authorize(ctx, "os_compute_api:servers:create", {"project_id": ctx.project_id, "user_id": ctx.user_id})
    server = body["server"]
    hints = body.get("os:scheduler_hints") or body.get("OS-SCH-HNT:scheduler_hints") or {}
    min_count, max_count = _counts(server)
    _check_user_data(server.get("user_data"))
    trusted_certs = _trusted_certs(req, server)
    networks = _check_networks(server.get("networks"), max_count)
    zone, force_hosts, force_nodes = _availability_zone(req, server.get("availability_zone"))
    destination = _requested_destination(req, server, bool(force_hosts or force_nodes))
    if server.get("hostname") and max_count > 1:
        raise Fault(400, "Unable to allocate a single hostname to multiple instances")
    bdms = server.get("block_device_mapping_v2") or []
    image_ref = server.get("imageRef") or _image_from_bdm(bdms)
    if not image_ref:
        raise Fault(400, "Missing imageRef attribute")

    async with req.services.db.read() as conn:
        flavor = await flavors_db.get_for_boot(conn, str(server["flavorRef"]).rsplit("/", 1)[-1],
                                               ctx.project_id, ctx.is_admin)
        if flavor is None:
            raise Fault(400, "Invalid flavorRef provided.")
        await _check_zone(conn, req, zone)
        await _check_destination(conn, destination)
        keypair = None
        if server.get("key_name"):
            keypair = await keypairs_db.get(conn, ctx.user_id, server["key_name"])
            if keypair is None:
                raise Fault(400, "Invalid key_name provided.")
    if flavor.get("disabled"):
        raise Fault(400, "Flavor is disabled.")
    group_names = [g["name"] for g in server.get("security_groups") or []]
    max_count = await _validate_with_network_service(req, networks, group_names, min_count, max_count)
    image = await _image(req, image_ref)
    _check_image_fits(image, flavor)
    kernel_id, ramdisk_id = await _kernel_and_ramdisk(req, image)

    metadata = server.get("metadata") or {}
    reservation_id = "r-" + secrets.token_hex(4)
    password = _admin_password(server.get("adminPass"))
    groups = sorted({g["name"] for g in server.get("security_groups") or []} or {"default"})
    flavor_snapshot = {k: flavor[k] for k in ("id", "flavorid", "name", "memory_mb", "vcpus", "root_gb",
                                              "ephemeral_gb", "swap", "rxtx_factor", "extra_specs")}
    image_props = {k: v for k, v in image.items() if k not in ("locations", "direct_url", "file", "self", "schema")}
    conductor = ConductorAPI(req.services.transport)

    async with req.services.db.write() as conn:
        await quotas_db.lock_project(conn, ctx.project_id)
        await check_request_limits(conn, req, metadata, server.get("personality") or [])
        count = await _check_quota(conn, req, flavor, min_count, max_count)
        rows, specs = [], []
        for index in range(count):
            uuid = new_uuid()
            name = server["name"] if count == 1 else f"{server['name']}-{index + 1}"
            rows.append({
                "uuid": uuid, "project_id": ctx.project_id, "user_id": ctx.user_id, "display_name": name,
                "display_description": server.get("description"),
                "hostname": server.get("hostname") or _hostname(name),
                "image_ref": image_ref, "flavor": flavor_snapshot, "vcpus": flavor["vcpus"],
                "memory_mb": flavor["memory_mb"], "root_gb": flavor["root_gb"],
                "ephemeral_gb": flavor["ephemeral_gb"], "vm_state": states.BUILDING,
                "task_state": task_states.SCHEDULING, "power_state": 0, "availability_zone": zone,
                "key_name": keypair["name"] if keypair else None,
                "key_data": keypair["public_key"] if keypair else None,
                "user_data": server.get("user_data"),
                "config_drive": "True" if str(server.get("config_drive", "")).lower() == "true" else "",
                "access_ip_v4": server.get("accessIPv4"),
                "access_ip_v6": validation.normalized_ipv6(server.get("accessIPv6")),
                "reservation_id": reservation_id, "launch_index": index,
                "kernel_id": kernel_id, "ramdisk_id": ramdisk_id,
                "auto_disk_config": server.get("OS-DCF:diskConfig") == "AUTO",
                "system_metadata": {f"image_{k}": v for k, v in image_props.items()
                                    if isinstance(v, str | int | float | bool)},
                "security_groups": groups, "trusted_certs": trusted_certs,
            })
        for row in rows:
            specs.append({
                "instance_uuid": row["uuid"], "project_id": ctx.project_id, "user_id": ctx.user_id,
                "flavor": flavor_snapshot, "image": image_props, "availability_zone": zone,
                "scheduler_hints": hints, "force_hosts": force_hosts, "force_nodes": force_nodes,
                "resources": resources_from_flavor(flavor), "num_instances": count,
                "requested_networks": neutron.requested_networks(networks), "security_group_names": groups,
                "personality": server.get("personality") or [], "requested_destination": destination,
            })
        await _join_server_group(conn, req, hints, specs)
        await instances.create(conn, rows, metadata, specs, ctx.to_dict(), tags=sorted(set(server.get("tags") or [])))

    # the admin password travels with the build casts only (never stored): the config drive's admin_pass
    request_spec = {**specs[0], "instance_uuid": None, "admin_password": password}
    await _hand_to_conductor(conductor, ctx.to_dict(), request_spec, [r["uuid"] for r in rows])

    if str(server.get("return_reservation_id", "")).lower() == "true":
        return json_response({"reservation_id": reservation_id}, status=202)
    self_prefix, bookmark_prefix = req.link_prefix()
    uuid = rows[0]["uuid"]
    body_out = {"server": {
        "id": uuid,
        "links": [{"rel": "self", "href": f"{self_prefix}/servers/{uuid}"},
                  {"rel": "bookmark", "href": f"{bookmark_prefix}/servers/{uuid}"}],
        "OS-DCF:diskConfig": "AUTO" if server.get("OS-DCF:diskConfig") == "AUTO" else "MANUAL",
        "security_groups": [{"name": g} for g in groups],
    }}
    if req.services.conf.api.enable_instance_password:
        body_out["server"]["adminPass"] = password
    return json_response(body_out, status=202, headers=location(f"{self_prefix}/servers/{uuid}"))
