"""docs/REFERENCE_FACTS.md states the numbers the code uses, and every citation of it points to a section."""

import re
from pathlib import Path

import pytest

from ntkmtl.benchmarks import benchmark_class

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "REFERENCE_FACTS.md"
NAMES = {"qm9": "QM9", "nyuv2": "NYUv2", "cityscapes": "Cityscapes", "celeba": "CelebA"}


def section(number: int) -> str:
    text = DOC.read_text()
    start = text.index(f"\n## {number}. ")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


@pytest.mark.parametrize("benchmark", sorted(NAMES))
def test_stl_baselines_are_the_benchmarks_metric_baselines(benchmark):
    item = re.search(rf"^- {NAMES[benchmark]} \(.*?\):\n  `([^`]+)`", section(3), re.M | re.S)
    documented = [float(v) for v in re.split(r"[,\s]+", item.group(1).strip())]
    assert documented == [m.baseline for m in benchmark_class(benchmark)().metrics]


@pytest.mark.parametrize("benchmark", sorted(NAMES))
def test_set_up_table_states_each_benchmarks_default_epochs_batch_and_lr(benchmark):
    row = next(line for line in section(4).splitlines() if line.startswith(f"| {NAMES[benchmark]} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    defaults = benchmark_class(benchmark).defaults
    assert (int(cells[4]), int(cells[5])) == (defaults.epochs, defaults.batch_size)
    assert float(re.search(r"Adam (\S+),", cells[3]).group(1)) == defaults.lr


def test_headline_table_is_the_reports_paper_rows():
    from ntkmtl.results.table import PAPER_DELTA_M

    lines = [line for line in section(1).splitlines() if line.startswith("|")]
    methods = {
        "NTKMTL": "ntkmtl",
        "NTKMTL-SR": "ntkmtl_sr",
        "FairGrad": "fairgrad",
        "FAMO": "famo",
        "Nash-MTL": "nashmtl",
        "LS": "ls",
    }
    header = [methods[c.strip()] for c in lines[0].strip("|").split("|")[1:]]
    documented = {}
    for line in lines[2:]:
        name, *cells = [c.strip() for c in line.strip("|").split("|")]
        benchmark = {v: k for k, v in NAMES.items()}[name]
        for method, cell in zip(header, cells):
            if cell != "—":
                mean, _, std = cell.replace("−", "-").partition(" ± ")
                documented.setdefault(benchmark, {})[method] = (float(mean), float(std) if std else None)
    assert documented == PAPER_DELTA_M


def test_package_citations_point_to_sections_that_exist():
    headings = set(re.findall(r"^## (\d+)\. ", DOC.read_text(), re.M))
    cited = []
    for path in (ROOT / "ntkmtl").rglob("*.py"):
        cited += re.findall(r"REFERENCE_FACTS\.md §(\d+)", path.read_text())
    assert cited and set(cited) <= headings
