"""Nova's policy through oslo.policy: the registered names, the reader/member/admin personas, policy files."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg
from oslo_policy import _checks
from oslo_policy import policy as oslo_policy
from starlette.types import Receive, Scope, Send

from stratus import conf as conf_mod
from stratus.api.errors import Fault
from stratus.context import RequestContext
from stratus.identity import policies, policy

#: Every rule name the hand-written table had (stratus/identity/policy.py before oslo.policy).
FORMER_RULES = [
    "os_compute_api:servers:index", "os_compute_api:servers:detail", "os_compute_api:servers:index:get_all_tenants",
    "os_compute_api:servers:detail:get_all_tenants", "os_compute_api:servers:allow_all_filters",
    "os_compute_api:servers:show", "os_compute_api:servers:show:host_status", "os_compute_api:servers:create",
    "os_compute_api:servers:create:forced_host", "os_compute_api:servers:create:trusted_certs",
    "os_compute_api:servers:update", "os_compute_api:servers:delete", "os_compute_api:servers:stop",
    "os_compute_api:servers:create_image", "os_compute_api:servers:start", "os_compute_api:servers:reboot",
    "os_compute_api:os-pause-server:pause", "os_compute_api:os-pause-server:unpause",
    "os_compute_api:os-suspend-server:suspend", "os_compute_api:os-suspend-server:resume",
    "os_compute_api:os-console-output", "os_compute_api:os-lock-server:lock", "os_compute_api:os-lock-server:unlock",
    "os_compute_api:os-lock-server:unlock:unlock_override", "os_compute_api:os-extended-server-attributes",
    "os_compute_api:server-metadata:index", "os_compute_api:server-metadata:show",
    "os_compute_api:server-metadata:create", "os_compute_api:server-metadata:update",
    "os_compute_api:server-metadata:update_all", "os_compute_api:server-metadata:delete",
    "os_compute_api:os-server-tags:index", "os_compute_api:os-server-tags:show", "os_compute_api:os-server-tags:update",
    "os_compute_api:os-server-tags:update_all", "os_compute_api:os-server-tags:delete",
    "os_compute_api:os-server-tags:delete_all", "os_compute_api:os-flavor-manage:create",
    "os_compute_api:os-flavor-manage:update", "os_compute_api:os-flavor-manage:delete",
    "os_compute_api:os-flavor-extra-specs:index", "os_compute_api:os-flavor-extra-specs:show",
    "os_compute_api:os-flavor-extra-specs:create", "os_compute_api:os-flavor-extra-specs:update",
    "os_compute_api:os-flavor-extra-specs:delete", "os_compute_api:os-flavor-access",
    "os_compute_api:os-flavor-access:add_tenant_access", "os_compute_api:os-flavor-access:remove_tenant_access",
    "os_compute_api:os-keypairs:index", "os_compute_api:os-keypairs:show", "os_compute_api:os-keypairs:create",
    "os_compute_api:os-keypairs:delete", "os_compute_api:os-aggregates:index", "os_compute_api:os-aggregates:create",
    "os_compute_api:os-aggregates:show", "os_compute_api:os-aggregates:update", "os_compute_api:os-aggregates:delete",
    "os_compute_api:os-aggregates:add_host", "os_compute_api:os-aggregates:remove_host",
    "os_compute_api:os-aggregates:set_metadata", "os_compute_api:os-server-groups:index",
    "os_compute_api:os-server-groups:index:all_projects", "os_compute_api:os-server-groups:create",
    "os_compute_api:os-server-groups:show", "os_compute_api:os-server-groups:delete",
    "os_compute_api:os-quota-sets:show", "os_compute_api:os-quota-sets:detail", "os_compute_api:os-quota-sets:defaults",
    "os_compute_api:os-quota-sets:update", "os_compute_api:os-quota-sets:delete",
    "os_compute_api:os-quota-class-sets:show", "os_compute_api:os-quota-class-sets:update", "os_compute_api:limits",
    "os_compute_api:limits:other_project", "os_compute_api:os-instance-actions:list",
    "os_compute_api:os-instance-actions:show", "os_compute_api:os-instance-actions:events",
    "os_compute_api:os-instance-actions:events:details", "os_compute_api:os-services:list",
    "os_compute_api:os-services:update", "os_compute_api:os-services:delete", "os_compute_api:os-hypervisors:list",
    "os_compute_api:os-hypervisors:list-detail", "os_compute_api:os-hypervisors:show",
    "os_compute_api:os-hypervisors:statistics", "os_compute_api:os-hypervisors:search",
    "os_compute_api:os-hypervisors:servers", "os_compute_api:os-availability-zone:list",
    "os_compute_api:os-availability-zone:detail",
]
BASE_RULES = ["context_is_admin", "admin_or_owner", "admin_api", "project_manager_api", "project_member_api",
              "project_reader_api", "service_api", "project_manager_or_admin", "project_member_or_admin",
              "project_reader_or_admin", "service_or_admin"]

# Personas as the identity service's tokens carry them (implied roles included), all of project p1 but the admin
READER = RequestContext(user_id="reader", project_id="p1", roles=["reader"])
MEMBER = RequestContext(user_id="member", project_id="p1", roles=["member", "reader"])
OTHER = RequestContext(user_id="other", project_id="p2", roles=["member", "reader"])
ADMIN = RequestContext(user_id="admin", project_id="admin", is_admin=True, roles=["admin", "member", "reader"])
P1 = {"project_id": "p1", "user_id": "member"}


@pytest.fixture
def conf(tmp_path: Path) -> Iterator[cfg.ConfigOpts]:
    conf = conf_mod.load(overrides={"DEFAULT": {"state_path": str(tmp_path)}})
    yield conf
    conf.clear_override("policy_file", group="oslo_policy")


@pytest.fixture
def enforcer(conf: cfg.ConfigOpts) -> policy.Policy:
    return policy.Policy(conf)


def test_every_former_and_base_rule_is_registered(enforcer: policy.Policy) -> None:
    registered = enforcer.enforcer.registered_rules
    assert set(FORMER_RULES) - set(registered) == set()
    assert set(BASE_RULES) - set(registered) == set()
    assert len(registered) == len(policies.list_rules())


def test_api_rules_are_project_scoped_with_nova_personas() -> None:
    api = [r for r in policies.list_rules() if r.name not in BASE_RULES]
    assert all(r.scope_types == ["project"] for r in api)
    by_name = {r.name: r.check_str for r in policies.list_rules()}
    assert by_name["os_compute_api:servers:index"] == "rule:project_reader_or_admin"
    assert by_name["os_compute_api:servers:create"] == "rule:project_member_or_admin"
    assert by_name["os_compute_api:os-flavor-manage:create"] == "rule:context_is_admin"
    assert by_name["os_compute_api:os-keypairs:create"] == "(rule:context_is_admin) or user_id:%(user_id)s"
    assert by_name["project_member_api"] == "role:member and project_id:%(project_id)s"
    assert by_name["project_reader_api"] == "role:reader and project_id:%(project_id)s"
    assert by_name["context_is_admin"] == "role:admin"


@pytest.mark.parametrize(("rule", "target", "reader", "member", "other", "admin"), [
    ("os_compute_api:servers:index", None, True, True, True, True),  # each in its own project
    ("os_compute_api:servers:show", P1, True, True, False, True),
    ("os_compute_api:servers:create", P1, False, True, False, True),
    ("os_compute_api:servers:delete", P1, False, True, False, True),
    ("os_compute_api:server-metadata:index", P1, True, True, False, True),
    ("os_compute_api:server-metadata:update", P1, False, True, False, True),
    ("os_compute_api:servers:index:get_all_tenants", None, False, False, False, True),
    ("os_compute_api:os-flavor-manage:create", {}, False, False, False, True),
    ("os_compute_api:os-flavor-extra-specs:index", P1, True, True, False, True),
    ("os_compute_api:os-quota-sets:show", P1, True, True, False, True),
    ("os_compute_api:os-quota-sets:update", P1, False, False, False, True),
    ("os_compute_api:limits", {}, True, True, True, True),
    ("os_compute_api:limits:other_project", P1, False, False, False, True),
    ("os_compute_api:os-keypairs:index", {"user_id": "member"}, False, True, False, True),
    ("os_compute_api:os-services:list", {}, False, False, False, True),
])
def test_reader_member_admin(enforcer: policy.Policy, rule: str, target: dict[str, str] | None, reader: bool,
                             member: bool, other: bool, admin: bool) -> None:
    got = [enforcer.check(ctx, rule, target) for ctx in (READER, MEMBER, OTHER, ADMIN)]
    assert got == [reader, member, other, admin]


def test_without_a_target_the_callers_own_project_and_user(enforcer: policy.Policy) -> None:
    assert enforcer.check(MEMBER, "os_compute_api:servers:create")
    assert enforcer.check(OTHER, "os_compute_api:os-keypairs:create")
    assert not enforcer.check(MEMBER, "os_compute_api:servers:create", {"project_id": "p2"})


def test_the_decision_comes_from_roles_not_the_is_admin_flag(enforcer: policy.Policy) -> None:
    flagged = RequestContext(user_id="u", project_id="p1", is_admin=True, roles=["reader"])
    assert not enforcer.check(flagged, "os_compute_api:os-flavor-manage:create", {})
    assert not enforcer.check(RequestContext(user_id="u", project_id="p1"), "os_compute_api:servers:index")


def test_a_refusal_is_novas_403(enforcer: policy.Policy) -> None:
    with pytest.raises(Fault) as refused:
        enforcer.authorize(MEMBER, "os_compute_api:os-flavor-manage:create", {})
    assert (refused.value.code, refused.value.message) == (
        403, "Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed.")
    enforcer.authorize(ADMIN, "os_compute_api:os-flavor-manage:create", {})


def test_an_unregistered_rule_is_a_programming_error(enforcer: policy.Policy) -> None:
    with pytest.raises(policy.PolicyNotRegistered):
        enforcer.check(ADMIN, "os_compute_api:os-no-such:thing")
    with pytest.raises(policy.PolicyNotRegistered):
        policy.authorize(ADMIN, "os_compute_api:os-no-such:thing")


def test_a_policy_file_overrides_a_default(conf: cfg.ConfigOpts, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"os_compute_api:os-flavor-manage:create": "role:member"\n'
                    '"os_compute_api:servers:index": "rule:project_member_or_admin"\n')
    conf.set_override("policy_file", str(path), group="oslo_policy")
    custom = policy.Policy(conf)
    assert custom.check(MEMBER, "os_compute_api:os-flavor-manage:create", {})
    assert not custom.check(READER, "os_compute_api:os-flavor-manage:create", {})
    assert not custom.check(READER, "os_compute_api:servers:index")
    assert custom.check(READER, "os_compute_api:servers:show", P1)  # the rules not in the file keep their defaults


def test_a_relative_policy_file_is_found_beside_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "stratus.conf"
    config.write_text("[oslo_policy]\npolicy_file = my-policy.yaml\n")
    (tmp_path / "my-policy.yaml").write_text('"os_compute_api:limits": "!"\n')
    custom = policy.Policy(conf_mod.load([str(config)]))
    assert not custom.check(ADMIN, "os_compute_api:limits", {})


def test_an_edited_policy_file_is_read_again(conf: cfg.ConfigOpts, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"os_compute_api:os-services:list": "role:admin"\n')
    conf.set_override("policy_file", str(path), group="oslo_policy")
    live = policy.Policy(conf)
    assert not live.check(MEMBER, "os_compute_api:os-services:list", {})
    path.write_text('"os_compute_api:os-services:list": "role:member"\n')
    later = time.time() + 10
    os.utime(path, (later, later))
    assert not live.check(MEMBER, "os_compute_api:os-services:list", {})  # within RELOAD_INTERVAL: as it was
    live.enforcer._next_load = 0.0  # as if RELOAD_INTERVAL had passed
    assert live.check(MEMBER, "os_compute_api:os-services:list", {})


def test_a_missing_policy_file_means_the_defaults(conf: cfg.ConfigOpts, tmp_path: Path) -> None:
    conf.set_override("policy_file", str(tmp_path / "absent.yaml"), group="oslo_policy")
    assert policy.Policy(conf).check(MEMBER, "os_compute_api:servers:create")


async def test_an_app_wrapped_by_a_policy_decides_with_it(conf: cfg.ConfigOpts) -> None:
    mine = policy.Policy(conf)
    seen: list[policy.Policy] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(policy.current())

    async def receive() -> dict[str, str]:
        return {"type": "http.request"}

    async def send(message: object) -> None:
        pass

    await mine.wrap(app)({"type": "http"}, receive, send)
    assert seen == [mine]
    assert policy.current() is not mine  # outside a request: the process's default, built once
    assert policy.current() is policy.current()


def test_a_decision_costs_microseconds(enforcer: policy.Policy) -> None:
    """oslo.policy asks inspect.getfullargspec of every node of a rule and looks for its files before every
    decision (~0.4 ms in all); with the arity remembered and the files looked at once a second it is ~20 µs."""
    assert getattr(_checks._check, "remembers_arity", False)
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(300):
            enforcer.check(MEMBER, "os_compute_api:servers:show", P1)
        rounds.append((time.perf_counter() - start) / 300)
    assert min(rounds) < 150e-6, rounds


MANAGER = RequestContext(user_id="lead", project_id="p1", roles=["manager", "member", "reader"])
SERVICE = RequestContext(user_id="nova", project_id="service", roles=["service"])


@pytest.mark.parametrize(("rule", "context", "allowed"), [
    ("project_manager_or_admin", MANAGER, True),  # a manager on its own project
    ("project_manager_or_admin", MEMBER, False),
    ("project_manager_or_admin", ADMIN, True),
    ("service_or_admin", SERVICE, True),  # a service user, whatever the project
    ("service_or_admin", MANAGER, False),
    ("service_or_admin", ADMIN, True),
])
def test_manager_and_service_personas(enforcer: policy.Policy, rule: str, context: RequestContext,
                                      allowed: bool) -> None:
    """Nova's 2024+ personas over the roles Keystone's bootstrap makes: ``manager`` (implying member and reader)
    manages its own project only; ``service`` is for the services' own users."""
    assert enforcer.check(context, rule, P1) is allowed
    other_project = {"project_id": "p2", "user_id": "x"}
    if context is MANAGER:
        assert enforcer.check(context, rule, other_project) is False


