"""Keystone's policy rule names with their default checks, as data (the identity twin of ``policy.py``).

Keystone's defaults without scope enforcement: the ``admin`` role on any project or domain makes a cloud
administrator; users may read themselves, their own projects and tokens, and manage their own application
credentials. A refusal is Keystone's 403 naming the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from stratus.identity.errors import forbidden
from stratus.identity.tokens import Token

Check = Callable[[Token, Mapping[str, str | None]], bool]


def _admin(caller: Token, _target: Mapping[str, str | None]) -> bool:
    return caller.is_admin


def _admin_or_self(caller: Token, target: Mapping[str, str | None]) -> bool:
    return caller.is_admin or target.get("user_id") == caller.user_id


def _self(caller: Token, target: Mapping[str, str | None]) -> bool:
    return target.get("user_id") == caller.user_id


def _admin_or_scoped_project(caller: Token, target: Mapping[str, str | None]) -> bool:
    return caller.is_admin or (caller.project_id is not None and target.get("project_id") == caller.project_id)


def _admin_or_scoped_domain(caller: Token, target: Mapping[str, str | None]) -> bool:
    return caller.is_admin or (caller.domain_id is not None and target.get("domain_id") == caller.domain_id)


def _anyone(_caller: Token, _target: Mapping[str, str | None]) -> bool:
    return True


RULES: dict[str, Check] = {
    "identity:validate_token": _admin_or_self,
    "identity:check_token": _admin_or_self,
    "identity:revoke_token": _admin_or_self,
    "identity:get_auth_projects": _anyone,
    "identity:get_auth_domains": _anyone,
    "identity:get_auth_catalog": _anyone,
    "identity:list_domains": _admin,
    "identity:get_domain": _admin_or_scoped_domain,
    "identity:create_domain": _admin,
    "identity:update_domain": _admin,
    "identity:delete_domain": _admin,
    "identity:list_projects": _admin,
    "identity:get_project": _admin_or_scoped_project,
    "identity:create_project": _admin,
    "identity:update_project": _admin,
    "identity:delete_project": _admin,
    "identity:list_users": _admin,
    "identity:get_user": _admin_or_self,
    "identity:create_user": _admin,
    "identity:update_user": _admin,
    "identity:delete_user": _admin,
    "identity:list_user_projects": _admin_or_self,
    "identity:list_roles": _admin,
    "identity:get_role": _admin,
    "identity:create_role": _admin,
    "identity:update_role": _admin,
    "identity:delete_role": _admin,
    "identity:check_grant": _admin,
    "identity:list_grants": _admin,
    "identity:create_grant": _admin,
    "identity:revoke_grant": _admin,
    "identity:list_role_assignments": _admin,
    "identity:list_application_credentials": _admin_or_self,
    "identity:get_application_credential": _admin_or_self,
    "identity:create_application_credential": _self,
    "identity:delete_application_credential": _admin_or_self,
    "identity:list_services": _admin,
    "identity:get_service": _admin,
    "identity:list_endpoints": _admin,
    "identity:get_endpoint": _admin,
    "identity:list_regions": _anyone,
    "identity:get_region": _anyone,
}


def authorize(caller: Token, rule: str, target: Mapping[str, str | None] | None = None) -> None:
    """Raise Keystone's 403 when ``caller`` may not do ``rule`` on ``target``."""
    if not RULES[rule](caller, target or {}):
        raise forbidden(rule)
