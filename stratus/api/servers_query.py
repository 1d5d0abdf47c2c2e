"""The query of ``GET /servers`` and ``GET /servers/detail``: Nova's query schema per microversion, the filters
each caller may use, and their translation into ``instances.ListFilters``.

Nova strips the filters a caller may not use (``remove_invalid_options``) instead of refusing them: admins (the
``allow_all_filters`` rule) use every one; others only ``_USER_FILTERS`` and what each version adds to them
(2.66 ``changes-before``, 2.73 ``locked``, 2.83 a dozen more, 2.90 ``hostname``). Until 2.75 an unknown
parameter is ignored; from 2.75 it is a 400, as Nova's ``additionalProperties: false`` schema.
"""

from __future__ import annotations

import datetime
import functools

from stratus.api import validation
from stratus.api.common import limit_and_marker, reject_unexpected_query
from stratus.api.errors import Fault
from stratus.api.microversion import APIVersion
from stratus.api.request import ApiRequest
from stratus.db import instances
from stratus.identity import policy
from stratus.objects import states
from stratus.utils import parse_isotime

V226 = APIVersion.parse("2.26")
V238 = APIVersion.parse("2.38")
V266 = APIVersion.parse("2.66")  # changes-before
V273 = APIVersion.parse("2.73")  # locked for everyone
V275 = APIVersion.parse("2.75")  # unknown parameters are a 400
V283 = APIVersion.parse("2.83")  # more filters for non-admins
V290 = APIVersion.parse("2.90")  # hostname for non-admins

#: the query parameters Nova's servers query schema declares ``common_query_regex_param``: each value must be a
#: pattern ``re`` compiles (Nova's 400 otherwise), whether or not this cloud filters on it
_REGEX_PARAMS = ("kernel_id", "ramdisk_id", "hostname", "key_name", "power_state", "node", "flavor",
                 "reservation_id", "launched_at", "terminated_at", "availability_zone", "name", "display_name",
                 "description", "display_description", "locked_by", "root_device_name", "config_drive",
                 "access_ip_v4", "access_ip_v6", "auto_disk_config", "progress", "ip", "ip6", "created_at")
_TAG_PARAMS = ("tags", "tags-any", "not-tags", "not-tags-any")
#: Nova's plain (string) parameters of the schema, and the joined-table ones it names only to refuse them
_PLAIN_PARAMS = ("user_id", "project_id", "tenant_id", "launch_index", "image_ref", "image", "vm_state",
                 "task_state", "host", "uuid", "sort_key", "sort_dir", "all_tenants", "soft_deleted", "deleted",
                 "status", "changes-since", "limit", "marker")
_JOINED_TABLE_PARAMS = ("block_device_mapping", "services", "metadata", "system_metadata", "info_cache",
                        "security_groups", "pci_devices")

#: what a caller without ``allow_all_filters`` may filter on, per version (Nova's _get_server_search_options)
_USER_FILTERS = ("reservation_id", "name", "status", "image", "flavor", "ip", "changes-since", "all_tenants",
                 "ip6", *_TAG_PARAMS)
_USER_FILTERS_V283 = ("availability_zone", "config_drive", "key_name", "created_at", "launched_at",
                      "terminated_at", "power_state", "task_state", "vm_state", "progress", "user_id")
#: filters matched as a regular expression on the column's text, as Nova's database query does for them
_REGEX_COLUMNS = {"hostname": "hostname", "config_drive": "config_drive", "power_state": "power_state",
                  "progress": "progress", "created_at": "created_at", "launched_at": "launched_at",
                  "terminated_at": "terminated_at"}


def _known(version: APIVersion) -> set[str]:
    known = {*_REGEX_PARAMS, *_PLAIN_PARAMS, *_JOINED_TABLE_PARAMS}
    if version >= V226:
        known.update(_TAG_PARAMS)
    if version >= V266:
        known.add("changes-before")
    if version >= V273:
        known.add("locked")
    return known


def _user_filters(version: APIVersion) -> set[str]:
    allowed = set(_USER_FILTERS)
    if version >= V266:
        allowed.add("changes-before")
    if version >= V273:
        allowed.add("locked")
    if version >= V283:
        allowed.update(_USER_FILTERS_V283)
    if version >= V290:
        allowed.add("hostname")
    return allowed


def _time(req: ApiRequest, key: str) -> datetime.datetime | None:
    value = req.query.get(key)
    if not value:
        return None
    try:
        return parse_isotime(value)
    except (ValueError, OverflowError):  # an offset past year 1 or 9999 overflows
        raise Fault(400, f"Invalid input for query parameters {key}. Value: {validation.short(value)}. "
                         f"{validation.short_repr(value)} is not a 'date-time'") from None


def _check(req: ApiRequest) -> None:
    q = req.query
    regex_params = (*_REGEX_PARAMS, *_TAG_PARAMS) if req.version >= V226 else _REGEX_PARAMS
    validation.validate_query(q, {p: validation.query_regex for p in regex_params})
    if req.version >= V275:
        reject_unexpected_query(req, {k for k in _known(req.version)} | {k for k in q.keys() if k.startswith("_")})
    for key in q.keys():
        if key in _JOINED_TABLE_PARAMS or key.startswith("_"):
            raise Fault(400, f"Invalid filter field: {validation.short(key)}.")


