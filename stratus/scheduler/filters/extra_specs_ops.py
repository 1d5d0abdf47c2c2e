"""The operators of flavor extra specs and aggregate metadata matching, as Nova defines them.

``"<in> avx"``, ``"<all-in> a b"``, ``"<or> kvm <or> qemu"``, ``">= 4"``, ``"s== x86_64"``, or a bare value for
equality; ``"= 4"`` means "at least 4".
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any


def _number(op: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    def compare(x: Any, y: Any) -> bool:
        try:
            return op(float(x), float(y))
        except (TypeError, ValueError):
            return False
    return compare


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": _number(operator.ge),
    "<in>": lambda x, y: y in x,
    "<all-in>": lambda x, y: all(v in x for v in y),
    "==": _number(operator.eq),
    "!=": _number(operator.ne),
    ">=": _number(operator.ge),
    "<=": _number(operator.le),
    "s==": operator.eq,
    "s!=": operator.ne,
    "s<": operator.lt,
    "s<=": operator.le,
    "s>": operator.gt,
    "s>=": operator.ge,
}


def match(value: str | None, requirement: str) -> bool:
    words = requirement.split()
    op = words.pop(0) if words else None
    method = _OPS.get(op) if op else None
    if op != "<or>" and method is None:
        return value == requirement
    if value is None:
        return False
    if op == "<or>":
        alternatives = [w for i, w in enumerate(words) if i % 2 == 0]
        return value in alternatives
    if not words:
        return False
    assert method is not None
    return method(value, words) if op == "<all-in>" else method(value, words[0])
