"""The table printed at the end of a sweep: one line per method + hyperparameters.

For each trial the best epoch is the one with the lowest validation Δm; its val Δm and the test
Δm of that same epoch (model selection on validation, as in the paper) are averaged over the
configuration's seeds (mean ± sample std). The table also counts how each configuration's
trials ended (completed, stopped early, diverged, errored).
"""
from __future__ import annotations

import math

import pandas as pd

SELECTION_METRIC = "val_delta_m"


def configuration_labels(df: pd.DataFrame) -> pd.Series:
    """``method`` plus the hyperparameters that vary within that method in ``df`` (e.g. ntk_exp=0.5)."""
    hps = [c for c in df.columns if c.startswith("hp_")]
    varying = {
        method: [c for c in hps if group[c].dropna().nunique() > 1]
        for method, group in df.groupby("method")
    }

    def label(row) -> str:
        parts = [row["method"]]
        for c in varying[row["method"]]:
            value = row[c]
            parts.append(f"{c[3:]}={value:g}" if isinstance(value, float) else f"{c[3:]}={value}")
        return " ".join(parts)

    return df.apply(label, axis=1)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: seeds, best-epoch val/test Δm mean and std, end statuses."""
    if df.empty:
        return pd.DataFrame()
    df = df.assign(configuration=configuration_labels(df))
    best_rows = []
    for _, trial in df.groupby("trial_id"):
        finite = trial[trial[SELECTION_METRIC].notna()]
        best = finite.loc[finite[SELECTION_METRIC].idxmin()] if len(finite) else trial.iloc[-1]
        best_rows.append(best)
    best = pd.DataFrame(best_rows)
    rows = []
    for (configuration, config_id), group in best.groupby(["configuration", "config_id"], sort=False):
        statuses = group["status"].value_counts()
        rows.append({
            "configuration": configuration,
            "config_id": config_id,
            "seeds": len(group),
            "val_delta_m_mean": group["val_delta_m"].mean(),
            "val_delta_m_std": group["val_delta_m"].std(),
            "test_delta_m_mean": group["test_delta_m"].mean(),
            "test_delta_m_std": group["test_delta_m"].std(),
            "best_epoch_mean": group["epoch"].mean(),
            **{status: int(statuses.get(status, 0)) for status in ("completed", "stopped_early", "diverged", "errored")},
        })
    return pd.DataFrame(rows).sort_values("val_delta_m_mean", na_position="last", ignore_index=True)


def format_summary(summary: pd.DataFrame, wall_seconds: float | None = None) -> str:
    """The summary as an aligned text table (best val Δm first)."""
    if summary.empty:
        return "no results"
    width = max(len("configuration"), *(len(c) for c in summary["configuration"]))
    lines = [
        f"{'configuration':<{width}}  seeds  {'val Δm % (best epoch)':>21}  {'test Δm %':>17}  "
        "completed  stopped early  diverged  errored"
    ]
    for r in summary.itertuples():
        lines.append(
            f"{r.configuration:<{width}}  {r.seeds:>5}  {_pm(r.val_delta_m_mean, r.val_delta_m_std):>21}  "
            f"{_pm(r.test_delta_m_mean, r.test_delta_m_std):>17}  {r.completed:>9}  {r.stopped_early:>13}  "
            f"{r.diverged:>8}  {r.errored:>7}"
        )
    trials = int(summary["seeds"].sum())
    stopped = int(summary["stopped_early"].sum())
    footer = f"{trials} trials, {stopped} stopped early"
    if wall_seconds is not None:
        footer += f", total time {wall_seconds:.0f} s"
    return "\n".join(lines + [footer])


def _pm(mean: float, std: float) -> str:
    if mean is None or not math.isfinite(mean):
        return "n/a"
    if std is None or not math.isfinite(std):
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {std:.2f}"
