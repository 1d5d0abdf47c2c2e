"""The instance info cache (Nova's ``instance_info_caches``): each instance's network info, the VIFs of its ports
as the Networking service last described them. Written by the compute host that allocated or changed the ports;
read by the server views, ``/ips``, the metadata service and the driver's destroy."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Text, bindparam, cast, select, update

from stratus.db.engine import Connection
from stratus.db.group_commit import InlineConnection
from stratus.db.models import instance_info_caches, instances
from stratus.db.prepared import in_json_array, prepared
from stratus.utils import utcnow

#: prepared (stratus/db/prepared.py): one new instance is one execution, several go through executemany
_NEW = prepared(instance_info_caches.insert())


async def create(conn: Connection, uuids: list[str]) -> None:
    """An empty cache for each new instance (written with the instance, as Nova does)."""
    now = utcnow()
    await conn.execute(_NEW, [
        {"instance_uuid": u, "network_info": [], "created_at": now, "deleted": 0} for u in uuids])


#: built once (each build reads and writes its cache): the statement's cache key is kept, only the uuid is bound
_OF = prepared(select(instance_info_caches.c.network_info)
               .where(instance_info_caches.c.instance_uuid == bindparam("b_uuid")))
_SAVE = prepared(update(instance_info_caches).where(instance_info_caches.c.instance_uuid == bindparam("b_uuid"))
         .values(network_info=bindparam("b_network_info", type_=instance_info_caches.c.network_info.type),
                 updated_at=bindparam("b_now")))


async def get(conn: Connection, uuid: str) -> list[dict[str, Any]]:
    row = (await conn.execute(_OF, {"b_uuid": uuid})).first()
    return list(row[0] or []) if row else []


async def get_many(conn: Connection, uuids: list[str]) -> dict[str, list[dict[str, Any]]]:
    rows = await conn.execute(select(instance_info_caches.c.instance_uuid, instance_info_caches.c.network_info)
                              .where(instance_info_caches.c.instance_uuid.in_(uuids)))
    return {u: list(n or []) for u, n in rows}


async def get_many_stored(conn: Connection, uuids: list[str]) -> dict[str, str | None]:
    """The network info of these instances as stored (JSON text): hashable, for keys of rendered bodies."""
    statement = _STORED_OF_EACH if isinstance(conn, InlineConnection) else _STORED_OF
    return {uuid: stored for uuid, stored in await conn.execute(statement, {"b_uuids": uuids})}


#: built once, the uuids bound at execution; on SQLite's inline connection as one JSON array, prepared
_STORED_OF = select(instance_info_caches.c.instance_uuid, cast(instance_info_caches.c.network_info, Text)
                    ).where(instance_info_caches.c.instance_uuid.in_(bindparam("b_uuids", expanding=True)))
_STORED_OF_EACH = prepared(select(
    instance_info_caches.c.instance_uuid, cast(instance_info_caches.c.network_info, Text).label("network_info"))
    .where(in_json_array(instance_info_caches.c.instance_uuid)))


async def save(conn: Connection, uuid: str, network_info: list[dict[str, Any]]) -> None:
    """Replace the instance's network info (an instance created before the cache gets one)."""
    result = await conn.execute(_SAVE, {"b_uuid": uuid, "b_network_info": network_info, "b_now": utcnow()})
    if not result.rowcount:
        await conn.execute(instance_info_caches.insert().values(
            instance_uuid=uuid, network_info=network_info, created_at=utcnow(), deleted=0))


async def find_by_address(conn: Connection, address: str) -> list[str]:
    """The live instances whose cached network info mentions ``address`` (a candidate list: the caller checks the
    address really is one of their fixed IPs)."""
    query = (select(instance_info_caches.c.instance_uuid)
             .join(instances, instances.c.uuid == instance_info_caches.c.instance_uuid)
             .where(instances.c.deleted == 0,
                    cast(instance_info_caches.c.network_info, Text).like(f'%"{address}"%')))
    return [u for (u,) in await conn.execute(query)]


async def matching_fixed_ips(conn: Connection, ip: str | None, ip6: str | None,
                             project_id: str | None = None) -> list[str]:
    """The instances (of ``project_id``, or all) with a fixed IPv4 address that the pattern ``ip`` matches, or an
    IPv6 one that ``ip6`` matches, at its start (``re.match``): Nova's ``_ip_filter`` of the servers list, which
    reads the same network info. Patterns are checked by the API (they compile)."""
    patterns = {4: re.compile(ip) if ip is not None else None, 6: re.compile(ip6) if ip6 is not None else None}
    query = (select(instance_info_caches.c.instance_uuid, instance_info_caches.c.network_info)
             .join(instances, instances.c.uuid == instance_info_caches.c.instance_uuid))
    if project_id is not None:
        query = query.where(instances.c.project_id == project_id)
    out = []
    for uuid, network_info in await conn.execute(query):
        for vif in network_info or []:
            addresses = [(ip_entry.get("version") or subnet.get("version") or 4, ip_entry.get("address") or "")
                         for subnet in (vif.get("network") or {}).get("subnets") or []
                         for ip_entry in subnet.get("ips") or []]
            if any((p := patterns.get(v)) is not None and p.match(a) for v, a in addresses):
                out.append(uuid)
                break
    return out
