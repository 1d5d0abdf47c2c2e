"""The build's config-drive step (Nova's ``configdrive.required_by`` and ``update_instance``, and the metadata
the libvirt driver writes on the drive): decide whether the instance gets one, gather its documents, and record
that it has one, so the server's ``config_drive`` says what was built.

A drive is built when the server asked for it (``config_drive: true``), when ``[DEFAULT] force_config_drive`` is
set (for instances never launched before), or when the image says ``img_config_drive=mandatory``. A host whose
driver cannot attach one fails the build with a fault, without a reschedule: the request asked for something,
and the operator's fleet says where it can be had.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from oslo_config import cfg

from stratus import exception
from stratus.db import instances
from stratus.db.engine import Database
from stratus.metadata import source, vendordata
from stratus.virt.driver import ComputeDriver, ConfigDrive


def check_options(conf: cfg.ConfigOpts) -> None:
    """At compute start: the config drive options are ones this host can honour (``config_drive_format``,
    ``vendordata_providers``, a readable ``vendordata_jsonfile_path``), so a bad one stops the service with the
    reason instead of failing builds later. Raises ValueError."""
    try:
        conf.config_drive_format, conf.api.config_drive_skip_versions  # noqa: B018 - validated on access
        vendordata.load_static(conf)
    except (cfg.Error, vendordata.VendorDataError) as exc:
        raise ValueError(str(exc)) from exc


def required_by(conf: cfg.ConfigOpts, instance: dict[str, Any], image_meta: dict[str, Any]) -> bool:
    props = {**image_meta, **(image_meta.get("properties") or {})}
    asked = str(instance.get("config_drive") or "").lower() in ("true", "1", "yes")
    return (asked or (conf.force_config_drive and not instance.get("launched_at"))
            or str(props.get("img_config_drive") or "optional") == "mandatory")


def decode_files(uuid: str, personality: list[dict[str, str]]) -> list[tuple[str, bytes]]:
    """Nova's ``_decode_files``: the injected files (``personality``, base64 contents checked by the API) as
    (path, bytes). Raises BuildAbortException for contents that do not decode (a request spec written by
    something other than the API)."""
    out = []
    for item in personality:
        path = str(item.get("path") or "")
        try:
            out.append((path, base64.b64decode(str(item.get("contents") or ""))))
        except (binascii.Error, ValueError):
            raise exception.BuildAbortException(
                instance_uuid=uuid, reason=f"Invalid Base 64 data for file {path}") from None
    return out


async def prepare(conf: cfg.ConfigOpts, db: Database, driver: ComputeDriver, instance: dict[str, Any],
                  image_meta: dict[str, Any], admin_password: str | None = None,
                  injected_files: list[dict[str, str]] | None = None) -> ConfigDrive | None:
    """The config drive of ``instance`` for the driver's spawn, or None when it gets none. Raises
    BuildAbortException when one is needed and the driver cannot attach it.

    ``admin_password`` (the create response's ``adminPass``, carried in the build cast, never stored) goes into
    the drive's meta_data.json as ``admin_pass``, and ``injected_files`` (the request's ``personality``) into
    ``openstack/content/``, as Nova's libvirt driver writes them; neither is ever served by the metadata API."""
    if not required_by(conf, instance, image_meta):
        return None
    uuid = instance["uuid"]
    content = decode_files(uuid, injected_files or [])
    if not driver.capabilities.supports_config_drive:
        raise exception.BuildAbortException(
            instance_uuid=uuid, reason=f"a config drive is required but the compute driver {type(driver).__name__} "
                                       "cannot attach one")
    async with db.read() as conn:
        found = await source.load_instance(conn, uuid)
    if found is None:
        raise exception.InstanceNotFound(instance_id=uuid)
    row, keypair = found
    meta = source.build(conf, row, keypair, vendordata.load_static(conf),
                        extra_md={"admin_pass": admin_password} if admin_password else None, content=content)
    files = tuple(meta.metadata_for_config_drive(conf.api.config_drive_skip_versions.split(" ")))
    if row.get("config_drive") != "True":  # forced or mandatory: the server shows the drive it has
        async with db.write() as conn:
            await instances.update_instance(conn, uuid, {"config_drive": "True"})
        instance["config_drive"] = "True"
    return ConfigDrive(files=files)
