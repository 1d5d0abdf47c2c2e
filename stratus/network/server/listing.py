"""Lists as Neutron answers them: filters on any attribute (repeated: any of the values), ``fields=``,
``sort_key``/``sort_dir``, ``limit``/``marker``/``page_reverse`` and the ``<resources>_links`` they lead to.

The visible records are filtered and sorted here, after the query of who may see what: a project's networks,
subnets and ports are few enough that one query and a sort in Python are cheaper than SQL for every filter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from stratus.network.server import errors
from stratus.network.server.attributes import Invalid, boolean

_CONTROL = {"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse"}
_TAG_FILTERS = {"tags", "tags-any", "not-tags", "not-tags-any"}
MAX_LIMIT = 10000
Converter = Callable[[str, Any], Any]


def _as_string(attr: str, value: str) -> Any:
    return value


def _convert(converters: Mapping[str, Converter], name: str, values: list[str]) -> list[Any]:
    convert = converters.get(name, _as_string)
    try:
        return [convert(name, v) for v in values]
    except Invalid as exc:
        raise errors.invalid_attribute(name, exc.reason) from None


def _matches(item: Mapping[str, Any], name: str, wanted: list[Any]) -> bool:
    if name in _TAG_FILTERS:
        tags = set(item.get("tags") or [])
        asked = {t for v in wanted for t in str(v).split(",") if t}
        return {"tags": asked <= tags, "tags-any": bool(asked & tags), "not-tags": not asked <= tags,
                "not-tags-any": not asked & tags}[name]
    if name == "fixed_ips":
        pairs = [str(w).partition("=") for w in wanted]
        return any(all(ip.get(key) == value for key, _, value in [pair]) for ip in item.get("fixed_ips", [])
                   for pair in pairs)
    value = item.get(name)
    if isinstance(value, list):
        return any(w in value for w in wanted)
    return value in wanted


def filtered(items: list[dict[str, Any]], params: QueryParams, attributes: set[str],
             converters: Mapping[str, Converter]) -> list[dict[str, Any]]:
    """The items whose attributes match every filter of the query; an attribute the resource lacks is a 400."""
    names = [k for k in dict.fromkeys(params.keys()) if k not in _CONTROL]
    unknown = [n for n in names if n not in attributes and n not in _TAG_FILTERS and n != "tenant_id"]
    if unknown:
        raise errors.bad_request(f"[{', '.join(repr(n) for n in unknown)}] is invalid attribute for filtering")
    for name in names:
        wanted = _convert(converters, name, params.getlist(name))
        key = "project_id" if name == "tenant_id" else name
        items = [i for i in items if _matches(i, key, wanted)]
    return items


def pushdown(params: QueryParams, columns: Mapping[str, str]) -> dict[str, Any]:
    """The query's filters on plain string attributes stored as columns, as ``stratus.db.network.find``'s
    equalities (column -> the values asked for), so the database reads only the rows that can match.

    It only narrows: :func:`filtered` still runs on the views, so every refusal (an unknown attribute), every
    attribute a policy hides, and every filter not pushed down is decided there as before. ``columns`` maps an
    attribute to its column, for attributes whose view value is the column's stored string unconverted (an
    equality in the database is then the same test as ``_matches``'s). ``tenant_id`` and ``project_id`` both
    narrow ``project_id``: asked together, a row must match both."""
    equals: dict[str, set[str]] = {}
    for name in dict.fromkeys(params.keys()):
        column = columns.get("project_id" if name == "tenant_id" else name)
        if column is None or name in _CONTROL:
            continue
        wanted = set(params.getlist(name))
        equals[column] = equals[column] & wanted if column in equals else wanted
    return {column: sorted(values) for column, values in equals.items()}


def narrowed(records: list[dict[str, Any]], equals: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """The records :func:`pushdown`'s equalities keep, for a query that reads more than it filters (the views of
    the others are then never made)."""
    for column, values in equals.items():
        wanted = set(values)
        records = [r for r in records if r.get(column) in wanted]
    return records


def sort_spec(params: QueryParams, attributes: set[str]) -> list[tuple[str, bool]]:
    keys, dirs = params.getlist("sort_key"), params.getlist("sort_dir")
    if dirs and len(dirs) != len(keys):
        raise errors.bad_request("The number of sort_keys and sort_dirs must be same")
    for key in keys:
        if key not in attributes:
            raise errors.bad_request(f"{key} is an invalid attribute for sort_keys")
    for direction in dirs:
        if direction not in ("asc", "desc"):
            raise errors.bad_request(f"{direction} is invalid value for sort_dirs, valid value is 'asc' and "
                                     "'desc'")
    spec = [(k, (dirs[i] if dirs else "asc") == "desc") for i, k in enumerate(keys)]
    if "id" not in keys:
        spec.append(("id", False))  # a total order, so that markers page stably
    return spec


def _sort_value(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, (bool, int)):
        return (1, int(value))
    return (2, str(value))


def page(request_url: Callable[[], str], resource: str, items: list[dict[str, Any]], params: QueryParams,
         attributes: set[str], max_limit: int = -1) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Sort, then cut one page at the marker; the links to the next and previous pages (``request_url`` gives
    the request's URL: built only for a page that has links)."""
    for key, reverse in reversed(sort_spec(params, attributes)):
        items = sorted(items, key=lambda i, k=key: _sort_value(i.get(k)), reverse=reverse)
    limit_text = params.get("limit")
    limit = 0
    if limit_text is not None:
        try:
            limit = int(limit_text)
        except ValueError:
            raise errors.bad_request(f"Limit must be an integer 0 or greater and not '{limit_text}'") from None
        if limit < 0 or limit > 2**31:
            raise errors.bad_request(f"Limit must be an integer 0 or greater and not '{limit_text}'")
    if max_limit > 0 and (limit == 0 or limit > max_limit):
        limit = max_limit
    try:
        reverse_page = boolean("page_reverse", params.get("page_reverse", "false"))
    except Invalid as exc:
        raise errors.invalid_attribute("page_reverse", exc.reason) from None
    marker = params.get("marker")
    start, end = 0, len(items)
    if marker is not None:
        index = next((n for n, i in enumerate(items) if i["id"] == marker), None)
        if index is None:
            raise errors.not_found(resource.capitalize(), "id", marker)
        if reverse_page:
            end = index
        else:
            start = index + 1
    if limit:
        if reverse_page:
            start = max(start, end - limit)
        else:
            end = min(end, start + limit)
    chosen = items[start:end]
    links: list[dict[str, str]] = []
    if limit:
        others = [(k, v) for k, v in params.multi_items() if k not in ("marker", "page_reverse", "limit")]
        base = request_url().split("?")[0]

        def link(rel: str, at: str, backwards: bool) -> dict[str, str]:
            query = [("limit", str(limit)), *others, ("marker", at)] + ([("page_reverse", "True")]
                                                                         if backwards else [])
            return {"href": f"{base}?{urlencode(query)}", "rel": rel}

        more_after, more_before = end < len(items), start > 0
        if chosen and more_after:
            links.append(link("next", chosen[-1]["id"], False))
        if chosen and (marker is not None and (more_before or not reverse_page)):
            links.append(link("previous", chosen[0]["id"], True))
    return chosen, links


def only_fields(view: dict[str, Any], params: QueryParams) -> dict[str, Any]:
    fields = [f for f in params.getlist("fields") if f]
    return {k: v for k, v in view.items() if k in fields} if fields else view
