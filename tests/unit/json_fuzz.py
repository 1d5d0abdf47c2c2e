"""Hypothesis strategies for the API fuzz tests: odd text, any JSON, and request bodies near a valid one."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

ODD_TEXT = ["", " ", "\x00", "a\x00b", "x" * 65, "x" * 256, "é", "\U0001f600", "\ud7ff", "null", "true", "0" * 64,
            "../../etc", "%", "default", "admin"]
texts = st.one_of(st.text(max_size=12), st.sampled_from(ODD_TEXT), st.text(min_size=250, max_size=300))
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), texts)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner,
                                                                                                  max_size=3),
                           max_leaves=6)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document (dict keys and list indexes)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += paths(item, (*prefix, index))
    return out


def replace(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of ``document`` with ``new`` at ``path``."""
    if not path:
        return new
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = replace(document[path[0]], path[1:], new)
    return copy


@st.composite
def bodies(draw: st.DrawFn, template: dict[str, Any] | None) -> bytes | Any:
    """A JSON document near ``template`` (one place replaced, or a key added), any JSON at all, or raw bytes."""
    kind = draw(st.sampled_from(["mutate", "mutate", "mutate", "add", "deep", "any", "bytes"] if template else
                                ["any", "bytes", "deep"]))
    if kind == "deep":  # nested deeper than Python's recursion limit, yet valid JSON
        nested: Any = []
        for _ in range(draw(st.sampled_from([40, 300, 1000]))):
            nested = [nested]
        return replace(template, draw(st.sampled_from(paths(template))), nested) if template else nested
    if kind == "bytes":
        return draw(st.sampled_from([b"", b"{", b"\xff\xfe{}", b'{"a": "\\ud800"}', b"[" * 2000, b"null",
                                     b'{"auth": 1e999}']) | st.binary(max_size=40))
    if kind == "any" or template is None:
        return draw(json_values)
    path = draw(st.sampled_from(paths(template)))
    if kind == "add":
        parent = path if isinstance(get(template, path), dict) else path[:-1]
        holder = get(template, parent)
        if isinstance(holder, dict):
            return replace(template, parent, {**holder, draw(texts): draw(json_values)})
    return replace(template, path, draw(json_values))


def get(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        document = document[part]
    return document
