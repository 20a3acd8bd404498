"""What a sweep's own rows say about its past trials, for ``--extend`` and the final search lines.

Read from the Parquet rows in the sweep's output (not from Ray's state, which a resume may have
older): one row per trial (``trial_rows``), a trial's complete hyperparameters back from its
``hp_`` columns (``row_hparams``), the epochs each configuration's seeds ran — the early
stopping's decision (``decided_epochs``) —, every search sample's objective as the searcher
judged it (``judged_samples``) and seed-aware ASHA's rungs as the existing configurations left
them (``rung_means``). A trial counts as evidence when its status is one of ``USED_STATUSES``,
what the report averages. Plain Python, no Ray.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ntkmtl.benchmarks import benchmark_class
from ntkmtl.sweep.config_types import SweepConfig
from ntkmtl.sweep.export import read_results
from ntkmtl.sweep.seed_asha import rung_milestones

USED_STATUSES = ("completed", "stopped_early")  # what the report averages: the early stopping's evidence


def trial_rows(cfg: SweepConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sweep's rows in its output, and one row per trial (its last epoch's row, ``epochs_run``)."""
    output = Path(cfg.output).expanduser()
    if not output.is_dir() or not any(output.glob("*.parquet")):
        return pd.DataFrame(), pd.DataFrame()
    df = read_results(output)
    df = df[df["sweep"] == cfg.name]
    if df.empty:
        return df, pd.DataFrame()
    last = df.sort_values("epoch").groupby("trial_id", sort=False).tail(1).set_index("trial_id")
    last["epochs_run"] = df.groupby("trial_id")["epoch"].max()
    return df, last.reset_index()


def row_hparams(row: pd.Series, method: str, benchmark: str) -> dict[str, Any]:
    """A trial's complete hyperparameters, read back from its ``hp_`` columns."""
    names = list(benchmark_class(benchmark).method_hparams(method, {}))
    values = {n: row[f"hp_{n}"] for n in names if f"hp_{n}" in row and not pd.isna(row[f"hp_{n}"])}
    return benchmark_class(benchmark).method_hparams(
        method, {k: v.item() if hasattr(v, "item") else v for k, v in values.items()}
    )


def decided_epochs(trials: pd.DataFrame, epochs: int) -> dict[str, int]:
    """Per existing configuration with a used seed: the epochs its seeds ran (the early stopping's decision)."""
    used = trials[trials["status"].isin(USED_STATUSES)]
    return {str(c): int(min(epochs, g.max())) for c, g in used.groupby("config_id")["epochs_run"]}


def judged_samples(cfg: SweepConfig) -> list[dict[str, Any]]:
    """Every sample of the sweep's searches as its rows judge it: the mean over used seeds of each
    seed's best early-stopping metric (what ``ntkmtl.sweep.search`` tells Optuna), NaN with no used seed.
    Read from the Parquet rows, so it does not depend on when Ray last saved the searcher."""
    rows, trials = trial_rows(cfg)
    if trials.empty or "search" not in trials:
        return []
    metric, best = cfg.early_stopping.metric, (min if cfg.early_stopping.mode == "min" else max)
    out = []
    for method in (m for m in cfg.methods if m.ranges):
        searched = trials[(trials["method"] == method.name) & trials["search"].notna()]
        for cid, seeds in searched.groupby("config_id", sort=False):
            used = seeds[seeds["status"].isin(USED_STATUSES)]
            values = [
                best(rows.loc[rows["trial_id"] == t, metric].dropna(), default=math.nan) for t in used["trial_id"]
            ]
            values = [v for v in values if math.isfinite(v)]
            hparams = row_hparams(seeds.iloc[0], method.name, cfg.benchmark)
            params = {k: hparams[k] for k in (*method.ranges, *(k for k, v in method.grid.items() if len(v) > 1))}
            out.append(
                {
                    "method": method.name,
                    "config_id": str(cid),
                    "hparams": hparams,
                    "searched": params,
                    "objective": sum(values) / len(values) if values else math.nan,
                    "seeds_used": len(values),
                    "metric": metric,
                }
            )
    return out


def rung_means(cfg: SweepConfig, rows: pd.DataFrame, trials: pd.DataFrame) -> dict[int, dict[str, float]]:
    """Seed-aware ASHA's rungs as the existing configurations left them: their seed means per rung."""
    s = cfg.early_stopping
    if s.type != "seed_asha":
        return {}
    used = trials.loc[trials["status"].isin(USED_STATUSES), "trial_id"]
    rows = rows[rows["trial_id"].isin(used)]
    sign = 1.0 if s.mode == "max" else -1.0
    prefill: dict[int, dict[str, float]] = {}
    for milestone in rung_milestones(s.grace_period, s.reduction_factor, cfg.epochs):
        at = rows[rows["epoch"] == milestone].groupby("config_id")[s.metric].mean().dropna()
        prefill[milestone] = {str(c): sign * float(v) for c, v in at.items()}
    return prefill
