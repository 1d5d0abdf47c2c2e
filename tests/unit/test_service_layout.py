"""The compute agent and the conductor keep a thin manager over one module per flow, with no import circle.

Read from the source (no import needed): every module-level or function-level ``from stratus.X import`` and
``import stratus.X`` of a module of ``stratus/compute`` or ``stratus/conductor``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "stratus"


def _imports(path: Path, package: str) -> set[str]:
    """The modules of ``package`` that ``path`` imports (``stratus.compute.build`` → ``build``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == package:
                found.update(alias.name for alias in node.names)
            elif node.module.startswith(package + "."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names if a.name.startswith(package + "."))
    return found


def _graph(package: str) -> dict[str, set[str]]:
    folder = ROOT / package.split(".")[1]
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    return {m: _imports(folder / f"{m}.py", package) & modules - {m} for m in modules}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of the graph, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("package", ["stratus.compute", "stratus.conductor"])
def test_no_import_circle(package: str) -> None:
    assert _cycle(_graph(package)) is None


@pytest.mark.parametrize("package", ["stratus.compute", "stratus.conductor"])
def test_no_flow_imports_the_manager(package: str) -> None:
    graph = _graph(package)
    assert sorted(m for m, deps in graph.items() if "manager" in deps) == []


def test_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package", ["stratus.compute", "stratus.conductor"])
def test_modules_stay_small(package: str) -> None:
    """STYLE.md: modules under ~600 lines."""
    folder = ROOT / package.split(".")[1]
    sizes = {p.name: len(p.read_text().splitlines()) for p in folder.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 600} == {}


#: the managers' methods that do more than hand a message on: start-up, stop, the periodic entry points
_LIFECYCLE = {"__init__", "init_host", "cleanup_host", "recover", "periodic_tasks"}


def _one_call(statements: list[ast.stmt]) -> bool:
    """A body that is one statement (a docstring aside), or one ``if`` whose branches each are."""
    body = [b for b in statements if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))]
    if len(body) != 1:
        return False
    if isinstance(body[0], ast.If):
        return _one_call(body[0].body) and (not body[0].orelse or _one_call(body[0].orelse))
    return True


@pytest.mark.parametrize("package", ["stratus.compute", "stratus.conductor"])
def test_the_manager_only_dispatches(package: str) -> None:
    """Every RPC endpoint of the manager is one statement: the call of its flow's module."""
    tree = ast.parse((ROOT / package.split(".")[1] / "manager.py").read_text())
    fat = [item.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name.endswith("Manager")
           for item in node.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
           and item.name not in _LIFECYCLE and not _one_call(item.body)]
    assert fat == []


def test_one_call_sees_a_fat_body() -> None:
    tree = ast.parse("def f():\n    a()\n    b()\ndef g():\n    if x:\n        a()\n    else:\n        b()\n")
    fat, thin = (node for node in tree.body if isinstance(node, ast.FunctionDef))
    assert not _one_call(fat.body) and _one_call(thin.body)
