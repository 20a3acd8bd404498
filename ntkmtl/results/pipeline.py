"""The whole report for one set of options: read, select and aggregate, write, log to W&B.

``python -m ntkmtl.report`` parses its arguments into ``ReportOptions`` and calls ``run`` with the
sweep's reader and W&B key check (the CLI sits above both layers; this package imports neither).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ntkmtl.results.read import load_results, read_parquet_files
from ntkmtl.results.schema import DELTA_M
from ntkmtl.results.table import build_reports
from ntkmtl.results.wandb import log_to_wandb, wandb_or_error
from ntkmtl.results.write import write_benchmark_report


@dataclass(frozen=True)
class ReportOptions:
    """What to report and how; the names are the CLI's options (docs/REPORT.md)."""

    results: str
    out: str | None = None
    select_by: str = f"val_{DELTA_M}"
    select_mode: str | None = None
    benchmark: list[str] | None = None
    include_running: bool = False
    exclude_stopped: bool = False
    paper: bool = False
    baseline: str | None = None
    no_plots: bool = False
    wandb: bool = False
    wandb_project: str = "ntkmtl"


def run(
    options: ReportOptions,
    read: Callable[[str], pd.DataFrame] = read_parquet_files,
    api_key_present: Callable[[], bool] = lambda: False,
    echo: Callable[[str], None] = print,
) -> dict[str, list[Path]]:
    """Write every benchmark's report; returns the files written per benchmark.

    ``read`` reads the results path (``read.load_results``); ``api_key_present`` says whether W&B
    online mode can authenticate (checked before any work when ``options.wandb``)."""
    wandb = wandb_or_error(api_key_present) if options.wandb else None
    df = load_results(options.results, read)
    reports = build_reports(
        df,
        options.benchmark,
        select_by=options.select_by,
        select_mode=options.select_mode,
        include_running=options.include_running,
        exclude_stopped=options.exclude_stopped,
        paper=options.paper,
        baseline=options.baseline,
    )
    out = Path(options.out) if options.out else Path("reports") / (Path(options.results.rstrip("/")).stem or "results")
    written = {}
    for report in reports:
        written[report.benchmark] = write_benchmark_report(report, out, make_plots=not options.no_plots)
        best = report.table[report.table["source"] == "sweep"].iloc[0]
        verdict = (
            f"best test Δm {best[f'test_{DELTA_M}_mean']:.2f} % by {best['method']} {best['hyperparameters']}".rstrip()
            if best["seeds"]
            else "no usable trial yet"
        )
        echo(f"{report.benchmark}: {len(report.trials)} trials, {int(report.trials['used'].sum())} used; {verdict}")
        for path in written[report.benchmark]:
            echo(f"  wrote {path}")
    if wandb is not None:
        echo(f"W&B run: {log_to_wandb(wandb, reports, written, out, options.wandb_project)}")
    return written