def test_kept_decisions_are_oslo_policys_for_each_caller_and_target(enforcer: policy.Policy) -> None:
    """Every rule, asked twice (the second answer a kept one) by each persona on its own and on another project's
    target, answers as oslo.policy itself does for that caller and target."""
    targets = [None, P1, {"project_id": "p2", "user_id": "x"}, {}]
    contexts = [READER, MEMBER, OTHER, ADMIN, MANAGER, SERVICE,
                RequestContext(user_id="u", project_id="p1", is_admin=True, roles=["reader"])]
    raw = enforcer.enforcer
    for rule in [r.name for r in policies.list_rules()]:
        for ctx in contexts:
            for target in targets:
                own = {"project_id": ctx.project_id, "user_id": ctx.user_id} if target is None else target
                creds = {"user_id": ctx.user_id, "project_id": ctx.project_id, "roles": ctx.roles,
                         "is_admin": ctx.is_admin, "system_scope": None, "domain_id": None}
                expected = bool(oslo_policy.Enforcer.authorize(raw, rule, own, creds))
                assert [enforcer.check(ctx, rule, target) for _ in range(2)] == [expected, expected], (rule, ctx)
    assert raw.decisions  # they were kept


def test_a_target_of_other_values_than_strings_is_decided_every_time(enforcer: policy.Policy) -> None:
    """``1 == True`` for a key, not for a check that spells the value: such a target is never looked up."""
    enforcer.check(MEMBER, "os_compute_api:servers:show", {"project_id": 1, "user_id": True})
    assert not enforcer.enforcer.decisions


