"""The scheduling lease of a build: which conductor is choosing a host for an instance right now.

An instance waiting for a host (``building``/``scheduling``, no host) is worked on by at most one conductor at a
time. Its request spec row records that conductor (``conductor_id``, its services row) and a ``generation`` that
moves at every hand-over, so each take is a compare-and-swap and exactly one of several takers wins:

- the API's cast takes a new build (generation 0, nobody's);
- a compute host that gives a failed build back for a reschedule releases the lease (nobody's again) and the
  conductor that receives its cast takes it;
- a conductor's recovery pass takes over the build of a conductor that died (its service is down, or it is this
  conductor's own previous run), or a build nobody took in time, at the generation it saw.

Once the instance has a host (or went to ERROR, or was deleted) the lease no longer matters: the host owns it.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, or_, select, update

from stratus.db.engine import Connection
from stratus.db.models import allocations, instances, request_specs, resource_providers, services
from stratus.db.prepared import prepared
from stratus.objects import states
from stratus.objects.states import task_states
from stratus.utils import utcnow

_SPECS = request_specs.c


#: built once (every boot request takes its builds): the uuids, the conductor and the time bound at execution
_TAKE_NEW = (update(request_specs)
             .where(_SPECS.instance_uuid.in_(bindparam("b_uuids", expanding=True)), _SPECS.generation == 0,
                    _SPECS.conductor_id.is_(None))
             .values(conductor_id=bindparam("b_conductor"), generation=1, updated_at=bindparam("b_now"))
             .returning(_SPECS.instance_uuid))
#: the same for a boot of one server: an equality, which the fast path runs (stratus/db/prepared.py)
_TAKE_ONE = prepared(update(request_specs)
                     .where(_SPECS.instance_uuid == bindparam("b_uuid"), _SPECS.generation == 0,
                            _SPECS.conductor_id.is_(None))
                     .values(conductor_id=bindparam("b_conductor"), generation=1, updated_at=bindparam("b_now"))
                     .returning(_SPECS.instance_uuid))


async def take_new(conn: Connection, uuids: list[str], conductor_id: int) -> list[str]:
    """Take the builds of a boot request that no conductor has taken yet; returns those taken (one statement)."""
    if not uuids:
        return []
    if len(uuids) == 1:
        result = await conn.execute(_TAKE_ONE, {"b_uuid": uuids[0], "b_conductor": conductor_id, "b_now": utcnow()})
    else:
        result = await conn.execute(_TAKE_NEW, {"b_uuids": uuids, "b_conductor": conductor_id, "b_now": utcnow()})
    taken = {row[0] for row in result}
    return [u for u in uuids if u in taken]


async def take_released(conn: Connection, uuid: str, conductor_id: int) -> bool:
    """Take a build a compute host gave back (a reschedule): only while nobody holds it."""
    result = await conn.execute(
        update(request_specs).where(_SPECS.instance_uuid == uuid, _SPECS.conductor_id.is_(None))
        .values(conductor_id=conductor_id, generation=_SPECS.generation + 1, updated_at=utcnow()))
    return bool(result.rowcount == 1)


async def take_over(conn: Connection, uuid: str, conductor_id: int, generation: int) -> bool:
    """Take a build over from whoever held it at ``generation``: False if it changed hands since."""
    result = await conn.execute(
        update(request_specs).where(_SPECS.instance_uuid == uuid, _SPECS.generation == generation)
        .values(conductor_id=conductor_id, generation=generation + 1, updated_at=utcnow()))
    return bool(result.rowcount == 1)


async def release(conn: Connection, uuid: str) -> None:
    """Nobody's: the build is on its way to the conductors again (a cast) and the first to take it has it."""
    await conn.execute(update(request_specs).where(_SPECS.instance_uuid == uuid)
                       .values(conductor_id=None, generation=_SPECS.generation + 1, updated_at=utcnow()))


_HOLDER = prepared(select(_SPECS.conductor_id).where(_SPECS.instance_uuid == bindparam("b_uuid")).with_for_update())


async def held(conn: Connection, uuid: str, conductor_id: int) -> bool:
    """Whether ``conductor_id`` still holds the build; the row stays locked to the end of the caller's
    transaction (PostgreSQL; SQLite's write transaction already excludes every other writer)."""
    row = (await conn.execute(_HOLDER, {"b_uuid": uuid})).first()
    return row is not None and row[0] == conductor_id


#: the instance pointed at its claimed host, if still building/scheduling and its lease still this conductor's,
#: in one statement (built once: every build runs it)
_PLACE_HELD = prepared(update(instances)
                       .where(instances.c.uuid == bindparam("b_uuid"), instances.c.deleted == 0,
                              instances.c.vm_state == states.BUILDING,
                              instances.c.task_state == task_states.SCHEDULING,
                              exists().where(_SPECS.instance_uuid == instances.c.uuid,
                                             _SPECS.conductor_id == bindparam("b_conductor")))
                       .values(host=bindparam("b_host"), node=bindparam("b_node"),
                               launched_on=bindparam("b_host"), availability_zone=bindparam("b_zone"),
                               updated_at=bindparam("b_now")))


