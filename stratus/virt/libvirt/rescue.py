"""Rescue and unrescue of libvirt guests (Nova's legacy, non-stable-device rescue).

``rescue`` keeps the guest's definition in ``unrescue.xml``, makes ``disk.rescue`` from the rescue image (a qcow2
overlay on the host's cached copy, as a root disk is made) and, where the rescue image names them, its own
``kernel.rescue`` and ``ramdisk.rescue`` (else the guest's own kernel and ramdisk), and redefines the guest with
the rescue disk first (``vda``) and its own root disk second (``vdb``), its config drive and NICs kept, then
starts it. ``unrescue`` defines the guest again from ``unrescue.xml`` and starts it; the rescue files go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

import libvirt

from stratus import exception
from stratus.context import RequestContext
from stratus.image.backends.base import image_info
from stratus.objects.states import power_state
from stratus.virt.driver import ConfigDrive
from stratus.virt.libvirt import config as guest_config
from stratus.virt.libvirt import files

if TYPE_CHECKING:
    from stratus.virt.libvirt.driver import LibvirtDriver

UNRESCUE_XML = "unrescue.xml"
RESCUE_FILES = ("disk.rescue", "kernel.rescue", "ramdisk.rescue", UNRESCUE_XML)


class InstanceNotRescuable(exception.StratusException):
    msg_fmt = "Instance %(instance_id)s cannot be rescued: %(reason)s"


def with_interfaces(xml: str, source_xml: str) -> str:
    """``xml`` with the ``<interface>`` devices of ``source_xml`` added (the guest keeps its NICs in rescue)."""
    dom = ET.fromstring(xml)
    devices = dom.find("devices")
    source = ET.fromstring(source_xml).find("devices")
    if devices is None or source is None:
        return xml
    for nic in source.findall("interface"):
        devices.append(nic)
    return ET.tostring(dom, encoding="unicode")


def _remove_rescue_files(inst_dir: str) -> None:
    for name in RESCUE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(inst_dir, name))


def _stop(conn: libvirt.virConnect, dom: libvirt.virDomain) -> None:
    try:
        dom.destroy()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # not running
            raise


class RescueMixin:
    """LibvirtDriver's rescue methods (the driver class mixes this in; ``self`` is the driver)."""

    async def rescue(self: LibvirtDriver, instance: dict[str, Any], rescue_image: dict[str, Any],
                     admin_password: str | None) -> None:
        """Boot ``rescue_image`` (else the instance's own image) with the guest's root disk second. On failure the
        guest is defined as before (and running again if it ran), its rescue files gone."""
        uuid = instance["uuid"]
        if self.rbd is not None:
            raise InstanceNotRescuable(instance_id=uuid, reason="its disks are in Ceph (images_type rbd)")
        if self.images is None or self.cache is None or self.backend is None:
            raise InstanceNotRescuable(instance_id=uuid, reason="this compute host has no image service")
        context = RequestContext.admin().to_dict()
        image = dict(rescue_image) if rescue_image.get("id") else \
            await self.images.show(context, str(instance["image_ref"]))
        inst_dir = self.instance_dir(instance)
        kept_path = os.path.join(inst_dir, UNRESCUE_XML)
        # a rescue after a failed one: the definition kept then is the guest's own
        original = await asyncio.to_thread(files.read, kept_path) or await self.host.call(
            lambda conn: str(self._domain(conn, instance).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
        await asyncio.to_thread(files.write, kept_path, original)
        was_running = (await self.get_info(instance)).power_state == power_state.RUNNING
        try:
            xml = await self._rescue_xml(instance, image, original)
            await self.power_off(instance, self.conf.shutdown_timeout, 10)

            def boot(conn: libvirt.virConnect) -> None:
                conn.defineXML(xml).create()

            await self.host.call(boot)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.host.call(lambda conn: _stop(conn, self._domain(conn, instance)))
            with contextlib.suppress(Exception):
                await self.host.call(lambda conn: conn.defineXML(original))
                if was_running:
                    await self.power_on(instance)
            await asyncio.to_thread(_remove_rescue_files, inst_dir)
            raise

    async def _rescue_xml(self: LibvirtDriver, instance: dict[str, Any], image: dict[str, Any], original: str
                          ) -> str:
        assert self.images is not None and self.cache is not None and self.backend is not None
        inst_dir = self.instance_dir(instance)
        guest = self._guest_config(instance, image)
        base = await self.cache.fetch(image)
        info = await image_info(base)
        if info.get("backing-filename"):
            raise exception.ImageUnacceptable(image_id=image["id"], reason="it has a backing file")
        rescue_path = os.path.join(inst_dir, "disk.rescue")
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(os.unlink, rescue_path)
        rescue_disk = await self.backend.create(base, str(info["format"]), rescue_path,
                                                int(str(info["virtual-size"])))
        root = guest.disks[0]
        own_format = str((await image_info(root.path, force_share=True))["format"])
        prefix = root.target_dev[:-1]
        guest.disks = [guest_config.Disk(path=rescue_path, driver_format=rescue_disk.driver_format,
                                         target_dev=f"{prefix}a", bus=root.bus),
                       guest_config.Disk(path=root.path, driver_format=own_format, target_dev=f"{prefix}b",
                                         bus=root.bus)]
        props = {**(image.get("properties") or {}), **image}
        for key, name in (("kernel_id", "kernel"), ("ramdisk_id", "ramdisk")):
            own = os.path.join(inst_dir, name)
            if props.get(key):  # the rescue image's own, else the guest's (Nova's rescue_kernel_id fallback)
                part = await self.images.show(RequestContext.admin().to_dict(), str(props[key]))
                target = os.path.join(inst_dir, f"{name}.rescue")
                await asyncio.to_thread(files.link_or_copy, await self.cache.fetch(part), target)
                setattr(guest, name, target)
            elif await asyncio.to_thread(os.path.exists, own):
                setattr(guest, name, own)
        drive = os.path.join(inst_dir, ConfigDrive.FILE_NAME)
        if await asyncio.to_thread(os.path.exists, drive):
            guest.disks.append(guest_config.config_drive_disk(drive, guest.machine_type))
        return with_interfaces(guest.to_xml(), original)

    async def unrescue(self: LibvirtDriver, instance: dict[str, Any]) -> None:
        """The guest defined again as before the rescue and started; the rescue files go."""
        inst_dir = self.instance_dir(instance)
        original = await asyncio.to_thread(files.read, os.path.join(inst_dir, UNRESCUE_XML))
        if original is None:
            raise InstanceNotRescuable(instance_id=instance["uuid"], reason="it is not rescued (no unrescue.xml)")

        def restore(conn: libvirt.virConnect) -> None:
            _stop(conn, self._domain(conn, instance))
            conn.defineXML(original).create()

        await self.host.call(restore)
        await asyncio.to_thread(_remove_rescue_files, inst_dir)

