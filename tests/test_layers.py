"""Every module imports only its own layer and the ones below, and no import cycle exists anywhere:
options ← methods ← benchmarks ← train ← results ← sweep ← CLI (docs/DESIGN.md).

Every module of the package is read with ``ast`` (nothing is imported), and every import in it,
at module level, inside a function or under ``TYPE_CHECKING``, becomes an edge to the module it
names: ``from a.b import c`` points to ``a.b.c`` when that is a module, else to ``a.b``. results
and sweep both sit on train; the sweep may use the results layer (its final table, the schema),
never the other way round. A module no layer is given to fails the test: place it first.

No module of the package is over ``MAX_MODULE_LINES`` lines (counted as ``wc -l`` counts them):
a module fits in one reading; split a longer one by job (CONTRIBUTING.md).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ntkmtl"
LAYERS = ("options", "methods", "benchmarks", "train", "results", "sweep", "cli")  # bottom first
TOP_LEVEL = {  # the layer of each top-level module or package of ntkmtl
    "options": "options",
    "columns": "options",  # Column, the declaration of a result column: imports nothing
    "methods": "methods",
    "benchmarks": "benchmarks",
    "train": "train",
    "training": "train",
    "precision": "train",  # precision: torch-only helpers of the trainer
    "results": "results",
    "sweep": "sweep",
    "tune": "cli",
    "report": "cli",  # python -m ntkmtl.tune / ntkmtl.report: argument parsing
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
MAX_MODULE_LINES = 300


def long_modules(limit: int = MAX_MODULE_LINES) -> dict[str, int]:
    """path → line count (newlines, as ``wc -l``) of every package module over ``limit`` lines."""
    counts = {str(p.relative_to(PACKAGE.parent)): p.read_bytes().count(b"\n") for p in MODULES.values()}
    return {path: n for path, n in counts.items() if n > limit}


def layer(module: str) -> str:
    """The layer a module belongs to, "root" for the package itself, "unplaced" when none is given."""
    if module == "ntkmtl":
        return "root"
    return TOP_LEVEL.get(module.split(".")[1], "unplaced")


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
    """May ``source`` import ``target``? Its own layer and the ones below; options nothing."""
    if layer(source) == "options":
        return False  # options sits below everything and imports nothing of the package
    if layer(target) == "root":
        return True
    return layer(target) in LAYERS and LAYERS.index(layer(target)) <= LAYERS.index(layer(source))


def layer_violations() -> list[str]:
    return [
        f"{MODULES[source].relative_to(PACKAGE.parent)}:{line} imports {target} "
        f"({layer(source)} must not import {layer(target)})"
        for source, edges in GRAPH.items()
        if layer(source) in LAYERS
        for line, target in edges
        if not allowed(source, target)
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
    assert "ntkmtl.results.schema" in {t for _, t in GRAPH["ntkmtl.sweep.export"]}  # the sweep uses results
    assert "ntkmtl.results.table" in {t for _, t in GRAPH["ntkmtl.results.compare_text"]}  # under TYPE_CHECKING
    assert "ntkmtl.results.plots" in {t for _, t in GRAPH["ntkmtl.results.write"]}  # inside a function


def test_no_module_is_over_300_lines():
    assert long_modules() == {}


def test_the_line_count_is_wc_l():
    assert long_modules(0)["ntkmtl/sweep/config.py"] == len((PACKAGE / "sweep" / "config.py").read_text().splitlines())
    assert set(long_modules(0)) == {str(p.relative_to(PACKAGE.parent)) for p in MODULES.values() if p.stat().st_size}


def test_every_module_has_a_layer():
    assert [m for m in MODULES if layer(m) == "unplaced"] == []


def test_every_module_imports_only_its_own_layer_and_the_ones_below():
    assert layer_violations() == []


def test_the_package_has_no_import_cycle():
    assert [" → ".join(path) for path in cycles(GRAPH, set(MODULES))] == []


@pytest.mark.parametrize(
    "edge, expected",
    [
        (("ntkmtl.methods.cagrad", "ntkmtl.benchmarks.qm9"), "methods must not import benchmarks"),
        (("ntkmtl.benchmarks.toy", "ntkmtl.train"), "benchmarks must not import train"),
        (("ntkmtl.train", "ntkmtl.sweep.config"), "train must not import sweep"),
        (("ntkmtl.train", "ntkmtl.results.schema"), "train must not import results"),
        (("ntkmtl.options", "ntkmtl.methods.base"), "options must not import methods"),
        (("ntkmtl.results.read", "ntkmtl.sweep.export"), "results must not import sweep"),
        (("ntkmtl.results.wandb", "ntkmtl.sweep.wandb"), "results must not import sweep"),
        (("ntkmtl.sweep.summary", "ntkmtl.report"), "sweep must not import cli"),
        (("ntkmtl.results.plots", "ntkmtl.report"), "results must not import cli"),
    ],
)
def test_a_forbidden_import_is_named(edge, expected, monkeypatch):
    source, target = edge
    monkeypatch.setitem(GRAPH, source, GRAPH[source] + [(1, target)])
    assert any(expected in v for v in layer_violations())


def test_the_sweep_may_use_the_results_layer(monkeypatch):
    monkeypatch.setitem(GRAPH, "ntkmtl.sweep.tune", GRAPH["ntkmtl.sweep.tune"] + [(1, "ntkmtl.results.table")])
    assert layer_violations() == []


def test_a_cycle_inside_one_layer_is_found(monkeypatch):
    """The table drawing a plot while the plots read the table (as report.py and plots.py once did)."""
    monkeypatch.setitem(GRAPH, "ntkmtl.results.table", GRAPH["ntkmtl.results.table"] + [(1, "ntkmtl.results.plots")])
    assert layer_violations() == []
    assert cycles(GRAPH, set(MODULES)) == [["ntkmtl.results.plots", "ntkmtl.results.table", "ntkmtl.results.plots"]]


def test_a_cycle_is_found_and_written_as_a_path():
    graph = {"a": [(1, "b")], "b": [(1, "c")], "c": [(1, "a")], "d": [(1, "a")]}
    assert cycles(graph, set(graph)) == [["a", "b", "c", "a"]]
    assert cycles({"a": [(1, "a")]}, {"a"}) == [["a", "a"]]
    assert cycles({"a": [(1, "b")], "b": []}, {"a", "b"}) == []
