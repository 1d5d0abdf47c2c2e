"""A JSON Schema (Draft 4, as ``validation`` reads it) compiled into one Python function that says whether a
document is valid, for the bodies that are: jsonschema's generic machinery (a generator per keyword per value,
the error objects it builds on the way, ``best_match`` walking them) costs a boot more than the checks themselves.

``compile_schema`` answers exactly as jsonschema's ``is_valid`` with the same validator would: each keyword is
written out from jsonschema's own (4.x) definition, with its helpers (``equal``, ``uniq``) and the format
checker's functions themselves, and Nova's ``minimum``/``maximum`` (numeric strings too) from ``validation``. A
keyword it does not write out (``$ref``, ``dependencies``, ``multipleOf``, ``additionalItems``, a list of
``items``, a type name Draft 4 does not define) raises ``Unknown`` when a document reaches it, and the caller asks
jsonschema instead. The caller asks jsonschema for every invalid document as well: the error and its wording are
always jsonschema's, found the way Nova's validator finds them.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable
from typing import Any

from jsonschema._utils import equal, uniq

Check = Callable[[Any], bool]


class Unknown(Exception):
    """A document reached a keyword this module does not write out: jsonschema decides."""


#: Draft 4's types as jsonschema's Draft 4 type checker defines them (a bool is neither an integer nor a number)
def _is_integer(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


_TYPES: dict[str, Check] = {
    "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool),
    "integer": _is_integer,
    "null": lambda x: x is None,
    "number": _is_number,
    "object": lambda x: isinstance(x, dict),
    "string": lambda x: isinstance(x, str),
}


def _always(x: Any) -> bool:
    return True


def _never(x: Any) -> bool:
    return False


def _unknown(x: Any) -> bool:
    raise Unknown


def _all(checks: list[Check]) -> Check:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks

        def both(x: Any) -> bool:
            return first(x) and second(x)

        return both
    frozen = tuple(checks)

    def every(x: Any) -> bool:
        for check in frozen:
            if not check(x):
                return False
        return True

    return every


class _Compiler:
    def __init__(self, keywords: frozenset[str], formats: Any, as_number: Callable[[Any], Any]) -> None:
        self.keywords = keywords  # what the validator reads; any other key of a schema is ignored, as by it
        self.formats = formats
        self.as_number = as_number

    def schema(self, schema: Any) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict) or "$ref" in schema:  # Draft 4: a $ref hides its siblings
            return _unknown
        checks: list[Check] = []
        handled = False
        for key, value in schema.items():
            if key not in self.keywords:
                continue
            build = _KEYWORDS.get(key)
            if build is None:
                checks.append(_unknown)
                continue
            if key in ("properties", "patternProperties", "additionalProperties"):
                if handled:
                    continue
                handled = True
            check = build(self, value, schema)
            if check is not None:
                checks.append(check)
        # cheap, type-narrowing checks first: a wrong type fails before any walk (the answer is the same)
        checks.sort(key=lambda c: getattr(c, "order", 1))
        return _all(checks)

    # --- keywords (each as jsonschema 4's ``_keywords`` defines it) ------------------------------------------
    def type(self, types: Any, schema: dict[str, Any]) -> Check:
        names = types if isinstance(types, list) else [types]
        if not all(isinstance(n, str) and n in _TYPES for n in names):
            return _unknown
        if len(names) == 1:
            check = _TYPES[names[0]]
        else:
            each = tuple(_TYPES[n] for n in names)

            def check(x: Any) -> bool:
                for is_type in each:
                    if is_type(x):
                        return True
                return False

        return _ordered(check, 0)

    def objects(self, _value: Any, schema: dict[str, Any]) -> Check | None:
        """``properties``, ``patternProperties`` and ``additionalProperties`` of one schema, in one pass over the
        document's members (each member checked against what each of the three keywords asks of it)."""
        properties = schema.get("properties", {}) if "properties" in self.keywords else {}
        patterns = schema.get("patternProperties", {}) if "patternProperties" in self.keywords else {}
        has_additional = "additionalProperties" in schema and "additionalProperties" in self.keywords
        additional = schema.get("additionalProperties")
        if not isinstance(properties, dict) or not isinstance(patterns, dict):
            return _unknown
        named = {name: self.schema(sub) for name, sub in properties.items()}
        by_pattern = [(re.compile(p).search, self.schema(sub)) for p, sub in patterns.items()]
        # find_additional_properties: not a property, and no match of the patterns joined with |
        joined = re.compile("|".join(schema.get("patternProperties", {}))).search \
            if schema.get("patternProperties") else None
        if not has_additional:
            extra: Check | None = None
            no_extras = False
        elif isinstance(additional, dict):
            extra, no_extras = self.schema(additional), False
        else:  # a bool (or anything else: jsonschema reads its truth)
            extra, no_extras = None, not additional
        if not named and not by_pattern and extra is None and not no_extras:
            return None

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for key, value in x.items():
                sub = named.get(key)
                if sub is not None:
                    if not sub(value):
                        return False
                elif joined is None or joined(key) is None:
                    if no_extras:
                        return False
                    if extra is not None and not extra(value):
                        return False
                for search, pattern_check in by_pattern:
                    if search(key) and not pattern_check(value):
                        return False
            return True

        return check

    def required(self, names: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(names, list):
            return _unknown
        wanted = tuple(names)

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for name in wanted:
                if name not in x:
                    return False
            return True

        return _ordered(check, 0)

    def enum(self, values: Any, schema: dict[str, Any]) -> Check:
        options = list(values)
        if options and all(type(v) is str for v in options):
            # equal() with a str compares with ==, which only a str passes
            allowed = frozenset(options)
            return _ordered(lambda x: isinstance(x, str) and x in allowed, 0)
        return _ordered(lambda x: any(equal(each, x) for each in options), 0)

    def min_length(self, limit: Any, schema: dict[str, Any]) -> Check:
        return _ordered(lambda x: not isinstance(x, str) or not len(x) < limit, 0)

    def max_length(self, limit: Any, schema: dict[str, Any]) -> Check:
        return _ordered(lambda x: not isinstance(x, str) or not len(x) > limit, 0)

    def pattern(self, pattern: Any, schema: dict[str, Any]) -> Check:
        search = re.compile(pattern).search
        return lambda x: not isinstance(x, str) or search(x) is not None

    def format(self, name: Any, schema: dict[str, Any]) -> Check | None:
        found = self.formats.checkers.get(name) if self.formats is not None else None
        if found is None:  # jsonschema's FormatChecker.check: an unknown format passes
            return None
        func, raises = found

        def check(x: Any) -> bool:
            try:
                return bool(func(x))
            except raises:
                return False

        return check

    def minimum(self, limit: Any, schema: dict[str, Any]) -> Check:
        """Nova's: a numeric string is compared as the number it spells (``validation._minimum``)."""
        exclusive, as_number = schema.get("exclusiveMinimum", False), self.as_number

        def check(x: Any) -> bool:
            number = as_number(x)
            if not _is_number(number):
                return True
            return not (number <= limit if exclusive else number < limit)

        return check

    def maximum(self, limit: Any, schema: dict[str, Any]) -> Check:
        exclusive, as_number = schema.get("exclusiveMaximum", False), self.as_number

        def check(x: Any) -> bool:
            number = as_number(x)
            if not _is_number(number):
                return True
            return not (number >= limit if exclusive else number > limit)

        return check

    def items(self, items: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(items, dict):  # a list of schemas (tuple validation) is not written out
            return _unknown
        each = self.schema(items)

        def check(x: Any) -> bool:
            if not isinstance(x, list):
                return True
            for item in x:
                if not each(item):
                    return False
            return True

        return check

    def min_items(self, limit: Any, schema: dict[str, Any]) -> Check:
        return _ordered(lambda x: not isinstance(x, list) or not len(x) < limit, 0)

    def max_items(self, limit: Any, schema: dict[str, Any]) -> Check:
        return _ordered(lambda x: not isinstance(x, list) or not len(x) > limit, 0)

    def unique_items(self, unique: Any, schema: dict[str, Any]) -> Check | None:
        if not unique:
            return None
        return lambda x: not isinstance(x, list) or uniq(x)

    def min_properties(self, limit: Any, schema: dict[str, Any]) -> Check:
        return _ordered(lambda x: not isinstance(x, dict) or not len(x) < limit, 0)

    def max_properties(self, limit: Any, schema: dict[str, Any]) -> Check:
        return _ordered(lambda x: not isinstance(x, dict) or not len(x) > limit, 0)

    def one_of(self, schemas: Any, schema: dict[str, Any]) -> Check:
        subs = tuple(self.schema(s) for s in schemas)

        def check(x: Any) -> bool:
            valid = 0
            for sub in subs:
                if sub(x):
                    valid += 1
                    if valid > 1:
                        return False
            return valid == 1

        return check

    def any_of(self, schemas: Any, schema: dict[str, Any]) -> Check:
        subs = tuple(self.schema(s) for s in schemas)
        return lambda x: any(sub(x) for sub in subs)

    def all_of(self, schemas: Any, schema: dict[str, Any]) -> Check:
        return _all([self.schema(s) for s in schemas])

    def not_(self, sub_schema: Any, schema: dict[str, Any]) -> Check:
        sub = self.schema(sub_schema)
        return lambda x: not sub(x)


def _ordered(check: Check, order: int) -> Check:
    check.order = order  # type: ignore[attr-defined]
    return check


_KEYWORDS: dict[str, Callable[[_Compiler, Any, dict[str, Any]], Check | None]] = {
    "type": _Compiler.type,
    "properties": _Compiler.objects,
    "patternProperties": _Compiler.objects,
    "additionalProperties": _Compiler.objects,
    "required": _Compiler.required,
    "enum": _Compiler.enum,
    "minLength": _Compiler.min_length,
    "maxLength": _Compiler.max_length,
    "pattern": _Compiler.pattern,
    "format": _Compiler.format,
    "minimum": _Compiler.minimum,
    "maximum": _Compiler.maximum,
    "items": _Compiler.items,
    "minItems": _Compiler.min_items,
    "maxItems": _Compiler.max_items,
    "uniqueItems": _Compiler.unique_items,
    "minProperties": _Compiler.min_properties,
    "maxProperties": _Compiler.max_properties,
    "oneOf": _Compiler.one_of,
    "anyOf": _Compiler.any_of,
    "allOf": _Compiler.all_of,
    "not": _Compiler.not_,
}


def compile_schema(schema: Any, keywords: frozenset[str], formats: Any, as_number: Callable[[Any], Any]) -> Check:
    """The validity test of ``schema`` for a validator that reads ``keywords`` (its ``VALIDATORS``), with the
    ``formats`` checker and Nova's numeric-string bounds (``as_number``). The test raises ``Unknown`` for a
    document it cannot decide."""
    return _Compiler(keywords, formats, as_number).schema(schema)
