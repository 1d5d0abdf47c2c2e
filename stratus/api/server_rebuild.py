"""Server action ``rebuild``, as Nova's: the server keeps its id, host, flavor and claim, and gets a new image
(and, if given, a new name, metadata, access IPs, description 2.19, key pair 2.54, user data 2.57 and trusted
certificates 2.63), and up to 2.56 files to inject (``personality``, onto the config drive as at boot, within
the same limits). 202 with the server (and its new ``adminPass`` with ``[api] enable_instance_password``).

The request checks the state (active, stopped or error; nothing under way) and the image (found, active, fits
the flavor), then in one compare-and-swap records the new values with ``task_state`` rebuilding and the
instance action ``rebuild``; the host destroys the guest and spawns the image (compute/rebuild.py).
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from starlette.responses import Response

from stratus import exception
from stratus.api import servers_create, validation
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest, json_response
from stratus.api.server_state import state_conflicts
from stratus.api.servers import load_instance, view_for
from stratus.compute import api as compute_api
from stratus.compute.rpcapi import ComputeAPI
from stratus.db import instances, quotas
from stratus.db import keypairs as keypairs_db
from stratus.identity import policy
from stratus.objects import states
from stratus.objects.states import task_states

_V219 = APIVersion.parse("2.19")  # description
_V254 = APIVersion.parse("2.54")  # key_name
_V257 = APIVersion.parse("2.57")  # user_data; personality gone
_V263 = APIVersion.parse("2.63")  # trusted_image_certificates

REBUILD = compute_api.PowerAction("rebuild", "rebuild_instance", task_states.REBUILDING,
                                  (states.ACTIVE, states.STOPPED, states.ERROR))
_BOOLEAN = {"type": ["boolean", "string"],
            "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
                     False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]}


def _schema(req: ApiRequest) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": validation.name, "imageRef": {"type": "string", "format": "uuid"},
        "adminPass": {"type": "string"}, "metadata": validation.metadata, "preserve_ephemeral": _BOOLEAN,
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": "string", "format": "ipv4"}, "accessIPv6": {"type": "string", "format": "ipv6"},
    }
    if req.at_least(_V219):
        props["description"] = validation.description
    if req.at_least(_V254):
        props["key_name"] = {"oneOf": [validation.name_with_leading_trailing_spaces, {"type": "null"}]}
    if req.at_least(_V257):
        props["user_data"] = {"oneOf": [{"type": "string", "format": "base64", "maxLength": 65535},
                                        {"type": "null"}]}
    if not req.at_least(_V257):
        props["personality"] = servers_create.PERSONALITY_SCHEMA
    if req.at_least(_V263):
        props["trusted_image_certificates"] = validation.trusted_certs
    return {"type": "object",
            "properties": {"rebuild": {"type": "object", "properties": props, "required": ["imageRef"],
                                       "additionalProperties": False}},
            "required": ["rebuild"], "additionalProperties": False}


def _true(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "on", "yes")


async def _image(req: ApiRequest, image_ref: str, flavor: dict[str, Any]) -> dict[str, Any]:
    """The new image, checked as Nova's rebuild does (400s)."""
    if req.services.images is None:
        raise Fault(400, "Cannot find image for rebuild")
    try:
        image = await req.services.images.show(req.context.to_dict(), image_ref)
    except exception.ImageNotFound:
        raise Fault(400, "Cannot find image for rebuild") from None
    if image.get("status") != "active":
        raise Fault(400, f"Image {image['id']} is not active.")
    if int(image.get("min_ram") or 0) > flavor["memory_mb"]:
        raise Fault(400, "Flavor's memory is too small for requested image.")
    if flavor["root_gb"] and (int(image.get("size") or 0) > flavor["root_gb"] * 1024 ** 3
                              or int(image.get("min_disk") or 0) > flavor["root_gb"]):
        raise Fault(400, "Flavor's disk is too small for requested image.")
    return dict(image)


