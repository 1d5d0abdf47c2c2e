"""The database side of the metadata service: an instance's record as the metadata documents need it, the
instance that owns a fixed IP, and the password a guest posts."""

from __future__ import annotations

from typing import Any

from oslo_config import cfg
from sqlalchemy import select, update

from stratus.db import info_cache
from stratus.db import instances as instances_db
from stratus.db import keypairs as keypairs_db
from stratus.db.engine import Connection
from stratus.db.models import instances
from stratus.metadata import base, network_data
from stratus.utils import utcnow


def build(conf: cfg.ConfigOpts, instance: dict[str, Any], keypair: dict[str, Any] | None,
          vendordata: dict[str, Any], address: str | None = None,
          extra_md: dict[str, Any] | None = None, content: list[tuple[str, bytes]] | None = None
          ) -> base.InstanceMetadata:
    """The documents of ``instance`` with this deployment's options (dhcp_domain, vendor data providers);
    ``extra_md`` and ``content`` (injected files) are the config drive's only."""
    return base.InstanceMetadata(
        instance=instance, keypair=keypair, network_info=list(instance.get("network_info") or []),
        vendordata=vendordata, vendordata_providers=list(conf.api.vendordata_providers),
        dhcp_domain=conf.api.dhcp_domain or "", address=address, extra_md=dict(extra_md or {}),
        content=list(content or []))


async def load_instance(conn: Connection, uuid: str) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """The live instance ``uuid`` (row, user metadata, system metadata) and its key pair, or None."""
    row = await instances_db.get(conn, uuid)
    if row is None:
        return None
    keypair = None
    if row.get("key_name"):
        keypair = await keypairs_db.get(conn, row["user_id"], row["key_name"])
    return row, keypair


async def instance_by_fixed_ip(conn: Connection, address: str) -> str | None:
    """The live instance one of whose VIFs has the fixed IP ``address`` (Nova asks Neutron for the port), or
    None. The text filter narrows the rows; the network info decides."""
    for uuid in await info_cache.find_by_address(conn, address):
        fixed, _floating = network_data.ec2_ip_info(await info_cache.get(conn, uuid))
        if address in fixed:
            return str(uuid)
    return None


async def set_password(conn: Connection, uuid: str, password: str) -> bool | None:
    """Store the password a guest posts (Nova's ``password_0``..``password_3`` system metadata) unless one is
    there already; False when there is one, None when the instance is gone. Call it in a write transaction: the
    check and the write are one unit."""
    row = (await conn.execute(select(instances.c.system_metadata).where(
        instances.c.uuid == uuid, instances.c.deleted == 0))).first()
    if row is None:
        return None
    sysmeta = dict(row[0] or {})
    if base.extract_password(sysmeta):
        return False
    sysmeta.update(base.convert_password(password))
    await conn.execute(update(instances).where(instances.c.uuid == uuid)
                       .values(system_metadata=sysmeta, updated_at=utcnow()))
    return True


async def clear_password(conn: Connection, uuid: str) -> bool:
    """Forget the password the guest posted (Nova's ``os-server-password`` clear: its chunks emptied; the guest's
    own password is untouched, and the guest may post a new one); False when the instance is gone."""
    row = (await conn.execute(select(instances.c.system_metadata).where(
        instances.c.uuid == uuid, instances.c.deleted == 0))).first()
    if row is None:
        return False
    sysmeta = {**(row[0] or {}), **base.convert_password("")}
    await conn.execute(update(instances).where(instances.c.uuid == uuid)
                       .values(system_metadata=sysmeta, updated_at=utcnow()))
    return True
