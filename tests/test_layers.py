"""The lower layers import only downwards and have no import cycle: options ← methods ← benchmarks ← train.

Every module of the package is read with ``ast`` (nothing is imported), and every import in it,
at module level or inside a function, becomes an edge to the module it names: ``from a.b import
c`` points to ``a.b.c`` when that is a module, else to ``a.b``. A lower layer may import its own
layer and the layers below it; anything else of the package (sweep, report, plots, tune, and any
module added above train) counts as higher.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ntkmtl"
LOWER_LAYERS = ("options", "methods", "benchmarks", "train")  # bottom first
TRAIN_LAYER_MODULES = {"precision": "train", "training": "train"}  # top-level modules of the train layer


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    """The lower layer a module belongs to, "root" for the package itself, else "higher"."""
    if module == "ntkmtl":
        return "root"
    top = module.split(".")[1]
    top = TRAIN_LAYER_MODULES.get(top, top)
    return top if top in LOWER_LAYERS else "higher"


def imports(module: str) -> list[tuple[int, str]]:
    """(line, imported package module) of every import statement in ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES and target.startswith("ntkmtl"):
                target = target.rpartition(".")[0]  # an attribute of a module: the module
            if target in MODULES:
                found.append((node.lineno, target))
    return found


GRAPH = {module: imports(module) for module in MODULES}


def allowed(source: str, target: str) -> bool:
    """May ``source`` (of a lower layer) import ``target``?"""
    rank = LOWER_LAYERS.index(layer(source))
    if layer(source) == "options":
        return False  # options sits below everything and imports nothing of the package
    return layer(target) == "root" or (layer(target) in LOWER_LAYERS and LOWER_LAYERS.index(layer(target)) <= rank)


def layer_violations() -> list[str]:
    return [
        f"{MODULES[source].relative_to(PACKAGE.parent)}:{line} imports {target} "
        f"({layer(source)} must not import {layer(target)})"
        for source, edges in GRAPH.items() if layer(source) in LOWER_LAYERS
        for line, target in edges if not allowed(source, target)
    ]


def cycles(graph: dict[str, list[tuple[int, str]]], nodes: set[str]) -> list[list[str]]:
    """One cycle per strongly connected group of ``nodes`` (Tarjan), as a closed path."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for _, nxt in graph[node]:
            if nxt not in nodes:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1 or any(t == node for _, t in graph[node]):
                groups.append(set(group))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return [closed_path(graph, group) for group in groups]


def closed_path(graph: dict[str, list[tuple[int, str]]], group: set[str]) -> list[str]:
    """A path from the group's first module back to itself, inside the group (breadth-first)."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for _, nxt in graph[node]:
            if nxt == start:
                return paths[node] + [start]
            if nxt in group and nxt not in paths:
                paths[nxt] = paths[node] + [nxt]
                frontier.append(nxt)
    raise AssertionError(f"no cycle through {start}")


def test_the_walker_sees_the_imports_it_must_see():
    assert {"ntkmtl.options", "ntkmtl.methods.base", "ntkmtl.benchmarks.qm9", "ntkmtl.train"} <= set(MODULES)
    assert "ntkmtl.options" in {t for _, t in GRAPH["ntkmtl.benchmarks.qm9"]}
    assert "ntkmtl.benchmarks.qm9_source" in {t for _, t in GRAPH["ntkmtl.benchmarks.qm9"]}  # from pkg import module
    assert "ntkmtl.methods.gradients" in {t for _, t in GRAPH["ntkmtl.methods.base"]}
    assert any(layer(t) == "benchmarks" for _, t in GRAPH["ntkmtl.training.trial"])


def test_lower_layers_import_only_their_own_layer_and_the_ones_below():
    assert layer_violations() == []


def test_lower_layers_have_no_import_cycle():
    lower = {m for m in MODULES if layer(m) in LOWER_LAYERS}
    assert [" → ".join(path) for path in cycles(GRAPH, lower)] == []


@pytest.mark.parametrize("edge, expected", [
    (("ntkmtl.methods.cagrad", "ntkmtl.benchmarks.qm9"), "methods must not import benchmarks"),
    (("ntkmtl.benchmarks.toy", "ntkmtl.train"), "benchmarks must not import train"),
    (("ntkmtl.train", "ntkmtl.sweep.config"), "train must not import higher"),
    (("ntkmtl.options", "ntkmtl.methods.base"), "options must not import methods"),
])
def test_a_forbidden_import_is_named(edge, expected, monkeypatch):
    source, target = edge
    monkeypatch.setitem(GRAPH, source, GRAPH[source] + [(1, target)])
    assert any(expected in v for v in layer_violations())


def test_a_cycle_is_found_and_written_as_a_path():
    graph = {"a": [(1, "b")], "b": [(1, "c")], "c": [(1, "a")], "d": [(1, "a")]}
    assert cycles(graph, set(graph)) == [["a", "b", "c", "a"]]
    assert cycles({"a": [(1, "a")]}, {"a"}) == [["a", "a"]]
    assert cycles({"a": [(1, "b")], "b": []}, {"a", "b"}) == []
