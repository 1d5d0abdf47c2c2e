"""Neutron's default policy (its new defaults: admin, project member, project reader; owners of a network may do
more on it) on oslo.policy, overridable by name in the operator's policy file like Nova's rules.

Rules are checked per action (``create_network``) and per attribute (``create_network:shared``): an attribute of
the body whose rule fails is a 403; an attribute of a view whose ``get_`` rule fails is left out of the view, as
Neutron hides ``provider:*`` and ``binding:*`` from non-admins. Targets are the resource's view, plus
``network:project_id`` and ``network:shared`` of its network for subnets and ports.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from stratus import conf as conf_mod
from stratus.context import RequestContext
from stratus.identity.policy import _Enforcer
from stratus.network.server import errors

ADMIN = "rule:admin_only"
MEMBER = "rule:admin_only or rule:project_member"
READER = "rule:admin_only or rule:project_reader"
NET_OWNER = "rule:admin_only or (role:member and rule:network_owner)"

_BASE = {
    "context_is_admin": "role:admin",
    "admin_only": "rule:context_is_admin",
    "project_member": "role:member and project_id:%(project_id)s",
    "project_reader": "role:reader and project_id:%(project_id)s",
    "network_owner": "project_id:%(network:project_id)s",
    "shared": "True:%(shared)s",
    "external": "True:%(router:external)s",
    "shared_network": "True:%(network:shared)s",
    "network_device": "True:%(network_device)s",
}

_PROVIDER = ("provider:network_type", "provider:physical_network", "provider:segmentation_id")
_BINDING_ADMIN = ("binding:host_id", "binding:profile", "binding:vif_type", "binding:vif_details")


def _rules() -> dict[str, str]:
    rules = dict(_BASE)
    for verb in ("create", "update"):
        for attr in ("shared", "router:external", "is_default", *_PROVIDER):
            rules[f"{verb}_network:{attr}"] = ADMIN
    rules.update({
        "create_network": MEMBER, "get_network": f"{READER} or rule:shared or rule:external",
        "update_network": MEMBER, "delete_network": MEMBER,
        **{f"get_network:{a}": ADMIN for a in _PROVIDER},
        "create_subnet": NET_OWNER, "get_subnet": f"{READER} or rule:shared_network",
        "update_subnet": NET_OWNER, "delete_subnet": NET_OWNER,
        "create_port": f"{MEMBER} or rule:shared_network",
        "get_port": f"{READER} or (role:reader and rule:network_owner)",
        "update_port": f"{MEMBER} or (role:member and rule:network_owner)",
        "delete_port": f"{MEMBER} or (role:member and rule:network_owner)",
        **{f"get_port:{a}": ADMIN for a in _BINDING_ADMIN},
        **{f"{verb}_{kind}": MEMBER for verb in ("create", "update", "delete")
           for kind in ("security_group", "security_group_rule")},
        "get_security_group": READER, "get_security_group_rule": READER,
        **{f"{verb}_{kind}": MEMBER for verb in ("create", "update", "delete") for kind in ("router", "floatingip")},
        "get_router": READER, "get_floatingip": READER,
        "add_router_interface": MEMBER, "remove_router_interface": MEMBER,
        **{f"{verb}_router:external_gateway_info:{attr}": ADMIN for verb in ("create", "update")
           for attr in ("enable_snat", "external_fixed_ips")},
        "create_floatingip:floating_ip_address": ADMIN,
        "get_quota": READER, "update_quota": ADMIN, "delete_quota": ADMIN,
        "get_network_ip_availability": ADMIN,
        "get_agent": ADMIN, "update_agent": ADMIN, "delete_agent": ADMIN,
    })
    for verb in ("create", "update"):
        rules.update({
            f"{verb}_port:device_owner": "rule:admin_only or rule:network_owner or not rule:network_device",
            f"{verb}_port:mac_address": "rule:admin_only or rule:network_owner",
            f"{verb}_port:fixed_ips:ip_address": "rule:admin_only or rule:network_owner",
            f"{verb}_port:fixed_ips:subnet_id": "rule:admin_only or rule:network_owner or rule:shared_network",
            f"{verb}_port:port_security_enabled": "rule:admin_only or rule:network_owner",
            f"{verb}_port:allowed_address_pairs": "rule:admin_only or rule:network_owner",
            **{f"{verb}_port:{a}": ADMIN for a in ("binding:host_id", "binding:profile")},
        })
    return rules


def list_rules() -> list[oslo_policy.RuleDefault]:
    return [oslo_policy.RuleDefault(name, check) for name, check in _rules().items()]


#: seconds a decision is remembered (the enforcer trusts the operator's file as long: identity/policy.py)
MEMO_SECONDS = 1.0


class NetworkPolicy:
    """One enforcer with Neutron's defaults on ``conf``'s ``[oslo_policy]`` (the operator's file overrides).

    A list asks the same few rules of hundreds of items with the same few targets (a project's ports): each
    decision, a pure function of the caller, the rule and the target, is remembered for ``MEMO_SECONDS``, the time
    the rules themselves are trusted."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        conf_mod.register_policy_opts(conf)
        self.enforcer = _Enforcer(conf)
        self.enforcer.suppress_default_change_warnings = True
        self.enforcer.register_defaults(list_rules())
        self.enforcer.load_rules()
        self.names = set(_rules())
        self._memo: dict[tuple[Any, ...], bool] = {}
        self._memo_until = 0.0

    def check(self, ctx: RequestContext, rule: str, target: Mapping[str, Any]) -> bool:
        now = time.monotonic()
        if now >= self._memo_until or len(self._memo) > 100_000:
            self._memo.clear()
            self._memo_until = now + MEMO_SECONDS
        key = (ctx.user_id, ctx.project_id, tuple(ctx.roles), ctx.is_admin, rule, tuple(sorted(target.items())))
        found = self._memo.get(key)
        if found is None:
            creds = {"user_id": ctx.user_id, "project_id": ctx.project_id, "roles": ctx.roles,
                     "is_admin": ctx.is_admin, "system_scope": None, "domain_id": None}
            found = self._memo[key] = bool(self.enforcer.enforce(rule, dict(target), creds))
        return found

    def enforce(self, ctx: RequestContext, action: str, target: Mapping[str, Any],
                attributes: Iterable[str] = ()) -> None:
        """403 unless ``ctx`` may do ``action`` and set each of ``attributes`` (those with a rule of their own)."""
        failed = [] if self.check(ctx, action, target) else [action]
        failed += [f"{action}:{a}" for a in attributes
                   if f"{action}:{a}" in self.names and not self.check(ctx, f"{action}:{a}", target)]
        if failed:
            raise errors.policy_denied(failed)

    def visible(self, ctx: RequestContext, resource: str, target: Mapping[str, Any]) -> bool:
        return self.check(ctx, f"get_{resource}", target)

    def hide(self, ctx: RequestContext, resource: str, view: dict[str, Any], target: Mapping[str, Any]
             ) -> dict[str, Any]:
        """``view`` without the attributes whose ``get_`` rule ``ctx`` fails."""
        for attr in self.hidden(ctx, resource, view, target):
            del view[attr]
        return view

    def hidden(self, ctx: RequestContext, resource: str, attributes: Iterable[str], target: Mapping[str, Any]
               ) -> list[str]:
        """Those of ``attributes`` whose ``get_`` rule ``ctx`` fails (what :meth:`hide` leaves out)."""
        return [attr for attr in attributes if f"get_{resource}:{attr}" in self.names
                and not self.check(ctx, f"get_{resource}:{attr}", target)]
