"""The embedded image API: a Glance v2 subset (images, data, tags, schemas) on port 9292 over ``ImageStore``.

Handlers are thin: authenticate, parse the request, call the store, serialize. Errors are Glance's: the status,
and the message as webob writes it (JSON ``{"message", "code", "title"}`` for clients that ask for JSON,
plain text otherwise). Routes are one table; Starlette answers unknown paths (404) and methods (405).
"""

from __future__ import annotations

import csv
import datetime
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from stratus.api.errors import Fault
from stratus.context import RequestContext, generate_request_id
from stratus.db import images as db
from stratus.db.engine import DB_UNAVAILABLE, is_disconnect
from stratus.exception import StratusException
from stratus.identity.auth import Authenticator
from stratus.image import model
from stratus.image.embedded import Caller, ImageBadRequest, ImageStore, ImageTooLarge

LOG = logging.getLogger(__name__)

# Glance's version history up to Stein: 2.6 interoperable import (the copy-image method only), 2.8 multiple stores.
VERSIONS = ["2.9", "2.8", "2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0"]
IMPORT_METHODS = ["copy-image"]
PATCH_TYPE = "application/openstack-images-v2.1-json-patch"
#: Glance's older patch form, still accepted: each change names its operation as its key (``{"add": "/k", "value":
#: v}``) where the 2.1 form has ``{"op": "add", "path": "/k", "value": v}``
PATCH_TYPE_V20 = "application/openstack-images-v2.0-json-patch"
_PATCH_OPS = ("add", "replace", "remove")
DEFAULT_LIMIT = 25  # Glance's limit_param_default
MAX_LIMIT = 1000  # Glance's api_limit_max
MAX_JSON_BODY = 1 << 20
MAX_JSON_DEPTH = 32
INTERNAL_ERROR = "The server has either erred or is incapable of performing the requested operation."  # webob's
_EQUALS = ("owner", "disk_format", "container_format", "checksum", "os_hash_value")
_NOT_PROPERTIES = {"limit", "marker", "sort", "sort_key", "sort_dir", "member_status", "visibility", "status",
                   "name", "id", "tag", "os_hidden", "protected", "size_min", "size_max", "created_at",
                   "updated_at", *_EQUALS}

