"""Nova's policy engine: oslo.policy's ``Enforcer`` with Nova's rule defaults (``policies``).

Callers ask ``authorize(context, name, target)``; a refusal is Nova's 403 body naming the rule, and a name that
was never registered is a programming error (oslo.policy's ``PolicyNotRegistered``), as in Nova. The decision comes
from the caller's roles and project (``RequestContext``) against the target (``{'project_id': ..., 'user_id': ...}``,
the caller's own when none is given), so a ``reader`` may list servers but not boot one.

An operator overrides any rule by name in the YAML file ``[oslo_policy] policy_file`` (``policy.yaml`` by default,
looked up beside the config files and in ``/etc/stratus``; an absolute path works too) or in ``policy_dirs``;
a missing file means the defaults. oslo.policy reads the file once and again when it changes (looked at here at
most once per ``RELOAD_INTERVAL``). See docs/policy.md.

The compute API builds one ``Policy`` on its configuration at start-up (``Policy.wrap``), and its requests use it
through a context variable, the way the authenticators hand over the caller; code running outside such a request
(scripts, unit tests) gets one built once on the default configuration.

A decision is a function of the rules as loaded, the rule's name, the target and the caller (user, project,
roles, admin flag): every request of a boot or a listing asks the same few of them for the same caller, ~10 to 40 µs
each through oslo.policy. So each ``Policy`` keeps its decisions until the enforcer next looks at its files (once
per ``RELOAD_INTERVAL``, which every decision already waits for), for rules made only of checks whose answer
depends on nothing else (roles, target and credential matches, other rules, ``@``/``!``); a rule with any other
check (``http:``, a plugin's) is asked every time.
"""

from __future__ import annotations

import contextvars
import inspect
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from oslo_config import cfg
from oslo_policy import _checks
from oslo_policy import policy as oslo_policy
from starlette.types import ASGIApp, Receive, Scope, Send

from stratus import conf as conf_mod
from stratus.api.errors import Fault
from stratus.context import RequestContext
from stratus.identity import policies

PolicyNotRegistered = oslo_policy.PolicyNotRegistered

#: How long a decision trusts the rules it has: oslo.policy looks for the policy file and policy.d (a handful of
#: stat calls) and walks every registered default before each decision; once a second is enough to see an edit.
RELOAD_INTERVAL = 1.0


#: decisions one ``Policy`` keeps between two looks at its files (callers, rules and targets; a bound on memory)
DECISIONS_MAX = 4096
#: the checks whose answer depends only on the target, the credentials and the rules (``RuleCheck`` on the rule it
#: names): exactly these classes, a subclass may answer otherwise
_PURE_CHECKS = frozenset({_checks.AndCheck, _checks.OrCheck, _checks.NotCheck, _checks.RuleCheck,
                          _checks.RoleCheck, _checks.GenericCheck, _checks.TrueCheck, _checks.FalseCheck})


class _Enforcer(oslo_policy.Enforcer):
    """oslo.policy's enforcer, looking at its files at most once per ``RELOAD_INTERVAL``; each look forgets the
    decisions kept since the previous one (``decisions``), whether or not a file changed."""

    _next_load = 0.0

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        #: (rule, caller, target) -> decision, for rules ``pure`` says may be kept
        self.decisions: dict[tuple[Any, ...], bool] = {}
        self._pure: dict[str, bool] = {}
        super().__init__(conf)

    def load_rules(self, force_reload: bool = False) -> None:
        now = time.monotonic()
        if force_reload or now >= self._next_load:
            self.decisions.clear()
            self._pure.clear()
            super().load_rules(force_reload)
            self._next_load = now + RELOAD_INTERVAL

    def set_rules(self, rules: Any, overwrite: bool = True, use_conf: bool = False) -> None:
        self.decisions.clear()
        self._pure.clear()
        super().set_rules(rules, overwrite, use_conf)

    def pure(self, rule: str) -> bool:
        """Whether the rule (and every rule it refers to) is made of ``_PURE_CHECKS`` only."""
        found = self._pure.get(rule)
        if found is None:
            found = self._pure[rule] = self._pure_tree(self.rules.get(rule), {rule})
        return found

    def _pure_tree(self, check: Any, seen: set[str]) -> bool:
        if check is None:  # a missing rule: oslo.policy's answer is False, every time
            return True
        if type(check) not in _PURE_CHECKS:
            return False
        if isinstance(check, _checks.RuleCheck):
            if check.match in seen:
                return True  # oslo.policy's own answer for a cycle is what it is; it does not change either
            return self._pure_tree(self.rules.get(check.match), seen | {check.match})
        if isinstance(check, _checks.NotCheck):
            return self._pure_tree(check.rule, seen)
        if isinstance(check, (_checks.AndCheck, _checks.OrCheck)):
            return all(self._pure_tree(c, seen) for c in check.rules)
        return True


