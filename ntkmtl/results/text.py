"""The sweep's final table as text: one line per method + hyperparameters, best test Δm first.

It is the report's table (``table.build_reports``), printed as aligned text: the same trial
selection and aggregation as ``python -m ntkmtl.report``, so the sweep's last screen and the report
never disagree. In short (docs/REPORT.md has the rules): each trial's epoch is its best validation
Δm (no test-set peeking), the test Δm of that epoch is reported; completed and stopped-early
trials enter the mean ± sample std over seeds; diverged, errored and unfinished (``running``)
trials are counted, never averaged; rows are configurations (``config_id``), best test Δm first.
The comparison columns are the report's too (``stats.py``): Δm against the baseline
configuration (default ``ls``), the paired difference of test Δm with its 95 % t-interval,
metrics won/lost/tied against the baseline, and the mean rank (MR) over the test metrics.

Nothing here imports matplotlib (the report draws plots in ``plots.py``, imported only to draw).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from ntkmtl.results import compare_text
from ntkmtl.results.labels import config_label
from ntkmtl.results.table import build_reports

STATUS_COLUMNS = (
    ("completed", "completed"),
    ("stopped_early", "stopped early"),
    ("diverged", "diverged"),
    ("errored", "errored"),
    ("running", "unfinished"),
)


def summarize(df: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """The report's per-configuration table of every benchmark in ``df`` (one, for a sweep),
    with a ``configuration`` label (method and hyperparameters) in front; ``baseline`` as the
    report's ``--baseline`` (the short name of the one chosen is in the ``baseline`` column)."""
    if df.empty:
        return pd.DataFrame()
    tables = []
    for report in build_reports(df, baseline=baseline):
        base = report.baseline
        table = report.table.assign(
            benchmark=report.benchmark,
            baseline=base.short if base else "",
            is_baseline=report.table["config_id"] == (base.config_id if base else None),
        )
        labels = [config_label(m, h) for m, h in zip(table["method"], table["hyperparameters"])]
        tables.append(table.assign(configuration=labels))
    summary = pd.concat(tables, ignore_index=True)
    return summary[["configuration", *[c for c in summary.columns if c != "configuration"]]]


def format_summary(summary: pd.DataFrame, wall_seconds: float | None = None) -> str:
    """The summary as an aligned text table, best test Δm first, with a footer of counts."""
    if summary.empty:
        return "no results"
    shown = [(c, title) for c, title in STATUS_COLUMNS if c != "running" or summary["running"].any()]
    comparison = _comparison_columns(summary)
    width = max(len("configuration"), *(len(c) for c in summary["configuration"]))
    header = f"{'configuration':<{width}}  seeds  {'val Δm % (selected epoch)':>25}  {'test Δm %':>17}"
    header += "".join(f"  {title:>{w}}" for title, w, _ in comparison)
    lines = [header + "".join(f"  {title}" for _, title in shown)]
    for _, r in summary.iterrows():
        line = (
            f"{r['configuration']:<{width}}  {str(r['seeds']) + '/' + str(r['trials']):>5}  "
            f"{_pm(r['val_delta_m_mean'], r['val_delta_m_std']):>25}  "
            f"{_pm(r['test_delta_m_mean'], r['test_delta_m_std']):>17}"
        )
        line += "".join(f"  {text(r):>{w}}" for _, w, text in comparison)
        lines.append(line + "".join(f"  {int(r[c]):>{len(title)}}" for c, title in shown))
    trials = int(summary["trials"].sum())
    footer = f"{trials} trials, {int(summary['stopped_early'].sum())} stopped early"
    for status in ("diverged", "errored", "running"):
        if summary[status].any():
            footer += f", {int(summary[status].sum())} {'unfinished' if status == 'running' else status}"
    if wall_seconds is not None:
        footer += f", total time {wall_seconds:.0f} s"
    notes = ["seeds = trials averaged / trials; diverged, errored and unfinished trials are counted, not averaged"]
    base = _baseline_name(summary)
    if base:
        notes.append(
            f"vs {base}: Δm with {base}'s test metrics as the reference, seed by seed (* no common seed); "
            f"mean paired difference of test Δm, 95 % t-interval (n/a: < 2 common seeds); "
            f"W/L/T = metrics won/lost/tied"
        )
    if any(title == "MR" for title, _, _ in comparison):
        notes.append("MR = mean rank over the test metrics (1 = best, ties share the average rank)")
    return "\n".join(lines + [footer, *notes])


def _baseline_name(summary: pd.DataFrame) -> str:
    return next((b for b in summary["baseline"] if b), "") if "baseline" in summary else ""


def _comparison_columns(summary: pd.DataFrame) -> list[tuple[str, int, Callable[[pd.Series], str]]]:
    """(title, width, cell text) of the comparison columns that have something to show."""
    base = _baseline_name(summary)
    texts: list[tuple[str, Callable[[pd.Series], str]]] = []
    if base:

        def mark(text: Callable[[pd.Series], str]) -> Callable[[pd.Series], str]:
            return lambda r: "baseline" if r["is_baseline"] else text(r)

        texts += [
            (f"Δm vs {base} %", mark(compare_text.relative_text)),
            (f"test Δm − {base} [95% CI]", mark(compare_text.interval_text)),
            ("W/L/T", mark(compare_text.record_text)),
        ]
    if "mean_rank" in summary:
        texts.append(("MR", compare_text.rank_text))
    texts = compare_text.shown_columns(summary, texts)
    return [(title, max(len(title), *(len(text(r)) for _, r in summary.iterrows())), text) for title, text in texts]


def _pm(mean: float, std: float) -> str:
    if mean is None or not math.isfinite(mean):
        return "n/a"
    if std is None or not math.isfinite(std):
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {std:.2f}"