class _Counting(_checks.Check):
    """A plugin's check: answers True, and counts how often it was asked."""

    asked = 0

    def __call__(self, target: Any, creds: Any, enforcer: Any, current_rule: str | None = None) -> bool:
        type(self).asked += 1
        return True


def test_a_rule_with_another_check_is_asked_every_time(conf: cfg.ConfigOpts, tmp_path: Path) -> None:
    """A plugin's check (or ``http:``) may answer otherwise next time: a rule using one, even through another
    rule, is never kept; the pure rules still are."""
    _checks.register("stratus_counting", _Counting)
    try:
        path = tmp_path / "policy.yaml"
        path.write_text('"os_compute_api:limits": "rule:counting_rule or role:admin"\n'
                        '"counting_rule": "stratus_counting:x"\n')
        conf.set_override("policy_file", str(path), group="oslo_policy")
        custom = policy.Policy(conf)
        before = _Counting.asked
        for _ in range(3):
            assert custom.check(MEMBER, "os_compute_api:limits", {})
        assert _Counting.asked == before + 3
        assert not custom.enforcer.pure("os_compute_api:limits")
        assert custom.enforcer.pure("os_compute_api:servers:show")
    finally:
        _checks.registered_checks.pop("stratus_counting", None)


def test_set_rules_forgets_the_kept_decisions(enforcer: policy.Policy) -> None:
    assert enforcer.check(MEMBER, "os_compute_api:servers:create")
    enforcer.enforcer.set_rules({"os_compute_api:servers:create": _checks.FalseCheck()}, overwrite=False)
    assert not enforcer.check(MEMBER, "os_compute_api:servers:create")
