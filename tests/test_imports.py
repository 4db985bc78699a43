"""No import cycles inside the perface package.

The import graph is read from the source with ``ast``: an edge A -> B for every ``import perface.B`` /
``from perface.B import x`` / relative import in module A, at module level or inside a function (those run
later but still make the two modules depend on each other); imports under ``if TYPE_CHECKING:`` never run
and are left out. ``from pkg import name`` points at the submodule ``pkg.name`` when there is one, else at
``pkg`` (its ``__init__``). The parent packages Python initialises on the way are not edges: every module
would then "import" ``perface/__init__.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "perface"


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Import nodes that run (module level, classes, functions), skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """perface module -> the perface modules it imports (see the module docstring)."""
    files = {_module_name(p, package): p for p in sorted(package.rglob("*.py"))}
    graph: dict[str, set[str]] = {name: set() for name in files}

    def target(name: str) -> str | None:
        while name and name not in files:  # `import perface.a.b.c` where c is a name: the module a.b
            name = name.rpartition(".")[0]
        return name or None

    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                found = [target(alias.name) for alias in node.names if alias.name.split(".")[0] == "perface"]
            else:
                if node.level:
                    base = name if is_package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    module = f"{base}.{node.module}" if node.module else base
                else:
                    module = node.module or ""
                if module.split(".")[0] != "perface":
                    continue
                found = [target(f"{module}.{alias.name}") if f"{module}.{alias.name}" in files else target(module)
                         for alias in node.names]
            graph[name].update(t for t in found if t and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted, as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _path(graph: dict[str, set[str]], component: list[str]) -> str:
    """One concrete cycle through the component's first module, for the failure message."""
    members = set(component)
    start = component[0]
    trail = [start]
    seen = {start}
    while True:
        nxt = sorted(graph[trail[-1]] & members)
        back = [m for m in nxt if m == start]
        if back and len(trail) > 1:
            return " -> ".join(trail + [start])
        unseen = [m for m in nxt if m not in seen]
        if not unseen:
            return " -> ".join(trail + [nxt[0]])
        trail.append(unseen[0])
        seen.add(unseen[0])


def test_graph_reader_sees_top_level_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "perface"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from perface.sub.b import thing\n")
    (pkg / "a.py").write_text("import os\nfrom perface.sub import b\n"
                              "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from perface import c\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n    return x\nthing = 1\n")
    (pkg / "c.py").write_text("import perface.a.x\n")
    graph = import_graph(pkg)
    assert graph == {"perface": set(), "perface.sub": {"perface.sub.b"}, "perface.a": {"perface.sub.b"},
                     "perface.sub.b": {"perface.a"}, "perface.c": {"perface.a"}}
    assert cycles(graph) == [["perface.a", "perface.sub.b"]]
    assert _path(graph, ["perface.a", "perface.sub.b"]) == "perface.a -> perface.sub.b -> perface.a"


def test_no_import_cycles_in_perface():
    graph = import_graph()
    assert len(graph) > 50 and "perface.backbones.iresnet" in graph
    assert "perface.backbones.iresnet" in graph["perface.backbones.insightface_import"]  # the reader sees edges
    found = [_path(graph, component) for component in cycles(graph)]
    assert not found, "import cycles:\n" + "\n".join(found)