@functools.lru_cache(maxsize=64)  # bounded: the text is any client's
def _states_of(status: str) -> tuple[tuple[str, ...], tuple[str | None, ...] | None]:
    """``states_from_status`` (a walk of the whole state map), once per status asked."""
    vms, tasks = states.states_from_status(status)
    return tuple(vms), None if tasks is None else tuple(tasks)


def _statuses(req: ApiRequest, f: instances.ListFilters) -> bool:
    """The ``status`` filter as vm and task states; False when no state can match (an empty list before 2.38)."""
    vm_states: set[str] = set()
    tasks: set[str | None] = set()
    any_task = False
    for status in req.query.getlist("status"):
        vms, ts = _states_of(status)
        if not vms:
            if req.version >= V238:
                raise Fault(400, f"Invalid status value: {status}")
            return False
        vm_states.update(vms)
        if ts is None:
            any_task = True
        else:
            tasks.update(ts)
    f.vm_states = sorted(vm_states)
    f.task_states = None if any_task else list(tasks)
    if "deleted" in vm_states:
        f.include_deleted = True
    return True


def _sort(req: ApiRequest, f: instances.ListFilters) -> None:
    keys, dirs = req.query.getlist("sort_key"), req.query.getlist("sort_dir")
    if not keys and not dirs:
        return
    if dirs and len(dirs) > len(keys):
        raise Fault(400, "The number of sort_keys and sort_dirs must be same")
    sort = []
    for i, key in enumerate(keys):
        direction = (dirs[i] if i < len(dirs) else (dirs[0] if dirs else "desc")).lower()
        if direction not in ("asc", "desc"):
            raise Fault(400, f"Invalid input for query parameters sort_dir. Value: {direction}.")
        column = {"display_name": "display_name", "name": "display_name"}.get(key, key)
        if column not in instances.SORT_KEYS:
            raise Fault(400, f"Invalid input for query parameters sort_key. Value: {key}.")
        sort.append((column, direction))
    if sort:
        f.sort = sort


def filters(req: ApiRequest, rule: str) -> instances.ListFilters:
    """The list's filters for this caller and version; Nova's 400s for a malformed query."""
    ctx = req.context
    q = req.query
    one = dict(q.items())  # each parameter's (last) value, as QueryParams.get gives it, without its Mapping.get
    _check(req)
    policy.authorize(ctx, rule, {"project_id": ctx.project_id})
    is_admin = policy.check(ctx, "os_compute_api:servers:allow_all_filters")
    allowed = _user_filters(req.version)

    def given(key: str) -> str | None:
        """The parameter's value if it is set and this caller may filter on it."""
        return one.get(key) or None if is_admin or key in allowed else None

    f = instances.ListFilters()
    all_tenants = "all_tenants" in one and validation.bool_from_string(one.get("all_tenants") or "true", "all_tenants")
    if all_tenants:
        policy.authorize(ctx, f"{rule}:get_all_tenants")
        f.project_id = one.get("project_id") or one.get("tenant_id") if is_admin else None
    else:
        f.project_id = one.get("project_id") if is_admin and one.get("project_id") else ctx.project_id
    if "status" in one:
        if not _statuses(req, f):
            f.uuids = []
            return f
    else:
        if vm_state := given("vm_state"):
            f.vm_states = q.getlist("vm_state")
            if f.vm_states == ["deleted"]:
                if not ctx.is_admin:
                    raise Fault(403, "Only administrators may list deleted instances")
                f.include_deleted = True
            del vm_state
        if given("task_state"):
            f.task_states = list(q.getlist("task_state"))
    f.changes_since = _time(req, "changes-since")
    if req.version >= V266:
        f.changes_before = _time(req, "changes-before")
        if f.changes_since and f.changes_before and f.changes_before < f.changes_since:
            raise Fault(400, "The value of changes-since must be less than or equal to changes-before.")
    if f.changes_since or f.changes_before:
        f.include_deleted = True
    if one.get("name"):
        f.name = one["name"]
    if one.get("image"):
        f.image_ref = one["image"].rsplit("/", 1)[-1]
    if one.get("flavor"):
        f.flavorid = one["flavor"].rsplit("/", 1)[-1]
    if one.get("reservation_id"):
        f.reservation_id = one["reservation_id"]
    for key in ("user_id", "availability_zone", "key_name"):
        if value := given(key):
            setattr(f, key, value)
    for key, column in _REGEX_COLUMNS.items():
        if value := given(key):
            f.regex[column] = value
    if is_admin:
        if "deleted" in one and validation.bool_from_string(one["deleted"], "deleted"):
            f.only_deleted = True
        for key in ("host", "node"):
            if one.get(key):
                setattr(f, key, one[key])
        if one.get("uuid"):
            f.uuids = [one["uuid"]]
    if "locked" in one and (is_admin or "locked" in allowed):
        f.locked = validation.bool_from_string(one["locked"], "locked")
    if req.version >= V226:
        for key, attr in (("tags", "tags"), ("tags-any", "tags_any"), ("not-tags", "not_tags"),
                          ("not-tags-any", "not_tags_any")):
            if one.get(key):
                setattr(f, attr, [t for t in one[key].split(",") if t])
    _sort(req, f)
    f.limit, f.marker = limit_and_marker(req)
    return f
