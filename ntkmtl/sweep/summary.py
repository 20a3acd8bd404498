"""The table printed at the end of a sweep: one line per method + hyperparameters.

It is the report's table (``ntkmtl.report.build_reports``), printed as text: the same trial
selection and aggregation as ``python -m ntkmtl.report``, so the sweep's last screen and the report
never disagree. In short (docs/REPORT.md has the rules): each trial's epoch is its best validation
Δm (no test-set peeking), the test Δm of that epoch is reported; completed and stopped-early
trials enter the mean ± sample std over seeds; diverged, errored and unfinished (``running``)
trials are counted, never averaged; rows are configurations (``config_id``), best test Δm first.

The report module imports matplotlib only when it draws plots, so the sweep layer stays free of it.
"""
from __future__ import annotations

import math

import pandas as pd

from ntkmtl.report import build_reports

STATUS_COLUMNS = (("completed", "completed"), ("stopped_early", "stopped early"), ("diverged", "diverged"),
                  ("errored", "errored"), ("running", "unfinished"))


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """The report's per-configuration table of every benchmark in ``df`` (one, for a sweep),
    with a ``configuration`` label (method and hyperparameters) in front."""
    if df.empty:
        return pd.DataFrame()
    tables = []
    for report in build_reports(df):
        table = report.table.assign(benchmark=report.benchmark)
        labels = (table["method"] + " " + table["hyperparameters"]).str.strip()
        tables.append(table.assign(configuration=labels))
    summary = pd.concat(tables, ignore_index=True)
    return summary[["configuration", *[c for c in summary.columns if c != "configuration"]]]


def format_summary(summary: pd.DataFrame, wall_seconds: float | None = None) -> str:
    """The summary as an aligned text table, best test Δm first, with a footer of counts."""
    if summary.empty:
        return "no results"
    shown = [(c, title) for c, title in STATUS_COLUMNS if c != "running" or summary["running"].any()]
    width = max(len("configuration"), *(len(c) for c in summary["configuration"]))
    header = f"{'configuration':<{width}}  seeds  {'val Δm % (selected epoch)':>25}  {'test Δm %':>17}"
    lines = [header + "".join(f"  {title}" for _, title in shown)]
    for _, r in summary.iterrows():
        line = (f"{r['configuration']:<{width}}  {str(r['seeds']) + '/' + str(r['trials']):>5}  "
                f"{_pm(r['val_delta_m_mean'], r['val_delta_m_std']):>25}  "
                f"{_pm(r['test_delta_m_mean'], r['test_delta_m_std']):>17}")
        lines.append(line + "".join(f"  {int(r[c]):>{len(title)}}" for c, title in shown))
    trials = int(summary["trials"].sum())
    footer = f"{trials} trials, {int(summary['stopped_early'].sum())} stopped early"
    for status in ("diverged", "errored", "running"):
        if summary[status].any():
            footer += f", {int(summary[status].sum())} {'unfinished' if status == 'running' else status}"
    if wall_seconds is not None:
        footer += f", total time {wall_seconds:.0f} s"
    notes = "seeds = trials averaged / trials; diverged, errored and unfinished trials are counted, not averaged"
    return "\n".join(lines + [footer, notes])


def _pm(mean: float, std: float) -> str:
    if mean is None or not math.isfinite(mean):
        return "n/a"
    if std is None or not math.isfinite(std):
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {std:.2f}"
