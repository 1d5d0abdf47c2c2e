"""The request schemas of the identity API: Keystone's (keystone/{auth,resource,identity,assignment,
application_credential}/schema.py) with a bound on every string, so nothing the database cannot hold gets past.

Names, ids and descriptions have Keystone's limits (ids 64, project and domain names 64, other names 255). Strings
Keystone leaves unbounded get one here: descriptions 65535 (what a MySQL TEXT column holds), passwords and secrets
4096 (``[identity] max_password_length``), token ids 255 (``max_token_size``). Attributes outside the schema
(``email`` on a user, anything on a project or domain) are kept, as Keystone keeps them; ``options`` knows only the
options this service implements.
"""

from __future__ import annotations

from typing import Any

from stratus.identity.validation import Body

# --- parameter types ---------------------------------------------------------------------------------------------
ID: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[a-zA-Z0-9-]+$"}
NULLABLE_ID: dict[str, Any] = {**ID, "type": ["string", "null"]}
REF_ID: dict[str, Any] = {"type": "string", "maxLength": 64}  # an id named in a reference (looked up, not stored)
REF_NAME: dict[str, Any] = {"type": "string", "maxLength": 255}
NAME_64: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"[\S]+"}
NAME_255: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"[\S]+"}
DESCRIPTION: dict[str, Any] = {"type": ["string", "null"], "maxLength": 65535}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
PASSWORD_MAX = 4096
SECRET: dict[str, Any] = {"type": "string", "maxLength": PASSWORD_MAX}
TOKEN_ID: dict[str, Any] = {"type": "string", "maxLength": 255}
TIME: dict[str, Any] = {"type": ["string", "null"], "maxLength": 64}
TAGS: dict[str, Any] = {"type": "array", "maxItems": 80, "uniqueItems": True,
                        "items": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^,/]*$"}}
NO_OPTIONS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
USER_OPTIONS: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {
    "ignore_lockout_failure_attempts": {"type": ["boolean", "null"]}}}


def _entity(name: str, properties: dict[str, Any], *, required: list[str] | None = None, update: bool = False,
            extra: bool = True) -> Body:
    """``{name: {...}}`` and nothing else beside it; ``update``: at least one attribute."""
    inner: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": extra}
    if required:
        inner["required"] = required
    if update:
        inner["minProperties"] = 1
    return Body({"type": "object", "properties": {name: inner}, "required": [name], "additionalProperties": False})


# --- POST /v3/auth/tokens (the schema of its "auth" member, as Keystone validates it) -------------------------
_DOMAIN_REF: dict[str, Any] = {"type": "object", "properties": {"id": REF_ID, "name": REF_NAME}, "idOrName": True}
_USER_REF: dict[str, Any] = {"type": "object", "properties": {"id": REF_ID, "name": REF_NAME, "domain": _DOMAIN_REF}}
TOKEN_ISSUE = Body(root="auth", schema={
    "type": "object",
    "properties": {
        "identity": {
            "type": "object",
            "properties": {
                "methods": {"type": "array", "minItems": 1, "maxItems": 8,
                            "items": {"type": "string", "maxLength": 64}},
                "password": {"type": "object", "required": ["user"], "properties": {
                    "user": {**_USER_REF, "properties": {**_USER_REF["properties"], "password": SECRET},
                             "required": ["password"], "idOrName": True}}},
                "token": {"type": "object", "properties": {"id": TOKEN_ID}, "required": ["id"]},
                "application_credential": {"type": "object", "required": ["secret"], "properties": {
                    "id": REF_ID, "name": REF_NAME, "secret": SECRET, "user": _USER_REF}},
            },
            "required": ["methods"],
        },
        "scope": {
            # "unscoped", or an object (old keystoneauth sends {"unscoped": {}})
            "type": ["object", "string"],
            "maxLength": 64,
            "properties": {
                "project": {"type": "object", "idOrName": True,
                            "properties": {"id": REF_ID, "name": REF_NAME, "domain": _DOMAIN_REF}},
                "domain": _DOMAIN_REF,
                "system": {"type": "object", "properties": {"all": BOOLEAN}},
                "OS-TRUST:trust": {"type": "object", "properties": {"id": REF_ID}},
            },
        },
    },
    "required": ["identity"],
})

