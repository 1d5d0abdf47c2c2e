"""Queries of the embedded Networking API: plain async functions over one connection.

Rows come back as dicts with their ``attributes`` JSON merged in, so the resource modules see one flat record.
IP addresses are allocated by inserting ``ip_allocations`` rows, whose primary key (network, address) makes a
concurrent duplicate fail in the database (IntegrityError), whatever the engine's isolation.

The statements of the calls every port create, status change and list makes (``get``, ``find``, ``allocations``,
``agents``, the inserts and updates of a record) are built once per shape (the table, the columns compared, one
value or a list) with bound parameters, and run with the values: building a statement and its cache key again at
every call cost several times what SQLite takes to run it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Executable, Table, bindparam, delete, exists, func, insert, or_, select, update

from stratus.db.engine import Connection
from stratus.db.models import (
    auto_allocated_topologies,
    default_security_groups,
    floatingips,
    ip_allocations,
    network_agents,
    network_quotas,
    networks,
    port_security_groups,
    ports,
    routers,
    security_group_rules,
    security_groups,
    subnets,
)
from stratus.db.prepared import prepared

TABLES: dict[str, Table] = {"network": networks, "subnet": subnets, "port": ports,
                            "security_group": security_groups, "security_group_rule": security_group_rules,
                            "router": routers, "floatingip": floatingips}


#: statements built once per shape: (what, table name, the columns compared and whether each takes a list)
_STATEMENTS: dict[tuple[Any, ...], Any] = {}


#: the order of the rows of a ``_where`` query, by its name
_ORDER = {"find": ("created_at", "id"), "agents": ("host", "agent_type"), "allocations": ()}


def _where(table: Table, query: str, equals: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The rows of ``table`` whose columns equal ``equals`` (a list, tuple or set value: any of them), in the
    order of ``query``, as a statement made once per shape, and the parameters of this call. A list of one value
    is that value (``=``, not ``IN``): an expanding ``IN`` is rendered anew at each execution, which cost about
    what SQLite takes to run the statement, and Nova's lists ask for one network, subnet or group at a time."""
    equals = {column: _one(value) for column, value in equals.items()}
    shape = tuple((column, isinstance(value, (list, tuple, set))) for column, value in equals.items())
    key = (query, table.name, shape)
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = select(table)
        for column, many in shape:
            statement = statement.where(_any_of(table.c[column], f"p_{column}", many))
        statement = _STATEMENTS[key] = prepared(statement.order_by(*(table.c[c] for c in _ORDER[query])))
    return statement, {f"p_{column}": list(value) if many else value
                       for (column, many), value in zip(shape, equals.values(), strict=True)}


def _any_of(column: Any, name: str, many: bool) -> Any:
    """``column`` equal to the parameter ``name``, or (``many``) to any of its values: an expanding ``IN``."""
    return column.in_(bindparam(name, expanding=True)) if many else column == bindparam(name)


def _one(value: Any) -> Any:
    """A list, tuple or set of one value: that value; anything else as it is."""
    if isinstance(value, (list, tuple, set)) and len(value) == 1:
        return next(iter(value))
    return value


def _once(key: tuple[Any, ...], build: Any) -> Any:
    """The statement ``build`` makes, built once per ``key`` and prepared (stratus/db/prepared.py: on SQLite it
    runs on the fast path, unless it has what only SQLAlchemy's path does, an expanding IN for one)."""
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = _STATEMENTS[key] = prepared(build())
    return statement


def _record(table: Table, row: Any) -> dict[str, Any]:
    record = dict(row._mapping)
    record.update(record.pop("attributes", None) or {})
    return record


