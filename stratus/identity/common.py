"""What an identity handler sees: the request, the validated caller, the services; and the shared helpers
(body validation with Keystone's messages, links, times, references to domains, projects and users)."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from oslo_config import cfg
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from stratus import sizelimit
from stratus.db import identity as db
from stratus.db.engine import Connection, Database
from stratus.identity import rules, validation
from stratus.identity.errors import bad_request, not_found, unauthorized
from stratus.identity.lockout import Lockout
from stratus.identity.passwords import Hasher
from stratus.identity.tokens import Token, TokenStore
from stratus.identity.validation import Body

if TYPE_CHECKING:
    from stratus.identity.catalog import Service


@dataclasses.dataclass
class IdentityServices:
    """The collaborators of the identity API, built once at start-up."""

    conf: cfg.ConfigOpts
    db: Database
    tokens: TokenStore
    hasher: Hasher
    catalog: list[Service]

    @property
    def lockout(self) -> Lockout:
        return Lockout.from_conf(self.conf)


@dataclasses.dataclass(slots=True)
class IdentityRequest:
    raw: Request
    services: IdentityServices
    caller: Token | None  # None only on the routes that need no token
    body_schema: Body | None = None  # what the route's body must be (stratus.identity.schema)

    @property
    def path(self) -> Mapping[str, str]:
        return self.raw.path_params

    @property
    def query(self) -> QueryParams:
        return self.raw.query_params

    @property
    def me(self) -> Token:
        if self.caller is None:  # a route table mistake, not a client error
            raise unauthorized()
        return self.caller

    def authorize(self, rule: str, **target: str | None) -> None:
        rules.authorize(self.me, rule, target)

    async def body(self) -> Any:
        """The request body, read within Keystone's size limit and checked against the route's schema (400 or 413
        as Keystone answers). Handlers call it after their policy check, so a caller who may not act learns
        nothing about what the body should be."""
        if self.body_schema is None:  # a route table mistake, not a client error
            raise RuntimeError(f"{self.raw.method} {self.raw.url.path} declares no body schema")
        limit = self.services.conf[sizelimit.GROUP].max_request_body_size  # the same option the middleware reads
        return validation.validate_body(self.body_schema, await validation.read_json(self.raw, limit))

    def base(self) -> str:
        return str(self.raw.base_url).rstrip("/") + "/v3"

    def link(self, collection: str, ident: str) -> dict[str, str]:
        return {"self": f"{self.base()}/{collection}/{ident}"}

    def collection_links(self) -> dict[str, str | None]:
        return {"self": str(self.raw.url), "previous": None, "next": None}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def empty(status: int = 204) -> Response:
    return Response(b"", status_code=status)


def isotime(value: datetime.datetime | None) -> str | None:
    """Keystone's time form in tokens and credentials: ``2025-01-02T03:04:05.000000Z``."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_bool(name: str, value: str) -> bool:
    """A query flag's value, as Keystone reads its boolean parameters (the route's query schema has already
    refused anything else)."""
    lowered = value.lower()
    if lowered in ("true", "1", "y", "yes", "on", ""):
        return True
    if lowered in ("false", "0", "n", "no", "off"):
        return False
    raise bad_request(f"Invalid input for field '{name}': {value!r} is not a boolean")


def flag(query: QueryParams, name: str) -> bool:
    """A query flag Keystone treats as set when present (``?nocatalog``, ``?include_names``), unless false."""
    return name in query and parse_bool(name, query[name])


# --- shared lookups: a missing thing is a 404 ---------------------------------------------------------------------
async def domain_or_404(conn: Connection, domain_id: str) -> dict[str, Any]:
    domain = await db.get_domain(conn, domain_id)
    if domain is None:
        raise not_found("domain", domain_id)
    return domain


async def project_or_404(conn: Connection, project_id: str) -> dict[str, Any]:
    project = await db.get_project(conn, project_id)
    if project is None:
        raise not_found("project", project_id)
    return project


async def user_or_404(conn: Connection, user_id: str) -> dict[str, Any]:
    user = await db.get_user(conn, user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


async def role_or_404(conn: Connection, role_id: str) -> dict[str, Any]:
    role = await db.get_role(conn, role_id)
    if role is None:
        raise not_found("role", role_id)
    return role


async def domain_ref(conn: Connection, domain_id: str) -> dict[str, str]:
    """``{id, name}`` of a domain, as tokens and ``include_names`` show it."""
    domain = await db.get_domain(conn, domain_id)
    return {"id": domain_id, "name": domain["name"] if domain else domain_id}