# --- domains, projects -------------------------------------------------------------------------------------------
_DOMAIN = {"name": NAME_64, "description": DESCRIPTION, "enabled": BOOLEAN, "options": NO_OPTIONS}
DOMAIN_CREATE = _entity("domain", {**_DOMAIN, "explicit_domain_id": ID}, required=["name"])
DOMAIN_UPDATE = _entity("domain", _DOMAIN, update=True)

_PROJECT = {"name": NAME_64, "description": DESCRIPTION, "enabled": BOOLEAN, "tags": TAGS, "options": NO_OPTIONS,
            "is_domain": BOOLEAN}
PROJECT_CREATE = _entity("project", {**_PROJECT, "domain_id": NULLABLE_ID, "parent_id": NULLABLE_ID},
                         required=["name"])
PROJECT_UPDATE = _entity("project", {**_PROJECT, "domain_id": NULLABLE_ID, "parent_id": NULLABLE_ID}, update=True)

# --- users -------------------------------------------------------------------------------------------------------
_USER = {"name": NAME_255, "domain_id": ID, "password": {**SECRET, "type": ["string", "null"]},
         "enabled": BOOLEAN, "default_project_id": NULLABLE_ID, "description": DESCRIPTION,
         "email": {"type": ["string", "null"], "maxLength": 255}, "options": USER_OPTIONS,
         "federated": {"type": "array", "maxItems": 0}}
USER_CREATE = _entity("user", _USER, required=["name"])
USER_UPDATE = _entity("user", _USER, update=True)
PASSWORD_CHANGE = _entity("user", {"original_password": SECRET, "password": {**SECRET, "minLength": 1}},
                          required=["original_password", "password"], extra=False)

# --- roles, application credentials ------------------------------------------------------------------------------
ROLE_CREATE = _entity("role", {"name": NAME_255, "description": DESCRIPTION, "domain_id": NULLABLE_ID,
                               "options": NO_OPTIONS}, required=["name"], extra=False)

_ROLE_REF: dict[str, Any] = {"type": "object", "properties": {"id": REF_ID, "name": REF_NAME,
                                                              "domain_id": {"type": "null"}},
                             "additionalProperties": False, "minProperties": 1}
APPLICATION_CREDENTIAL_CREATE = _entity("application_credential", {
    "name": NAME_255, "description": DESCRIPTION, "secret": {**SECRET, "type": ["string", "null"], "minLength": 1},
    "expires_at": TIME, "roles": {"type": "array", "items": _ROLE_REF, "maxItems": 64},
    "unrestricted": {"type": ["boolean", "null"]}, "access_rules": {"type": "array", "maxItems": 0}},
    required=["name"], extra=False)

# --- query strings (values are strings; a parameter not listed passes) -------------------------------------------
Q_BOOLEAN: dict[str, Any] = {"type": "string", "enum": [
    "True", "TRUE", "true", "False", "FALSE", "false", "", "1", "0", "y", "Y", "n", "N", "on", "ON", "off", "OFF",
    "yes", "no"]}
Q_ID: dict[str, Any] = {"type": "string", "maxLength": 64}
Q_NAME: dict[str, Any] = {"type": "string", "maxLength": 255}
TOKEN_QUERY = {"nocatalog": Q_BOOLEAN, "allow_expired": Q_BOOLEAN}
DOMAINS_QUERY = {"name": Q_NAME, "enabled": Q_BOOLEAN}
PROJECTS_QUERY = {"name": Q_NAME, "enabled": Q_BOOLEAN, "domain_id": Q_ID, "parent_id": Q_ID, "is_domain": Q_BOOLEAN}
USERS_QUERY = {"name": Q_NAME, "enabled": Q_BOOLEAN, "domain_id": Q_ID}
ROLES_QUERY = {"name": Q_NAME, "domain_id": Q_ID}
NAME_QUERY = {"name": Q_NAME}
ASSIGNMENTS_QUERY = {"user.id": Q_ID, "group.id": Q_ID, "role.id": Q_ID, "scope.project.id": Q_ID,
                     "scope.domain.id": Q_ID, "effective": Q_BOOLEAN, "include_names": Q_BOOLEAN}
SERVICES_QUERY = {"type": {"type": "string", "maxLength": 255}, "name": Q_NAME}
ENDPOINTS_QUERY = {"service_id": Q_ID, "interface": {"type": "string", "maxLength": 16}, "region_id": Q_NAME}