async def _values(req: ApiRequest, inst: dict[str, Any], args: dict[str, Any], image: dict[str, Any]
                  ) -> dict[str, Any]:
    """The instance columns the rebuild sets with its task_state."""
    props = {k: v for k, v in image.items() if k not in ("locations", "direct_url", "file", "self", "schema")}
    sysmeta = {k: v for k, v in (inst["system_metadata"] or {}).items() if not k.startswith("image_")}
    sysmeta.update({f"image_{k}": v for k, v in props.items() if isinstance(v, str | int | float | bool)})
    values: dict[str, Any] = {"image_ref": image["id"], "system_metadata": sysmeta, "progress": 0}
    if "name" in args:
        values["display_name"] = args["name"].strip()
    if "accessIPv4" in args:
        values["access_ip_v4"] = args["accessIPv4"]
    if "accessIPv6" in args:
        values["access_ip_v6"] = args["accessIPv6"]
    if "OS-DCF:diskConfig" in args:
        values["auto_disk_config"] = args["OS-DCF:diskConfig"] == "AUTO"
    if "description" in args:
        values["display_description"] = args["description"]
    if "user_data" in args:
        values["user_data"] = args["user_data"]
    if "trusted_image_certificates" in args:
        policy.authorize(req.context, "os_compute_api:servers:rebuild:trusted_certs",
                         {"project_id": inst["project_id"]})
        values["trusted_certs"] = args["trusted_image_certificates"]
    if "key_name" in args:
        if args["key_name"] is None:
            values.update(key_name=None, key_data=None)
        else:
            async with req.services.db.read() as conn:
                keypair = await keypairs_db.get(conn, inst["user_id"], args["key_name"])
            if keypair is None:
                raise Fault(400, "Invalid key_name provided.")
            values.update(key_name=keypair["name"], key_data=keypair["public_key"])
    return values


async def rebuild(req: ApiRequest, body: dict[str, Any]) -> Response:
    validation.validate(_schema(req), body)
    args = body["rebuild"]
    server_id = req.path["server_id"]
    inst = await load_instance(req, server_id, "os_compute_api:servers:rebuild")
    ctx = req.context
    with state_conflicts("rebuild", server_id):
        compute_api.check_state(inst, REBUILD, ctx.is_admin)
    image = await _image(req, args["imageRef"], inst["flavor"])
    metadata = args.get("metadata")
    if metadata:
        try:
            async with req.services.db.read() as conn:
                await quotas.limit_check(conn, req.services.conf, inst["project_id"], inst["user_id"],
                                         {"metadata_items": len(metadata)})
        except quotas.OverQuota:
            raise Fault(403, "Quota exceeded, too many metadata items.") from None
    personality = list(args.get("personality") or [])
    if personality:  # the injected files' limits, as a boot's
        async with req.services.db.read() as conn:
            await servers_create.check_request_limits(conn, req, {}, personality)
    values = await _values(req, inst, args, image)
    password = args.get("adminPass") or "".join(secrets.choice(string.ascii_letters + string.digits)
                                                for _ in range(12))
    action = compute_api.PowerAction(REBUILD.name, REBUILD.method, REBUILD.task_state, REBUILD.vm_states,
                                     values=tuple(values.items()))
    with state_conflicts("rebuild", server_id):
        claimed = await compute_api.claim(req.services.db, ctx.to_dict(), inst["uuid"], action, ctx.is_admin)
    if metadata is not None:
        async with req.services.db.write() as conn:
            await instances.set_metadata(conn, inst["uuid"], metadata, replace=True)
    image_meta = {k: v for k, v in image.items() if k not in ("locations", "direct_url", "file", "self", "schema")}
    try:
        await ComputeAPI(req.services.transport).rebuild_instance(
            ctx.to_dict(), claimed["host"], inst["uuid"], image_meta, password,
            preserve_ephemeral=_true(args.get("preserve_ephemeral", False)), injected_files=personality)
    except Exception:
        async with req.services.db.write() as conn:
            await instances.update_instance(conn, inst["uuid"], {"task_state": None},
                                            expected_task_state=(task_states.REBUILDING,))
        raise
    async with req.services.db.read() as conn:
        current = await instances.get(conn, inst["uuid"]) or inst
    server = (await view_for(req, [current], one=True)).full(current, update=True, rebuild=True)
    if req.services.conf.api.enable_instance_password:
        server["adminPass"] = password
    return json_response({"server": server}, status=202)
