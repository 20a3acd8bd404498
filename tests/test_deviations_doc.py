"""docs/DEVIATIONS.md names real options whose defaults are the reference's, and --help lists them."""

import re
from pathlib import Path

import yaml

from ntkmtl.benchmarks import BENCHMARKS, benchmark_class
from ntkmtl.methods import METHODS
from ntkmtl.tune import build_parser

DOC = Path(__file__).resolve().parents[1] / "docs" / "DEVIATIONS.md"


def options_table() -> list[tuple[str, str, str]]:
    """(option, where, reference behaviour) of each row of the options table."""
    text = DOC.read_text()
    table = text[text.index("## Options") : text.index("## Kept where")]
    rows = [line.split("|")[1:4] for line in table.splitlines() if line.startswith("| `")]
    return [(re.sub(r"[`]| \(per benchmark\)", "", o).strip(), w.strip(), r.strip()) for o, w, r in rows]


def test_every_option_exists_where_the_table_says_and_defaults_to_the_reference_value():
    rows = options_table()
    assert len(rows) >= 15
    for option, where, reference in rows:
        default = re.match(r"`([^`]+)`", reference)
        if option.startswith("data."):
            name = option[len("data.") :]
            for benchmark in (w.strip() for w in where.split(",")):
                spec = {h.name: h for h in benchmark_class(benchmark).data_options}[name]
                expected = yaml.safe_load(default.group(1)) if default else None  # "none: ..." = None
                assert spec.default == expected, (option, benchmark)
        else:
            methods = [m.strip() for m in re.sub(r"\(.*?\)", "", where).split(",")]
            methods = sorted(METHODS) if methods == ["every method"] else methods
            for method in methods:
                spec = {h.name: h for h in METHODS[method].all_hparams()}[option]
                if default and option != "max_norm":  # max_norm's defaults: test_reference_fidelity.py
                    assert spec.default == yaml.safe_load(default.group(1)), (option, method)


def test_help_lists_every_option_of_the_table():
    text = build_parser().format_help()
    for option, _, _ in options_table():
        name = option[len("data.") :] if option.startswith("data.") else option
        pattern = rf"data\.{name} = " if option.startswith("data.") else rf"^    {name} = "
        assert re.search(pattern, text, re.MULTILINE), option
    assert "docs/DEVIATIONS.md" in text
    assert "methods.ntkmtl_sr: n_splits=1 by default" in text
    assert set(BENCHMARKS) <= set(re.findall(r"^(\w+)  \(", text, re.MULTILINE))
