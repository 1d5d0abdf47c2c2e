"""Nova's policy rule names with their default checks.

The rules are data: a name and who passes. Callers ask ``authorize(context, name, target)``; a refusal is
Nova's 403 body naming the rule. A policy engine reading overrides from a file plugs in behind this function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from stratus.api.errors import Fault
from stratus.context import RequestContext

Check = Callable[[RequestContext, Mapping[str, str]], bool]


def _admin(ctx: RequestContext, _target: Mapping[str, str]) -> bool:
    return ctx.is_admin


def _project_member_or_admin(ctx: RequestContext, target: Mapping[str, str]) -> bool:
    return ctx.is_admin or target.get("project_id", ctx.project_id) == ctx.project_id


def _owner_or_admin(ctx: RequestContext, target: Mapping[str, str]) -> bool:
    return ctx.is_admin or target.get("user_id", ctx.user_id) == ctx.user_id


def _anyone(_ctx: RequestContext, _target: Mapping[str, str]) -> bool:
    return True


RULES: dict[str, Check] = {
    "os_compute_api:servers:index": _project_member_or_admin,
    "os_compute_api:servers:detail": _project_member_or_admin,
    "os_compute_api:servers:index:get_all_tenants": _admin,
    "os_compute_api:servers:detail:get_all_tenants": _admin,
    "os_compute_api:servers:allow_all_filters": _admin,
    "os_compute_api:servers:show": _project_member_or_admin,
    "os_compute_api:servers:show:host_status": _admin,
    "os_compute_api:servers:create": _project_member_or_admin,
    "os_compute_api:servers:create:forced_host": _admin,
    "os_compute_api:servers:create:trusted_certs": _project_member_or_admin,
    "os_compute_api:servers:update": _project_member_or_admin,
    "os_compute_api:servers:delete": _project_member_or_admin,
    "os_compute_api:servers:stop": _project_member_or_admin,
    "os_compute_api:servers:create_image": _project_member_or_admin,
    "os_compute_api:servers:start": _project_member_or_admin,
    "os_compute_api:servers:reboot": _project_member_or_admin,
    "os_compute_api:os-pause-server:pause": _project_member_or_admin,
    "os_compute_api:os-pause-server:unpause": _project_member_or_admin,
    "os_compute_api:os-suspend-server:suspend": _project_member_or_admin,
    "os_compute_api:os-suspend-server:resume": _project_member_or_admin,
    "os_compute_api:os-console-output": _project_member_or_admin,
    "os_compute_api:os-lock-server:lock": _project_member_or_admin,
    "os_compute_api:os-lock-server:unlock": _project_member_or_admin,
    "os_compute_api:os-lock-server:unlock:unlock_override": _admin,
    "os_compute_api:os-extended-server-attributes": _admin,
    "os_compute_api:server-metadata:index": _project_member_or_admin,
    "os_compute_api:server-metadata:show": _project_member_or_admin,
    "os_compute_api:server-metadata:create": _project_member_or_admin,
    "os_compute_api:server-metadata:update": _project_member_or_admin,
    "os_compute_api:server-metadata:update_all": _project_member_or_admin,
    "os_compute_api:server-metadata:delete": _project_member_or_admin,
    "os_compute_api:os-server-tags:index": _project_member_or_admin,
    "os_compute_api:os-server-tags:show": _project_member_or_admin,
    "os_compute_api:os-server-tags:update": _project_member_or_admin,
    "os_compute_api:os-server-tags:update_all": _project_member_or_admin,
    "os_compute_api:os-server-tags:delete": _project_member_or_admin,
    "os_compute_api:os-server-tags:delete_all": _project_member_or_admin,
    "os_compute_api:os-flavor-manage:create": _admin,
    "os_compute_api:os-flavor-manage:update": _admin,
    "os_compute_api:os-flavor-manage:delete": _admin,
    "os_compute_api:os-flavor-extra-specs:index": _anyone,
    "os_compute_api:os-flavor-extra-specs:show": _anyone,
    "os_compute_api:os-flavor-extra-specs:create": _admin,
    "os_compute_api:os-flavor-extra-specs:update": _admin,
    "os_compute_api:os-flavor-extra-specs:delete": _admin,
    "os_compute_api:os-flavor-access": _admin,
    "os_compute_api:os-flavor-access:add_tenant_access": _admin,
    "os_compute_api:os-flavor-access:remove_tenant_access": _admin,
    "os_compute_api:os-keypairs:index": _owner_or_admin,
    "os_compute_api:os-keypairs:show": _owner_or_admin,
    "os_compute_api:os-keypairs:create": _owner_or_admin,
    "os_compute_api:os-keypairs:delete": _owner_or_admin,
    "os_compute_api:os-aggregates:index": _admin,
    "os_compute_api:os-aggregates:create": _admin,
    "os_compute_api:os-aggregates:show": _admin,
    "os_compute_api:os-aggregates:update": _admin,
    "os_compute_api:os-aggregates:delete": _admin,
    "os_compute_api:os-aggregates:add_host": _admin,
    "os_compute_api:os-aggregates:remove_host": _admin,
    "os_compute_api:os-aggregates:set_metadata": _admin,
    "os_compute_api:os-server-groups:index": _project_member_or_admin,
    "os_compute_api:os-server-groups:index:all_projects": _admin,
    "os_compute_api:os-server-groups:create": _project_member_or_admin,
    "os_compute_api:os-server-groups:show": _project_member_or_admin,
    "os_compute_api:os-server-groups:delete": _project_member_or_admin,
    "os_compute_api:os-quota-sets:show": _project_member_or_admin,
    "os_compute_api:os-quota-sets:detail": _project_member_or_admin,
    "os_compute_api:os-quota-sets:defaults": _anyone,
    "os_compute_api:os-quota-sets:update": _admin,
    "os_compute_api:os-quota-sets:delete": _admin,
    "os_compute_api:os-quota-class-sets:show": _admin,
    "os_compute_api:os-quota-class-sets:update": _admin,
    "os_compute_api:limits": _anyone,
    "os_compute_api:limits:other_project": _project_member_or_admin,
    "os_compute_api:os-instance-actions:list": _project_member_or_admin,
    "os_compute_api:os-instance-actions:show": _project_member_or_admin,
    "os_compute_api:os-instance-actions:events": _admin,
    "os_compute_api:os-instance-actions:events:details": _admin,
    "os_compute_api:os-services:list": _admin,
    "os_compute_api:os-services:update": _admin,
    "os_compute_api:os-services:delete": _admin,
    "os_compute_api:os-hypervisors:list": _admin,
    "os_compute_api:os-hypervisors:list-detail": _admin,
    "os_compute_api:os-hypervisors:show": _admin,
    "os_compute_api:os-hypervisors:statistics": _admin,
    "os_compute_api:os-hypervisors:search": _admin,
    "os_compute_api:os-hypervisors:servers": _admin,
    "os_compute_api:os-availability-zone:list": _anyone,
    "os_compute_api:os-availability-zone:detail": _admin,
}


def check(ctx: RequestContext, rule: str, target: Mapping[str, str] | None = None) -> bool:
    return RULES[rule](ctx, target or {})


def authorize(ctx: RequestContext, rule: str, target: Mapping[str, str] | None = None) -> None:
    """Raise Nova's 403 when ``ctx`` may not do ``rule`` on ``target``."""
    if not check(ctx, rule, target):
        raise Fault(403, f"Policy doesn't allow {rule} to be performed.")
