"""Writing a benchmark's report files: the Markdown page, the CSV tables and the plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ntkmtl.results import stats
from ntkmtl.results.markdown import markdown_report
from ntkmtl.results.schema import STATUSES
from ntkmtl.results.table import BenchmarkReport


def csv_table(report: BenchmarkReport) -> pd.DataFrame:
    """The per-config table as written to CSV: identity, counts, *_mean / *_std, best_in."""
    first = [
        "source",
        "method",
        "hyperparameters",
        "config_id",
        *report.hp_columns,
        "seeds",
        "trials",
        *STATUSES,
        "no_valid_epoch",
        "selected_epochs",
    ]
    values = [c for c in report.table.columns if c.endswith(("_mean", "_std")) and c not in stats.COLUMNS]
    values += [c for c in stats.COLUMNS if c in report.table.columns]
    columns = [c for c in first if c in report.table.columns] + values + ["best_in"]
    baseline = report.baseline.config_id if report.baseline is not None else ""
    return report.table[columns].assign(baseline=baseline)


def write_benchmark_report(report: BenchmarkReport, out: Path, make_plots: bool = True) -> list[Path]:
    """Write ``<benchmark>.md``, ``<benchmark>.csv``, ``<benchmark>_trials.csv`` and the plots."""
    out.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Path] = {}
    if make_plots:
        from ntkmtl.results import plots as plotting  # matplotlib only when drawing

        plots = plotting.benchmark_plots(report, out)
    name = report.benchmark
    written = [out / f"{name}.md", out / f"{name}.csv", out / f"{name}_trials.csv"]
    written[0].write_text(markdown_report(report, plots), encoding="utf-8")
    csv_table(report).to_csv(written[1], index=False)
    report.trials.to_csv(written[2], index=False)
    return written + list(plots.values())