def _remember_check_arity() -> None:
    """oslo.policy's ``_checks._check`` asks ``inspect.getfullargspec`` whether each node of a rule takes the rule's
    name, on every decision: most of the cost of one (six to eight nodes per Nova rule). The answer depends only on
    the check's class, so ask once per class; anything else goes to the original."""
    original: Callable[..., bool] = _checks._check
    if getattr(original, "remembers_arity", False) or list(inspect.signature(original).parameters) != [
            "rule", "target", "creds", "enforcer", "current_rule"]:
        return
    takes_rule: dict[type, bool] = {}

    def _check(rule: Any, target: Any, creds: Any, enforcer: Any, current_rule: str | None) -> bool:
        wants = takes_rule.get(type(rule))
        if wants is None:
            if not isinstance(rule, _checks.BaseCheck) or "__call__" in getattr(rule, "__dict__", {}):
                return original(rule, target, creds, enforcer, current_rule)
            wants = takes_rule[type(rule)] = len(inspect.getfullargspec(rule.__call__).args) > 4
        return rule(target, creds, enforcer, current_rule) if wants else rule(target, creds, enforcer)

    _check.remembers_arity = True  # type: ignore[attr-defined]
    _checks._check = _check


_remember_check_arity()


class Policy:
    """One enforcer on one configuration, Nova's defaults registered and the operator's file loaded."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        conf_mod.register_policy_opts(conf)
        enforcer = _Enforcer(conf)
        # Nova's own setting: every default changed in the new-defaults work; warning per rule fills logs
        enforcer.suppress_default_change_warnings = True
        enforcer.register_defaults(policies.list_rules())
        enforcer.load_rules()
        self.enforcer = enforcer

    def check(self, ctx: RequestContext, rule: str, target: Mapping[str, Any] | None = None) -> bool:
        """Whether ``ctx`` may do ``rule`` on ``target`` (the caller's own project and user when ``None``)."""
        if target is None:
            target = {"project_id": ctx.project_id, "user_id": ctx.user_id}
        enforcer = self.enforcer
        enforcer.load_rules()  # the files looked at (and the kept decisions forgotten) once per RELOAD_INTERVAL
        key = _decision_key(ctx, rule, target)
        if key is not None:
            found = enforcer.decisions.get(key)
            if found is not None:
                return found
        # oslo.context's policy values, as far as Stratus knows them: a project-scoped token (no system or domain
        # scope, so every rule's scope_types=['project'] is met)
        creds = {"user_id": ctx.user_id, "project_id": ctx.project_id, "roles": ctx.roles, "is_admin": ctx.is_admin,
                 "system_scope": None, "domain_id": None}
        allowed = bool(enforcer.authorize(rule, target, creds))
        if key is not None and enforcer.pure(rule):
            if len(enforcer.decisions) >= DECISIONS_MAX:
                enforcer.decisions.clear()
            enforcer.decisions[key] = allowed
        return allowed

    def authorize(self, ctx: RequestContext, rule: str, target: Mapping[str, Any] | None = None) -> None:
        """Raise Nova's 403 when ``ctx`` may not do ``rule`` on ``target``."""
        if not self.check(ctx, rule, target):
            raise Fault(403, f"Policy doesn't allow {rule} to be performed.")

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` whose requests are decided by this policy."""
        return _UsePolicy(app, self)

    def use(self) -> contextvars.Token[Policy | None]:
        """Make this policy the current one until ``reset`` of the token (an application that sets it itself,
        instead of one more middleware around it)."""
        return _CURRENT.set(self)


def _decision_key(ctx: RequestContext, rule: str, target: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What a decision depends on besides the rules, as a key; None when the target or the caller holds anything
    but strings (and None) and a bool flag, whose equality would not be the checks' (``1 == True``, yet ``%(x)s``
    spells them apart)."""
    items = tuple(target.items())
    for _, value in items:
        if value is not None and type(value) is not str:
            return None
    roles = ctx.roles
    if type(ctx.is_admin) is not bool or not all(type(r) is str for r in roles):
        return None
    return (rule, ctx.user_id, ctx.project_id, tuple(roles), ctx.is_admin, items)


_CURRENT: contextvars.ContextVar[Policy | None] = contextvars.ContextVar("stratus_policy", default=None)
_default: Policy | None = None
_default_lock = threading.Lock()


def reset(token: contextvars.Token[Policy | None]) -> None:
    """The current policy back to what it was before ``Policy.use``."""
    _CURRENT.reset(token)


def current() -> Policy:
    """The policy of the request being served, else the process's default one."""
    found = _CURRENT.get()
    if found is not None:
        return found
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Policy(conf_mod.load())
    return _default


def get_enforcer() -> oslo_policy.Enforcer:
    """The ``oslo.policy.enforcer`` entry point of oslo.policy's tools (``oslopolicy-policy-generator --namespace
    stratus --config-file stratus.conf`` writes the rules in force, defaults merged with the policy file): an
    enforcer on the configuration files the tool was given (they parse oslo.config's global ``CONF``)."""
    files = list(cfg.CONF.config_file or []) if "config_file" in cfg.CONF else []
    return Policy(conf_mod.load(files)).enforcer


def check(ctx: RequestContext, rule: str, target: Mapping[str, Any] | None = None) -> bool:
    return current().check(ctx, rule, target)


def authorize(ctx: RequestContext, rule: str, target: Mapping[str, Any] | None = None) -> None:
    """Raise Nova's 403 when ``ctx`` may not do ``rule`` on ``target``."""
    current().authorize(ctx, rule, target)


class _UsePolicy:
    """Pure ASGI: make ``policy`` the current one while the application serves a request."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = self.policy.use()
        try:
            await self.app(scope, receive, send)
        finally:
            reset(token)
