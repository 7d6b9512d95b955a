"""The import graph of ednaquery/, indexer/ and trainer/: no cycles, and the core stands alone.

Every module is parsed with :mod:`ast` and every import counts, top-level or inside a
function (a function-level import hides a cycle, it does not remove it); only imports under
``if TYPE_CHECKING:`` are left out, as they never run. Importing ``a.b.c`` also runs
``a/__init__`` and ``a/b/__init__``; those implicit edges are left out too, so a package may
re-export its own modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ednaquery", "indexer", "trainer")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node`` (at any depth) but those under ``if TYPE_CHECKING:``."""
    out: list[ast.Import | ast.ImportFrom] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            out.append(child)
        elif _is_type_checking(child):
            for other in child.orelse:
                out.extend(_import_nodes(ast.Module(body=[other], type_ignores=[])))
        else:
            out.extend(_import_nodes(child))
    return out


def _known(target: str, modules: dict[str, Path]) -> str | None:
    """The module of ours ``target`` names (its longest known prefix), or None for a third-party one."""
    parts = target.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in modules:
            return name
    return None


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ours that module ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: list[str] = []
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.extend(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[:len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([node.module] if node.module else [])])
        # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
        targets.extend(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names)
    found = {_known(t, modules) for t in targets}
    return {m for m in found if m is not None and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _path(graph: dict[str, set[str]], component: list[str]) -> str:
    """One cycle through the component, as ``a -> b -> a``."""
    members = set(component)
    start = component[0]
    trail = [start]
    seen = {start}
    while True:
        nxt = sorted(m for m in graph[trail[-1]] if m in members)
        back = start if start in nxt else None
        step = back or next((m for m in nxt if m not in seen), nxt[0])
        trail.append(step)
        if step in seen:
            return " -> ".join(trail[trail.index(step):])
        seen.add(step)


GRAPH = _graph()


def test_the_graph_sees_every_package_and_function_level_imports() -> None:
    # the parser must see what it is meant to check: an import inside a function counts
    assert {m.split(".")[0] for m in GRAPH} == set(PACKAGES)
    assert "ednaquery.store.mongo" in GRAPH["ednaquery.store"]  # open_store imports it inside the function
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package: str) -> None:
    cycles = [c for c in _cycles(GRAPH) if any(m.split(".")[0] == package for m in c)]
    assert not cycles, "import cycles: " + "; ".join(_path(GRAPH, c) for c in cycles)


# what each part of trainer/ may import from trainer/ besides itself (see trainer/__init__.py)
TRAINER_LAYERS = {
    "trainer.errors": set(),
    "trainer.engine": {"trainer.errors"},
    "trainer.recorder": set(),
    "trainer.ddp": {"trainer.errors", "trainer.engine", "trainer.recorder"},
    "trainer.ops": {"trainer.errors", "trainer.engine", "trainer.recorder", "trainer.ddp"},
}


def _part(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_trainer_parts_import_only_downwards() -> None:
    wrong = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() if _part(m) in TRAINER_LAYERS
                   for t in targets if t.startswith("trainer.") and _part(t) != _part(m)
                   and _part(t) not in TRAINER_LAYERS[_part(m)])
    assert not wrong, "trainer/ imports against its layers: " + ", ".join(wrong)


def test_the_engine_never_touches_the_store() -> None:
    wrong = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() if _part(m) == "trainer.engine"
                   for t in targets if t == "ednaquery.store" or t.startswith("ednaquery.store."))
    assert not wrong, "the engine reaches the store: " + ", ".join(wrong)


def test_ednaquery_never_imports_indexer_or_trainer() -> None:
    wrong = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() if m.split(".")[0] == "ednaquery"
                   for t in targets if t.split(".")[0] != "ednaquery")
    assert not wrong, "the core imports the tools built on it: " + ", ".join(wrong)
