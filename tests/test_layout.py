"""The dependency direction of the top-level packages, checked over the import graph.

Every module of the product is parsed with ``ast``; imports at module level and inside functions
count alike (a lazy import is still a dependency). The rules (docs/ARCHITECTURE.md):

- no cycle between top-level packages;
- the twins and the sans-IO core (kernel, scenarios, integration.delivery/canonical/mapping) reach
  neither ray, asyncua, fastapi nor nats, not even through another module of the tree;
- reports import no engine (virtual, live, actors, integration);
- the engines import reports only through ``reports.finalize``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("scenarios", "kernel", "twins", "integration", "virtual", "live", "actors", "reports", "synctwin",
            "loadtest", "onboarding")
IO_LIBRARIES = ("ray", "asyncua", "fastapi", "nats")
SANS_IO = ("twins", "kernel", "scenarios", "integration.delivery", "integration.canonical", "integration.mapping")
ENGINES = ("virtual", "live", "actors", "integration")
REPORTS_ENTRY = "reports.finalize"


@dataclass(frozen=True)
class Import:
    """``importer`` (a module of the tree) imports ``target`` (a dotted name) at ``path``:``line``."""

    importer: str
    target: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the product packages by dotted name."""
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports_of(module: str, path: Path) -> Iterator[Import]:
    rel = str(path.relative_to(ROOT))
    for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, rel, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield Import(module, sub if sub in modules() else base, rel, node.lineno)


@cache
def imports() -> tuple[Import, ...]:
    """Every import statement of the tree (module and function level)."""
    return tuple(i for name, path in modules().items() for i in _imports_of(name, path))


def _top(name: str) -> str:
    return name.split(".")[0]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _package_edges() -> dict[tuple[str, str], list[Import]]:
    edges: dict[tuple[str, str], list[Import]] = {}
    for imp in imports():
        src, dst = _top(imp.importer), _top(imp.target)
        if dst in PACKAGES and src != dst:
            edges.setdefault((src, dst), []).append(imp)
    return edges


def _cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_sees_function_level_and_relative_imports():
    names = {(i.importer, i.target) for i in imports()}
    assert ("virtual.engine", "kernel.run_folder") in names  # a module-level import
    lazy = [i for i in imports() if i.importer == "live.stack" and i.target == REPORTS_ENTRY]
    assert lazy, "live.stack imports reports.finalize inside a method; the graph must see it"


def test_the_cycle_finder_finds_a_loop_and_only_the_loop():
    assert _cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")}) == [["a", "b", "c"]]
    assert _cycles({("a", "b"), ("b", "c")}) == []


def test_no_cycle_between_top_level_packages():
    edges = _package_edges()
    problems = []
    for component in _cycles(set(edges)):
        inside = [imp for (a, b), imps in sorted(edges.items()) if a in component and b in component for imp in imps]
        examples = "\n  ".join(str(i) for i in inside[:12])
        problems.append(f"packages {' <-> '.join(component)} import each other:\n  {examples}")
    assert not problems, "\n".join(problems)


def _reach(start: str) -> dict[str, Import]:
    """Every dotted name reachable from module ``start`` through the tree's imports, with the first
    import that reached it."""
    by_importer: dict[str, list[Import]] = {}
    for imp in imports():
        by_importer.setdefault(imp.importer, []).append(imp)
    seen: dict[str, Import] = {}
    todo = [start]
    while todo:
        for imp in by_importer.get(todo.pop(), []):
            if imp.target not in seen:
                seen[imp.target] = imp
                if imp.target in modules():
                    todo.append(imp.target)
    return seen


def test_twins_and_the_sans_io_core_reach_no_io_library():
    problems = []
    for name in sorted(modules()):
        if not any(_within(name, core) for core in SANS_IO):
            continue
        for target, via in _reach(name).items():
            if _top(target) in IO_LIBRARIES:
                problems.append(f"{name} reaches {target} ({via})")
    assert not problems, "\n".join(problems)


def test_reports_import_no_engine():
    bad = [str(i) for i in imports() if _top(i.importer) == "reports" and _top(i.target) in ENGINES]
    assert not bad, "reports read the run folder only:\n" + "\n".join(bad)


def test_engines_import_reports_only_through_finalize():
    bad = [str(i) for i in imports() if _top(i.importer) in ("virtual", "live") and _top(i.target) == "reports"
           and not _within(i.target, REPORTS_ENTRY)]
    assert not bad, f"engines import reports only through {REPORTS_ENTRY}:\n" + "\n".join(bad)
