"""2.86's validation of flavor extra specs, as Nova's ``nova.api.validation.extra_specs.validators``.

A spec whose name matches a known one (``flavor_extra_spec_rules.RULES``, plus ``resources{group}:<class>`` for
every standard resource class of ``os-resource-classes`` and ``trait{group}:<trait>`` for every trait of
``os-traits``, and their ``CUSTOM_`` forms) must have a value of its rule. A name in one of the namespaces those
rules cover (``hw``, ``hw_rng``, ``quota``, ``resources1``, ...) that matches none is refused; any other name (no
namespace, or a namespace Nova does not own, such as an operator's own) is accepted, as Nova does for backwards
compatibility. Every refusal is a 400 with Nova's message.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

import os_resource_classes
import os_traits

from stratus.api.errors import Fault
from stratus.api.flavor_extra_spec_rules import RULES

_GROUP = {"name": "group", "pattern": r"([a-zA-Z0-9_-]{1,64})?"}
_TRUE = ("1", "t", "true", "on", "y", "yes")
_FALSE = ("0", "f", "false", "off", "n", "no")


@dataclasses.dataclass(frozen=True)
class _Rule:
    name: str
    value: dict[str, Any]
    name_regex: str

    def check(self, value: str) -> None:
        kind = self.value["type"]
        if kind == "int":
            try:
                number = int(value)
            except ValueError:
                raise Fault(400, f"Validation failed; '{value}' is not a valid integer value.") from None
            if "max" in self.value and self.value["max"] < number:
                raise Fault(400, f"Validation failed; '{value}' is greater than the max value of "
                                 f"'{self.value['max']}'.")
            if "min" in self.value and self.value["min"] > number:
                raise Fault(400, f"Validation failed; '{value}' is less than the min value of "
                                 f"'{self.value['min']}'.")
        elif kind == "bool":
            if value.strip().lower() not in _TRUE + _FALSE:
                raise Fault(400, f"Validation failed; '{value}' is not a valid boolean-like value.")
        elif "pattern" in self.value:
            if not re.fullmatch(self.value["pattern"], value):
                raise Fault(400, f"Validation failed; '{value}' is not of the format '{self.value['pattern']}'.")
        elif "enum" in self.value and value not in self.value["enum"]:
            values = ", ".join(str(x) for x in self.value["enum"])
            raise Fault(400, f"Validation failed; '{value}' is not one of: {values}.")


def _rule(name: str, parameters: list[dict[str, str]], value: dict[str, Any]) -> _Rule:
    """The rule with its name as a regular expression: each ``{parameter}`` becomes its pattern."""
    name_regex = name
    for param in parameters:
        name_regex = name_regex.replace(f"{{{param['name']}}}", f"(?P<{param['name']}>{param['pattern']})")
    return _Rule(name, value, name_regex)


def _placement_rules() -> list[_Rule]:
    """Nova's resources.py and traits.py: one rule per standard resource class and trait, and the custom ones."""
    amount = {"type": "int"}
    wish = {"type": "str", "enum": ["required", "forbidden"]}
    rules = [_rule(f"resources{{group}}:{rc}", [_GROUP], amount) for rc in os_resource_classes.STANDARDS]
    rules.append(_rule("resources{group}:CUSTOM_{resource}",
                       [_GROUP, {"name": "resource", "pattern": r"[A-Z0-9_]+"}], amount))
    rules += [_rule(f"trait{{group}}:{trait}", [_GROUP], wish) for trait in os_traits.get_traits()]
    rules.append(_rule("trait{group}:CUSTOM_{trait}", [_GROUP, {"name": "trait", "pattern": r"[A-Z0-9_]+"}], wish))
    return rules


@functools.cache
def _registry() -> tuple[dict[str, _Rule], tuple[str, ...]]:
    """Rules by name, and the namespaces (as regular expressions) they cover."""
    rules = [_rule(*r) for r in RULES] + _placement_rules()
    by_name = {r.name: r for r in rules}
    namespaces = tuple(sorted({r.name_regex.split(":", 1)[0] for r in rules if ":" in r.name_regex}))
    return by_name, namespaces


def validate(name: str, value: str) -> None:
    """One spec: the rule of its name (exact, then by pattern); else a name in a known namespace is refused."""
    by_name, namespaces = _registry()
    if name in by_name:
        by_name[name].check(value)
        return
    for rule in by_name.values():
        if re.fullmatch(rule.name_regex, name):
            rule.check(value)
            return
    if ":" not in name:
        return
    namespace = name.split(":", 1)[0]
    if any(re.fullmatch(pattern, namespace) for pattern in namespaces):
        raise Fault(400, f"Validation failed; extra spec '{name}' does not appear to be a valid extra spec.")
