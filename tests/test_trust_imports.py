"""No import circles inside `experiments`, `pev_env` or `pev_mpc`, counting imports inside functions
(imports under `if TYPE_CHECKING:` never run and are left out)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str) -> dict[str, Path]:
    base = ROOT / package
    out = {}
    for path in base.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.AST, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """Every module imported anywhere in the tree: `from p import m` imports the module p.m when it exists,
    else p (a submodule's implicit import of its parent package is not counted)."""
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if _type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    modules = _modules(package)
    return {name: {m for m in _imports(ast.parse(path.read_text()), name, path.name == "__init__.py", set(modules))
                   if m in modules and m != name}
            for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.add(frozenset(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("package", ["experiments", "pev_env", "pev_mpc"])
def test_no_import_circles(package) -> None:
    found = cycles(import_graph(package))
    assert not found, sorted(sorted(c) for c in found)


def test_the_walk_sees_imports_inside_functions() -> None:
    graph = import_graph("experiments")
    assert "experiments.controllers.rl_model" in graph["experiments.controllers.registry"]  # imported inside make_controller
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}


LAYERS = ("cli", "commands", "learning", "controllers", "outputs", "errors")
"""The subpackages of `experiments` (and the shared `errors` module), each importing only those after it."""


def test_experiments_subpackages_import_one_way() -> None:
    graph = import_graph("experiments")
    layer = {name: name.split(".")[1] for name in graph if name.count(".") >= 1}
    assert set(layer.values()) - {"__main__"} == set(LAYERS)
    upward = sorted((a, b) for a, deps in graph.items() for b in deps
                    if a in layer and b in layer and layer[a] in LAYERS and layer[b] in LAYERS
                    and LAYERS.index(layer[b]) < LAYERS.index(layer[a]))
    assert not upward, upward