def split(table: Table, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as column values: what is not a column of ``table`` goes to its ``attributes``."""
    columns = {k: v for k, v in record.items() if k in table.c}
    columns["attributes"] = {k: v for k, v in record.items() if k not in table.c}
    return columns


async def get(conn: Connection, kind: str, id_: str, for_update: bool = False) -> dict[str, Any] | None:
    table = TABLES[kind]

    def build() -> Executable:
        query = select(table).where(table.c.id == bindparam("p_id"))
        return query.with_for_update() if for_update else query
    row = (await conn.execute(_once(("get", kind, for_update), build), {"p_id": id_})).first()
    return None if row is None else _record(table, row)


async def find(conn: Connection, kind: str, **equals: Any) -> list[dict[str, Any]]:
    """Rows of ``kind`` whose columns equal ``equals`` (a list or tuple value: any of them)."""
    table = TABLES[kind]
    statement, params = _where(table, "find", equals)
    return [_record(table, row) for row in await conn.execute(statement, params)]


async def find_subnets_with_networks(conn: Connection, **equals: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """:func:`find` of subnets, each with what a policy check of it reads of its network (``id``, ``project_id``,
    ``shared``), in one statement joined to the networks (an admin's list by id: one statement, not two); a
    subnet whose network is gone is left out."""
    equals = {column: _one(value) for column, value in equals.items()}
    shape = tuple((column, isinstance(value, (list, tuple, set))) for column, value in equals.items())

    def build() -> Executable:
        statement = select(subnets, networks.c.project_id.label("network_project_id"),
                           networks.c.shared.label("network_shared")).join(
            networks, networks.c.id == subnets.c.network_id)
        for column, many in shape:
            statement = statement.where(_any_of(subnets.c[column], f"p_{column}", many))
        return statement.order_by(*(subnets.c[c] for c in _ORDER["find"]))
    params = {f"p_{column}": list(value) if many else value
              for (column, many), value in zip(shape, equals.values(), strict=True)}
    found = []
    for row in await conn.execute(_once(("find_subnets_with_networks", shape), build), params):
        record = _record(subnets, row)
        network = {"id": record["network_id"], "project_id": record.pop("network_project_id"),
                   "shared": record.pop("network_shared")}
        found.append((record, network))
    return found


async def visible_networks(conn: Connection, project_id: str | None) -> list[dict[str, Any]]:
    """Networks a project may see (its own, shared and external ones); every network for ``None`` (an admin)."""
    def build() -> Executable:
        query = select(networks)
        if project_id is not None:
            query = query.where(or_(networks.c.project_id == bindparam("p_project_id"), networks.c.shared.is_(True),
                                    networks.c.external.is_(True)))
        return query.order_by(networks.c.created_at)
    statement = _once(("visible_networks", project_id is None), build)
    params = {} if project_id is None else {"p_project_id": project_id}
    return [_record(networks, row) for row in await conn.execute(statement, params)]


async def insert_record(conn: Connection, kind: str, record: dict[str, Any]) -> None:
    table = TABLES[kind]
    await conn.execute(_once(("insert", kind), lambda: insert(table)), split(table, record))


async def update_record(conn: Connection, kind: str, record: dict[str, Any]) -> None:
    table = TABLES[kind]
    statement = _once(("update", kind), lambda: update(table).where(table.c.id == bindparam("p_id")))
    await conn.execute(statement, {**split(table, record), "p_id": record["id"]})


async def delete_record(conn: Connection, kind: str, id_: str) -> None:
    table = TABLES[kind]
    statement = _once(("delete", kind), lambda: delete(table).where(table.c.id == bindparam("p_id")))
    await conn.execute(statement, {"p_id": id_})


async def activate_port(conn: Connection, port_id: str, host: str) -> dict[str, Any] | None:
    """The port ACTIVE if it is bound to ``host`` and is not ACTIVE yet, in one statement (an agent's
    ``update_device_up`` for every port it plugs): its id, device_id and device_owner when it changed, else None."""
    statement = _once(("activate_port",), lambda: update(ports).where(
        ports.c.id == bindparam("p_id"), ports.c.binding_host_id == bindparam("p_host"),
        ports.c.status != "ACTIVE").values(status="ACTIVE").returning(
        ports.c.id, ports.c.device_id, ports.c.device_owner))
    row = (await conn.execute(statement, {"p_id": port_id, "p_host": host})).first()
    return None if row is None else dict(row._mapping)


async def segmentation_ids(conn: Connection, network_type: str, physical_network: str = "") -> set[int]:
    rows = await conn.execute(select(networks.c.segmentation_id).where(
        networks.c.network_type == network_type, networks.c.physical_network == physical_network,
        networks.c.segmentation_id.is_not(None)))
    return {int(r[0]) for r in rows}


# --- addresses ---------------------------------------------------------------------------------------------------
async def allocations(conn: Connection, *, network_id: str | None = None, subnet_ids: Sequence[str] = (),
                      port_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
    equals: dict[str, Any] = {}
    if network_id is not None:
        equals["network_id"] = network_id
    if subnet_ids:
        equals["subnet_id"] = list(subnet_ids)
    if port_ids:
        equals["port_id"] = list(port_ids)
    statement, params = _where(ip_allocations, "allocations", equals)
    return [dict(r._mapping) for r in await conn.execute(statement, params)]


async def addresses_on(conn: Connection, network_id: str) -> set[str]:
    """The addresses taken on a network (its allocations' addresses only: what a new allocation must avoid)."""
    statement = _once(("addresses_on",), lambda: select(ip_allocations.c.ip_address).where(
        ip_allocations.c.network_id == bindparam("p_network_id")))
    return {r[0] for r in await conn.execute(statement, {"p_network_id": network_id})}


async def allocated_in(conn: Connection, subnet_id: str) -> set[str]:
    rows = await conn.execute(select(ip_allocations.c.ip_address).where(ip_allocations.c.subnet_id == subnet_id))
    return {r[0] for r in rows}


async def count_allocated(conn: Connection, subnet_ids: Iterable[str]) -> dict[str, int]:
    rows = await conn.execute(select(ip_allocations.c.subnet_id, func.count()).where(
        ip_allocations.c.subnet_id.in_(list(subnet_ids))).group_by(ip_allocations.c.subnet_id))
    return {r[0]: int(r[1]) for r in rows}


async def allocate(conn: Connection, network_id: str, port_id: str, subnet_id: str, ip_address: str
                   ) -> dict[str, Any]:
    """One address for a port; an IntegrityError if it is taken (by a concurrent transaction too). The row
    written."""
    row = {"network_id": network_id, "ip_address": ip_address, "subnet_id": subnet_id, "port_id": port_id}
    await conn.execute(_once(("insert", "ip_allocations"), lambda: insert(ip_allocations)), row)
    return row


async def release(conn: Connection, port_id: str, pairs: Iterable[tuple[str, str]] | None = None) -> None:
    """The port's addresses (only those of ``pairs`` (subnet_id, ip_address) when given)."""
    if pairs is None:
        statement = _once(("release",), lambda: delete(ip_allocations).where(
            ip_allocations.c.port_id == bindparam("p_port_id")))
        await conn.execute(statement, {"p_port_id": port_id})
        return
    for subnet_id, ip_address in pairs:
        await conn.execute(delete(ip_allocations).where(
            ip_allocations.c.port_id == port_id, ip_allocations.c.subnet_id == subnet_id,
            ip_allocations.c.ip_address == ip_address))


# --- agents ------------------------------------------------------------------------------------------------------
async def agents(conn: Connection, **equals: Any) -> list[dict[str, Any]]:
    statement, params = _where(network_agents, "agents", equals)
    return [dict(r._mapping) for r in await conn.execute(statement, params)]


async def report_state(conn: Connection, values: dict[str, Any]) -> bool:
    """Insert the agent or beat its heartbeat; True when it was new (or restarted: ``start_flag``)."""
    now = values["heartbeat_timestamp"]
    found = (await conn.execute(select(network_agents.c.id).where(
        network_agents.c.agent_type == values["agent_type"], network_agents.c.host == values["host"]))).first()
    if found is None:
        await conn.execute(insert(network_agents).values(**{"started_at": now, **values, "created_at": now}))
        return True
    changes = {k: values[k] for k in ("binary", "topic", "configurations", "availability_zone",
                                      "heartbeat_timestamp")}
    if values.get("started_at"):
        changes["started_at"] = values["started_at"]
    await conn.execute(update(network_agents).where(network_agents.c.id == found[0]).values(**changes))
    return False


async def update_agent(conn: Connection, agent_id: str, values: dict[str, Any]) -> None:
    await conn.execute(update(network_agents).where(network_agents.c.id == agent_id).values(**values))


async def delete_agent(conn: Connection, agent_id: str) -> None:
    await conn.execute(delete(network_agents).where(network_agents.c.id == agent_id))


# --- security groups ---------------------------------------------------------------------------------------------
async def default_group_of(conn: Connection, project_id: str) -> str | None:
    statement = _once(("default_group_of",), lambda: select(default_security_groups.c.security_group_id).where(
        default_security_groups.c.project_id == bindparam("p_project_id")))
    row = (await conn.execute(statement, {"p_project_id": project_id})).first()
    return None if row is None else str(row[0])


async def set_default_group(conn: Connection, project_id: str, group_id: str) -> None:
    """An IntegrityError when the project has one already (made by a concurrent first use)."""
    await conn.execute(insert(default_security_groups).values(project_id=project_id, security_group_id=group_id))


async def default_group_ids(conn: Connection) -> set[str]:
    statement = _once(("default_group_ids",), lambda: select(default_security_groups.c.security_group_id))
    return {r[0] for r in await conn.execute(statement)}


# --- floating IPs --------------------------------------------------------------------------------------------------
async def disassociate_floating_ips(conn: Connection, port_id: str) -> list[str]:
    """Floating IPs of a port that goes away are kept, unassociated (Neutron's disassociate on port delete);
    the routers that held them."""
    held = await find(conn, "floatingip", fixed_port_id=port_id)
    router_ids = sorted({f["router_id"] for f in held if f["router_id"]})
    for fip in held:
        fip.update(fixed_port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")
        await update_record(conn, "floatingip", fip)
    return router_ids


# --- quotas ------------------------------------------------------------------------------------------------------
async def limit_and_count(conn: Connection, kind: str, project_id: str) -> tuple[int | None, int]:
    """The project's own limit of ``kind`` (None: none is set, the default applies) and how many it has, in one
    statement (the check of every create)."""
    table = TABLES[kind]
    statement = _once(("limit_and_count", kind), lambda: select(
        select(network_quotas.c.limit).where(network_quotas.c.project_id == bindparam("p_project_id"),
                                             network_quotas.c.resource == kind).scalar_subquery(),
        select(func.count()).select_from(table).where(table.c.project_id == bindparam("p_project_id"))
        .scalar_subquery()))
    limit, used = (await conn.execute(statement, {"p_project_id": project_id})).one()
    return None if limit is None else int(limit), int(used)


class PortCreateFacts(NamedTuple):
    """What a port's create reads of other tables besides its network, asked in one statement
    (:func:`port_create_facts`)."""

    limit: int | None  # the project's own port limit (None: the default applies)
    used: int  # the project's ports
    default_group: str | None  # the project's default security group, if made yet
    heartbeat: datetime.datetime | None  # the last heartbeat of the host's L2 agent, if it has one that is up
    dhcp_agents: bool  # whether any DHCP agent has reported


async def port_create_facts(conn: Connection, project_id: str, host: str, l2_agent_type: str,
                            dhcp_agent_type: str) -> PortCreateFacts:
    """The port quota's limit and count, the default group, the L2 agent of ``host`` (its type
    ``l2_agent_type``; at most one per host and type) and whether any agent of ``dhcp_agent_type`` exists, in
    one statement of scalar subqueries: what ``quotas.check``, ``security_groups.for_port``, ``binding.bind``
    and the DHCP notification would each have asked in a statement (and the last in a transaction) of its own.
    Read in the create's write transaction, so as fresh as the rows it writes (SQLite serialises writers)."""
    agents_ = network_agents

    def build() -> Executable:
        project = bindparam("p_project_id")
        return select(
            select(network_quotas.c.limit).where(network_quotas.c.project_id == project,
                                                 network_quotas.c.resource == "port").scalar_subquery(),
            select(func.count()).select_from(ports).where(ports.c.project_id == project).scalar_subquery(),
            select(default_security_groups.c.security_group_id).where(
                default_security_groups.c.project_id == project).scalar_subquery(),
            select(agents_.c.heartbeat_timestamp).where(
                agents_.c.host == bindparam("p_host"), agents_.c.agent_type == bindparam("p_l2"),
                agents_.c.admin_state_up.is_(True)).scalar_subquery(),
            exists().where(agents_.c.agent_type == bindparam("p_dhcp")))
    row = (await conn.execute(_once(("port_create_facts",), build), {
        "p_project_id": project_id, "p_host": host, "p_l2": l2_agent_type, "p_dhcp": dhcp_agent_type})).one()
    limit, used, group, heartbeat, dhcp = row
    return PortCreateFacts(None if limit is None else int(limit), int(used), None if group is None else str(group),
                           heartbeat, bool(dhcp))


async def limits_and_counts(conn: Connection, project_id: str, kinds: Sequence[str]
                            ) -> tuple[dict[str, int], dict[str, int]]:
    """The project's own limits of ``kinds`` (only those set: the defaults apply to the others) and how many of
    each it has, in one statement (a limit and a count subquery per kind): the quota details Nova asks before
    every boot on a network."""
    def build() -> Executable:
        columns = []
        for k in kinds:
            columns.append(select(func.count()).select_from(TABLES[k])
                           .where(TABLES[k].c.project_id == bindparam("p_project_id")).scalar_subquery()
                           .label(f"used_{k}"))
            columns.append(select(network_quotas.c.limit)
                           .where(network_quotas.c.project_id == bindparam("p_project_id"),
                                  network_quotas.c.resource == k).scalar_subquery().label(f"limit_{k}"))
        return select(*columns)
    row = (await conn.execute(_once(("limits_and_counts", tuple(kinds)), build), {"p_project_id": project_id})
           ).one()._mapping
    return ({k: int(row[f"limit_{k}"]) for k in kinds if row[f"limit_{k}"] is not None},
            {k: int(row[f"used_{k}"]) for k in kinds})


async def quotas_of(conn: Connection, project_id: str | None = None) -> dict[str, dict[str, int]]:
    """{project_id: {resource: limit}} of the limits set (one project's, or every project's)."""
    query = _once(("quotas_of", project_id is None), lambda: select(network_quotas) if project_id is None
                  else select(network_quotas).where(network_quotas.c.project_id == bindparam("p_project_id")))
    found: dict[str, dict[str, int]] = {}
    for row in await conn.execute(query, {} if project_id is None else {"p_project_id": project_id}):
        found.setdefault(row.project_id, {})[row.resource] = int(row.limit)
    return found


async def set_quota(conn: Connection, project_id: str, resource: str, limit: int) -> None:
    await conn.execute(delete(network_quotas).where(network_quotas.c.project_id == project_id,
                                                    network_quotas.c.resource == resource))
    await conn.execute(insert(network_quotas).values(project_id=project_id, resource=resource, limit=limit))


async def delete_quotas(conn: Connection, project_id: str) -> None:
    await conn.execute(delete(network_quotas).where(network_quotas.c.project_id == project_id))


# --- auto-allocated topologies -----------------------------------------------------------------------------------
async def topology_of(conn: Connection, project_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(auto_allocated_topologies).where(
        auto_allocated_topologies.c.project_id == project_id))).first()
    return None if row is None else dict(row._mapping)


async def save_topology(conn: Connection, project_id: str, network_id: str, router_id: str) -> None:
    """An IntegrityError when a concurrent request saved the project's first."""
    await conn.execute(insert(auto_allocated_topologies).values(project_id=project_id, network_id=network_id,
                                                                router_id=router_id))


async def delete_topology(conn: Connection, project_id: str) -> None:
    await conn.execute(delete(auto_allocated_topologies).where(auto_allocated_topologies.c.project_id == project_id))


# --- ports' security groups --------------------------------------------------------------------------------------
async def set_port_groups(conn: Connection, port_id: str, group_ids: Sequence[str]) -> None:
    statement = _once(("drop_port_groups",), lambda: delete(port_security_groups).where(
        port_security_groups.c.port_id == bindparam("p_port_id")))
    await conn.execute(statement, {"p_port_id": port_id})
    await add_port_groups(conn, port_id, group_ids)


async def add_port_groups(conn: Connection, port_id: str, group_ids: Sequence[str]) -> None:
    """The groups of a port that has none yet (a new one): one insert of them all."""
    rows = [{"port_id": port_id, "security_group_id": g} for g in dict.fromkeys(group_ids)]
    if rows:
        await conn.execute(_once(("insert", "port_security_groups"), lambda: insert(port_security_groups)), rows)


async def ports_in_groups(conn: Connection, group_ids: Sequence[str]) -> dict[str, set[str]]:
    """{port_id: the groups of ``group_ids`` it is in}."""
    if not group_ids:
        return {}
    statement = _once(("ports_in_groups",), lambda: select(port_security_groups).where(
        port_security_groups.c.security_group_id.in_(bindparam("p_group_ids", expanding=True))))
    rows = await conn.execute(statement, {"p_group_ids": list(group_ids)})
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row.port_id, set()).add(row.security_group_id)
    return found


async def subnet_ids(conn: Connection, network_ids: Sequence[str]) -> dict[str, list[str]]:
    """{network_id: its subnets' ids, oldest first}: what a network's view shows of them (``subnets``), without
    reading and decoding whole subnet rows."""
    found: dict[str, list[str]] = {n: [] for n in network_ids}
    if not network_ids:
        return found
    many = len(network_ids) > 1
    statement = _once(("subnet_ids", many), lambda: select(subnets.c.network_id, subnets.c.id).where(
        _any_of(subnets.c.network_id, "p_ids", many)).order_by(*(subnets.c[c] for c in _ORDER["find"])))
    for network_id, subnet_id in await conn.execute(statement, {"p_ids": list(network_ids) if many
                                                                else network_ids[0]}):
        found[network_id].append(subnet_id)
    return found


#: what a port's agent is told of each rule of its groups (the columns Neutron's security group RPC sends its
#: agents: no ids, timestamps or attributes, which a firewall does not use and a rule's view costs decoding)
RULE_FILTER_COLUMNS = ("security_group_id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
                       "remote_ip_prefix", "remote_group_id")


async def filter_rules(conn: Connection, group_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The rules of ``group_ids`` as ``RULE_FILTER_COLUMNS`` (oldest first), in one statement of plain columns."""
    if not group_ids:
        return []
    many = len(group_ids) > 1  # one group (a port's default group): an equality, not an expanding IN
    table = security_group_rules
    statement = _once(("filter_rules", many), lambda: select(*(table.c[c] for c in RULE_FILTER_COLUMNS)).where(
        _any_of(table.c.security_group_id, "p_group_ids", many)).order_by(*(table.c[c] for c in _ORDER["find"])))
    params = {"p_group_ids": list(group_ids) if many else group_ids[0]}
    return [dict(zip(RULE_FILTER_COLUMNS, row, strict=True)) for row in await conn.execute(statement, params)]


async def group_member_addresses(conn: Connection, group_ids: Sequence[str]) -> dict[str, list[str]]:
    """{group_id: the addresses of the ports in it}, for the groups ``group_ids`` (in one statement: the rules
    naming a remote group carry its members' addresses)."""
    found: dict[str, list[str]] = {g: [] for g in group_ids}
    if not group_ids:
        return found
    many = len(group_ids) > 1  # one group (a port's default group): an equality, not an expanding IN
    statement = _once(("group_member_addresses", many), lambda: select(
        port_security_groups.c.security_group_id, ip_allocations.c.ip_address).join(
        ip_allocations, ip_allocations.c.port_id == port_security_groups.c.port_id).where(
        _any_of(port_security_groups.c.security_group_id, "p_group_ids", many)))
    params = {"p_group_ids": list(group_ids) if many else group_ids[0]}
    for group_id, address in await conn.execute(statement, params):
        found[group_id].append(address)
    return found