async def place_held(conn: Connection, uuid: str, conductor_id: int, host: str, node: str, zone: str) -> bool:
    """Point a build at its claimed ``host``/``node`` in ``zone`` if ``conductor_id`` still holds its lease and it
    still waits for a host (live, ``building``/``scheduling``), in one statement: ``held`` and the instance's
    compare-and-swap at once. False: one of the two no longer holds (``held`` tells which).

    For SQLite only, where the write transaction excludes every other writer, so the lease read in the UPDATE
    holds to the commit as ``held``'s does; PostgreSQL needs ``held``'s row lock (``FOR UPDATE``), which a
    subquery of the UPDATE does not take."""
    result = await conn.execute(_PLACE_HELD, {"b_uuid": uuid, "b_conductor": conductor_id, "b_host": host,
                                              "b_node": node, "b_zone": zone, "b_now": utcnow()})
    return bool(result.rowcount == 1)


async def waiting(conn: Connection) -> list[dict[str, Any]]:
    """Every live instance still waiting for a compute host to take it (``building``/``scheduling``), with its
    lease, the holder's services row (liveness), its request spec, the time it was last handed over and, once
    it was cast to a host, that host's compute services row."""
    c, s = instances.c, services.c
    host_services = services.alias("host_service")
    h = host_services.c
    query = (select(c.uuid, c.host, c.reservation_id, c.created_at, _SPECS.spec, _SPECS.conductor_id,
                    _SPECS.generation, func.coalesce(_SPECS.updated_at, _SPECS.created_at).label("since"),
                    s.last_seen_up, s.updated_at.label("service_updated_at"),
                    s.created_at.label("service_created_at"), s.forced_down,
                    h.last_seen_up.label("host_last_seen_up"), h.updated_at.label("host_updated_at"),
                    h.created_at.label("host_created_at"), h.forced_down.label("host_forced_down"))
             .select_from(instances.outerjoin(request_specs, _SPECS.instance_uuid == c.uuid)
                          .outerjoin(services, s.id == _SPECS.conductor_id)
                          .outerjoin(host_services, (h.host == c.host) & (h.binary == "nova-compute")))
             .where(c.deleted == 0, c.vm_state == states.BUILDING, c.task_state == task_states.SCHEDULING)
             .order_by(c.created_at, c.launch_index))
    rows = []
    for r in (await conn.execute(query)).mappings():
        row = dict(r)
        row["service"] = None if r["service_created_at"] is None else {
            "last_seen_up": r["last_seen_up"], "updated_at": r["service_updated_at"],
            "created_at": r["service_created_at"], "forced_down": r["forced_down"]}
        #: the compute service of the host the build was cast to (None: no host yet, or its row is gone)
        row["host_service"] = None if r["host_created_at"] is None else {
            "last_seen_up": r["host_last_seen_up"], "updated_at": r["host_updated_at"],
            "created_at": r["host_created_at"], "forced_down": r["host_forced_down"]}
        rows.append(row)
    return rows


async def still_waiting(conn: Connection, uuid: str, generation: int, host: str | None = None) -> bool:
    """The instance waits for a host to take it (none chosen yet, or still ``host``, which never took it) and
    its lease is still at ``generation`` (checked inside a take-over)."""
    c = instances.c
    row = (await conn.execute(
        select(c.uuid).select_from(instances.join(request_specs, _SPECS.instance_uuid == c.uuid))
        .where(c.uuid == uuid, c.deleted == 0, c.vm_state == states.BUILDING,
               c.task_state == task_states.SCHEDULING, c.host.is_(None) if host is None else c.host == host,
               _SPECS.generation == generation))).first()
    return row is not None


#: task states of an instance whose allocation may be on another node than its own, for now
_NOT_PLACED_YET = (task_states.SCHEDULING, task_states.RESIZE_PREP, task_states.RESIZE_MIGRATING,
                   task_states.RESIZE_MIGRATED, task_states.RESIZE_FINISH, task_states.RESIZE_REVERTING,
                   task_states.MIGRATING, task_states.REBUILDING, task_states.UNSHELVING)


async def stranded_allocations(conn: Connection) -> list[str]:
    """Consumers holding allocations that nothing will ever give back: instances deleted, or in ERROR without a
    host (a claim that landed after the instance had already failed)."""
    c = instances.c
    query = (select(allocations.c.consumer_id).distinct()
             .select_from(allocations.join(instances, c.uuid == allocations.c.consumer_id))
             .where((c.deleted != 0) | ((c.vm_state == states.ERROR) & c.host.is_(None))))
    return [r[0] for r in await conn.execute(query)]


async def misplaced_allocations(conn: Connection) -> list[tuple[str, int]]:
    """(consumer, provider id) of allocations a placed instance holds on a provider that is not its node's: a
    claim made for it by a scheduler whose reply nobody was waiting for any more (a duplicate delivery after a
    broker failure, or a call the conductor had given up on). Instances still being scheduled are left out (a
    reschedule claims the new host before it records it), and so are instances being moved (a resize or
    migration claims the destination for the instance while its node is still the source's)."""
    c, a, rp = instances.c, allocations.c, resource_providers.c
    query = (select(a.consumer_id, a.resource_provider_id).distinct()
             .select_from(allocations.join(instances, c.uuid == a.consumer_id)
                          .join(resource_providers, rp.id == a.resource_provider_id))
             .where(c.deleted == 0, c.node.is_not(None), rp.name != c.node,
                    or_(c.task_state.is_(None), c.task_state.not_in(_NOT_PLACED_YET))))
    return [(r[0], int(r[1])) for r in await conn.execute(query)]


def older_than(value: datetime.datetime | None, seconds: float, now: datetime.datetime) -> bool:
    return value is not None and (now - value).total_seconds() > seconds