Handler = Callable[[Request, RequestContext], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def error_response(request: Request, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """Glance's error body: JSON if the client accepts it, else webob's plain-text form."""
    title = HTTPStatus(code).phrase
    if "application/json" in request.headers.get("accept", ""):
        return _json({"message": message, "code": f"{code} {title}", "title": title}, code, headers)
    return Response(f"{code} {title}\n\n{message}\n\n   ", status_code=code, headers=headers,
                    media_type="text/plain")


def _database_away(exc: BaseException) -> bool:
    """The database server cannot be reached. Not any OSError, as for the other APIs: here one may also come from
    the image data's own files (a full or failing disk), which is this service's 500."""
    return is_disconnect(exc) and (not isinstance(exc, OSError) or isinstance(exc, ConnectionError))


def _bool(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ImageBadRequest(f"Invalid value for {name}: {value}. It should be true or false.")
    return value.lower() == "true"


def _int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ImageBadRequest(f"{name} param must be an integer") from None
    if not -(2**63) <= number < 2**63:  # what the database can compare against
        raise ImageBadRequest(f"{name} param is out of range")
    return number


def _in(value: str) -> list[str]:
    """``in:a,"b,c"`` → ``["a", "b,c"]``; a plain value is a list of one."""
    return next(csv.reader([value[3:]])) if value.startswith("in:") else [value]


def _sort(params: QueryParams) -> list[tuple[str, str]]:
    """``sort=k1:asc,k2`` or ``sort_key=k1&sort_dir=asc`` (not both); the default direction is desc."""
    if "sort" in params and ("sort_key" in params or "sort_dir" in params):
        raise ImageBadRequest("The 'sort' parameter cannot be combined with 'sort_key' or 'sort_dir'.")
    if "sort" in params:
        pairs = [(p.partition(":")[0].strip(), p.partition(":")[2].strip() or "desc")
                 for p in params["sort"].split(",")]
    else:
        keys, dirs = params.getlist("sort_key") or ["created_at"], params.getlist("sort_dir") or ["desc"]
        if len(dirs) > 1 and len(dirs) != len(keys):
            raise ImageBadRequest("Number of sort dirs does not match the number of sort keys")
        pairs = list(zip(keys, dirs * len(keys) if len(dirs) == 1 else dirs, strict=True))
    for key, direction in pairs:
        if key not in db.SORT_KEYS:
            raise ImageBadRequest(f"Invalid sort key: {key}. It should be one of the following: "
                                  f"{', '.join(db.SORT_KEYS)}.")
        if direction not in ("asc", "desc"):
            raise ImageBadRequest(f"Invalid sort direction: {direction}")
    return pairs


def _time_filter(column: str, value: str) -> tuple[str, str, datetime.datetime]:
    op, _, when = value.partition(":") if ":" in value.split("T")[0] else ("eq", "", value)
    if op not in db.TIME_OPS:
        raise ImageBadRequest(f"Invalid operator {op} for {column}; use one of {', '.join(db.TIME_OPS)}.")
    try:
        parsed = datetime.datetime.fromisoformat(when)
    except ValueError:
        raise ImageBadRequest(f"Invalid time format for {column}: {when}") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.UTC).replace(tzinfo=None)
    return column, op, parsed


def list_query(params: QueryParams) -> tuple[db.ListFilters, list[tuple[str, str]], int, str | None]:
    """``GET /v2/images`` query → (filters, sort, limit, marker), validated as Glance does."""
    limit = _int("limit", params.get("limit", str(DEFAULT_LIMIT)))
    if limit < 0:
        raise ImageBadRequest("limit param must be positive")
    f = db.ListFilters(tags=params.getlist("tag"))
    if "visibility" in params:
        f.visibility = params["visibility"]
        if f.visibility not in (*model.VISIBILITIES, "all"):
            raise ImageBadRequest(f"Invalid visibility value: {f.visibility}")
    if params.get("member_status", "accepted") not in ("pending", "accepted", "rejected", "all"):
        raise ImageBadRequest(f"Invalid status: {params['member_status']}")
    if "status" in params:
        if params["status"] not in model.STATUSES:
            raise ImageBadRequest(f"Invalid status value: {params['status']}")
        f.equals["status"] = params["status"]
    f.equals.update({k: params[k] for k in _EQUALS if k in params})
    if "protected" in params:
        f.equals["protected"] = _bool("protected", params["protected"])
    if "os_hidden" in params:
        f.os_hidden = _bool("os_hidden", params["os_hidden"])
    if "name" in params:
        f.names = _in(params["name"])
    if "id" in params:
        f.ids = _in(params["id"])
    if "size_min" in params:
        f.size_min = _int("size_min", params["size_min"])
    if "size_max" in params:
        f.size_max = _int("size_max", params["size_max"])
    f.times = [_time_filter(c, params[c]) for c in ("created_at", "updated_at") if c in params]
    f.properties = {k: v for k, v in params.items() if k not in _NOT_PROPERTIES}
    return f, _sort(params), min(limit, MAX_LIMIT), params.get("marker")


async def _read_json(request: Request) -> Any:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise ImageTooLarge(f"Request body is larger than {MAX_JSON_BODY} bytes.")
    if not body:
        raise ImageBadRequest("Body expected in request.")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ImageBadRequest("Malformed JSON in request body.") from None
    if _depth(value) > MAX_JSON_DEPTH:  # the validators recurse; orjson accepts 1024 levels
        raise ImageBadRequest(f"Request body nests more than {MAX_JSON_DEPTH} levels.")
    return value


def _depth(value: Any) -> int:
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, level = pending.pop()
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            break
        if isinstance(item, dict):
            pending += [(member, level + 1) for member in item.values()]
        elif isinstance(item, list):
            pending += [(member, level + 1) for member in item]
    return deepest


def _versions_body(request: Request) -> dict[str, Any]:
    href = str(request.base_url).rstrip("/") + "/v2/"
    return {"versions": [{"id": f"v{v}", "status": "CURRENT" if i == 0 else "SUPPORTED",
                          "links": [{"rel": "self", "href": href}]} for i, v in enumerate(VERSIONS)]}


class ImageApi:
    """The request handlers, bound to one store and one authenticator."""

    def __init__(self, store: ImageStore, auth: Authenticator) -> None:
        self.store = store
        self.auth = auth

    def endpoint(self, handler: Handler) -> Endpoint:
        """Authenticate, run ``handler``, and turn every failure into Glance's error response."""

        async def run(request: Request) -> Response:
            request_id = generate_request_id()
            try:
                context = self.auth.authenticate(request.headers)
                request_id = context.request_id
                if "\x00" in request.url.path or any("\x00" in v for _, v in request.query_params.multi_items()):
                    raise ImageBadRequest("NUL characters are not allowed in the URL.")  # PostgreSQL refuses them
                response = await handler(request, context)
            except Fault as fault:
                response = error_response(request, fault.code, fault.message, fault.headers)
            except StratusException as exc:
                if exc.code >= 500:
                    LOG.exception("%s %s failed", request.method, request.url.path)
                response = error_response(request, exc.code, exc.message)
            except ClientDisconnect:
                LOG.info("%s %s: the client went away", request.method, request.url.path)
                response = error_response(request, 400, "The client closed the connection.")
            except Exception as exc:
                if _database_away(exc):  # a 503 the client may retry, as the compute API's
                    LOG.error("database unavailable for %s %s: %s", request.method, request.url.path, exc)
                    response = error_response(request, 503, DB_UNAVAILABLE)
                else:
                    LOG.exception("%s %s failed unexpectedly", request.method, request.url.path)
                    response = error_response(request, 500, INTERNAL_ERROR)
            response.headers["x-openstack-request-id"] = request_id
            return response

        return run

    # --- images ----------------------------------------------------------------------------------------------
    async def list_images(self, request: Request, context: RequestContext) -> Response:
        filters, sort, limit, marker = list_query(request.query_params)
        images, next_marker = await self.store.list(Caller.of(context), filters, sort, limit, marker)
        pairs = [(k, v) for k, v in request.query_params.multi_items() if k != "marker"]
        body: dict[str, Any] = {"images": images, "first": "/v2/images" + (f"?{urlencode(pairs)}" if pairs else ""),
                                "schema": "/v2/schemas/images"}
        if next_marker is not None:
            body["next"] = "/v2/images?" + urlencode([*pairs, ("marker", next_marker)])
        return _json(body)

    async def create_image(self, request: Request, context: RequestContext) -> Response:
        image = await self.store.create(Caller.of(context), await _read_json(request))
        location = str(request.base_url).rstrip("/") + image["self"]
        return _json(image, 201, {"Location": location})

    async def show_image(self, request: Request, context: RequestContext) -> Response:
        return _json(await self.store.get(Caller.of(context), request.path_params["image_id"]))

    async def update_image(self, request: Request, context: RequestContext) -> Response:
        media_type = request.headers.get("content-type", "").split(";")[0].strip()
        if media_type not in (PATCH_TYPE, PATCH_TYPE_V20):
            return error_response(request, 415, f"Unsupported Content-Type: use {PATCH_TYPE}",
                                  {"Accept-Patch": f"{PATCH_TYPE}, {PATCH_TYPE_V20}"})
        changes = await _read_json(request)
        if media_type == PATCH_TYPE_V20:
            changes = _from_v20_patch(changes)
        return _json(await self.store.update(Caller.of(context), request.path_params["image_id"], changes))

    async def delete_image(self, request: Request, context: RequestContext) -> Response:
        await self.store.delete(Caller.of(context), request.path_params["image_id"])
        return Response(status_code=204)

    # --- data ------------------------------------------------------------------------------------------------
    async def upload(self, request: Request, context: RequestContext) -> Response:
        media_type = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
        if media_type != "application/octet-stream":
            return error_response(request, 415, f"Content type {media_type} is not supported for image data; "
                                                "use application/octet-stream")
        length = request.headers.get("content-length")
        expected = int(length) if length and length.isdigit() else None
        await self.store.upload(Caller.of(context), request.path_params["image_id"], request.stream(), expected,
                                store_name=request.headers.get("x-image-meta-store") or None)
        return Response(status_code=204)

    async def import_image(self, request: Request, context: RequestContext) -> Response:
        """Glance's interoperable import, method ``copy-image``: more stores for an active image's data."""
        body = await _read_json(request)
        method = body.get("method") if isinstance(body, dict) else None
        name = method.get("name") if isinstance(method, dict) else None
        if name not in IMPORT_METHODS:
            raise ImageBadRequest(f"Import method {name} is not valid for this cloud: use one of "
                                  f"{', '.join(IMPORT_METHODS)}.")
        stores = body.get("stores")
        header = request.headers.get("x-image-meta-store")
        if body.get("all_stores"):
            if stores:
                raise ImageBadRequest("All stores and a list of stores cannot be given together.")
            stores = None
        elif stores is None:
            stores = [header] if header else []
        if stores is not None and (not isinstance(stores, list) or not all(isinstance(x, str) for x in stores)
                                   or not stores):
            raise ImageBadRequest("'stores' must be a non-empty list of store identifiers.")
        must = body.get("all_stores_must_succeed", True)
        if not isinstance(must, bool):
            raise ImageBadRequest("'all_stores_must_succeed' must be a boolean.")
        await self.store.copy_to_stores(Caller.of(context), request.path_params["image_id"], stores, must,
                                        user_id=context.user_id, request_id=context.request_id)
        return Response(status_code=202)

    async def image_tasks(self, request: Request, context: RequestContext) -> Response:
        """Glance's ``GET /v2/images/{image_id}/tasks`` (its API 2.12): the image's import tasks."""
        tasks = await self.store.tasks(Caller.of(context), request.path_params["image_id"])
        return _json({"tasks": [_task_view(t) for t in tasks]})

    async def stores_info(self, request: Request, context: RequestContext) -> Response:
        stores = [{"id": s.name, "description": s.description, **({"default": True}
                                                                   if s.name == self.store.default_store else {})}
                  for s in self.store.stores.values()]
        return _json({"stores": stores})

    async def import_info(self, request: Request, context: RequestContext) -> Response:
        return _json({"import-methods": {"description": "Import methods available.", "type": "array",
                                         "value": IMPORT_METHODS}})

    async def download(self, request: Request, context: RequestContext) -> Response:
        data = await self.store.open_data(Caller.of(context), request.path_params["image_id"])
        if data is None:
            return Response(status_code=204)
        headers = {"Content-MD5": data.image["checksum"] or ""}
        if data.image["size"] is not None:
            headers["Content-Length"] = str(data.image["size"])
        return StreamingResponse(data.chunks(), headers=headers, media_type="application/octet-stream")

    # --- tags and actions ------------------------------------------------------------------------------------
    async def add_tag(self, request: Request, context: RequestContext) -> Response:
        await self.store.add_tag(Caller.of(context), request.path_params["image_id"], request.path_params["tag"])
        return Response(status_code=204)

    async def remove_tag(self, request: Request, context: RequestContext) -> Response:
        await self.store.remove_tag(Caller.of(context), request.path_params["image_id"], request.path_params["tag"])
        return Response(status_code=204)

    async def deactivate(self, request: Request, context: RequestContext) -> Response:
        await self.store.set_active(Caller.of(context), request.path_params["image_id"], active=False)
        return Response(status_code=204)

    async def reactivate(self, request: Request, context: RequestContext) -> Response:
        await self.store.set_active(Caller.of(context), request.path_params["image_id"], active=True)
        return Response(status_code=204)

    # --- documents -------------------------------------------------------------------------------------------
    async def image_schema(self, request: Request, context: RequestContext) -> Response:
        return _json(model.IMAGE_SCHEMA)

    async def images_schema(self, request: Request, context: RequestContext) -> Response:
        return _json(model.IMAGES_SCHEMA)


async def _root(request: Request) -> Response:
    """Glance answers its root with 300 Multiple Choices; keystoneauth's discovery reads the body either way."""
    return _json(_versions_body(request), 300)


async def _versions(request: Request) -> Response:
    return _json(_versions_body(request))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "The resource could not be found." if exc.status_code == 404 else str(exc.detail)
    return error_response(request, exc.status_code, message, dict(exc.headers or {}))


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A failure outside the handlers (they answer their own): Glance's 500, not Starlette's plain text."""
    LOG.error("%s %s failed: %r", request.method, request.url.path, exc)
    return error_response(request, 500, INTERNAL_ERROR)


def _from_v20_patch(changes: Any) -> Any:
    """The changes of a v2.0 json-patch in the 2.1 form, which the store applies and validates (a change that
    names no operation, or two, is left as it is: the store refuses it with Glance's 400)."""
    if not isinstance(changes, list):
        return changes
    out = []
    for change in changes:
        ops = [op for op in _PATCH_OPS if isinstance(change, dict) and op in change]
        if len(ops) != 1:
            out.append(change)
            continue
        converted = {"op": ops[0], "path": change[ops[0]]}
        if "value" in change:
            converted["value"] = change["value"]
        out.append(converted)
    return out


def _task_view(task: dict[str, Any]) -> dict[str, Any]:
    """Glance's task body (its timestamps with microseconds and no zone, as Glance writes a task's)."""
    def at(value: Any) -> str | None:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value is not None else None

    return {"id": task["id"], "image_id": task["image_id"], "request_id": task["request_id"],
            "user_id": task["user_id"], "type": task["type"], "status": task["status"], "owner": task["owner"],
            "expires_at": at(task["expires_at"]), "created_at": at(task["created_at"]),
            "updated_at": at(task["updated_at"]), "deleted_at": None, "deleted": False, "input": task["input"],
            "result": task["result"], "message": task["message"]}


def _dispatch(methods: dict[str, Endpoint]) -> Endpoint:
    """All methods of one path in one route, so a 405 lists every allowed method as Glance's does."""

    async def endpoint(request: Request) -> Response:
        return await methods["GET" if request.method == "HEAD" else request.method](request)

    return endpoint


def create_app(store: ImageStore, auth: Authenticator) -> ASGIApp:
    api = ImageApi(store, auth)
    e = api.endpoint
    image = "/v2/images/{image_id}"
    table: dict[str, dict[str, Endpoint]] = {
        "/": {"GET": _root},
        "/versions": {"GET": _versions},
        "/v2": {"GET": _versions},  # discovery against the versioned endpoint (keystoneauth does this)
        "/v2/": {"GET": _versions},
        "/v2/images": {"GET": e(api.list_images), "POST": e(api.create_image)},
        image: {"GET": e(api.show_image), "PATCH": e(api.update_image), "DELETE": e(api.delete_image)},
        image + "/file": {"GET": e(api.download), "PUT": e(api.upload)},
        image + "/tags/{tag}": {"PUT": e(api.add_tag), "DELETE": e(api.remove_tag)},
        image + "/import": {"POST": e(api.import_image)},
        image + "/tasks": {"GET": e(api.image_tasks)},
        "/v2/info/stores": {"GET": e(api.stores_info)},
        "/v2/info/import": {"GET": e(api.import_info)},
        image + "/actions/deactivate": {"POST": e(api.deactivate)},
        image + "/actions/reactivate": {"POST": e(api.reactivate)},
        "/v2/schemas/image": {"GET": e(api.image_schema)},
        "/v2/schemas/images": {"GET": e(api.images_schema)},
    }
    routes = [Route(path, _dispatch(methods), methods=list(methods)) for path, methods in table.items()]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _internal_error})
