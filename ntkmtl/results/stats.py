"""Comparison statistics: each configuration against a baseline configuration of the same sweep.

Δm against the paper's single-task baselines says little on a short budget (3 QM9 epochs give
~10,000 %); what a researcher asks then is "does this method beat LS here, and is the gain real?".
For every configuration C of a benchmark report and a baseline configuration B (``--baseline``,
default: the sweep's ``ls`` configuration when it has exactly one), this module adds:

- **Δm vs baseline** (``rel_delta_m_*``): the Δm formula (docs/REFERENCE_FACTS.md §3) with B's test metrics
  in place of the STL values, Δm_B(C) = 100 · mean_j (−1)^{s_j} (M_j^C − M_j^B) / M_j^B, seed by
  seed over the seeds both used (C's seed s against B's seed s), then mean ± sample std over those
  seeds. With no seed in common it is computed for each of C's seeds against B's mean over its
  seeds and flagged unpaired (``rel_paired_seeds`` = 0). Only metrics with a known direction count.
- **Paired difference of test Δm** (``paired_diff_*``): d_s = Δm(C, s) − Δm(B, s) over the common
  seeds; its mean and the 95 % Student-t interval mean ± t_{0.975, n−1} · sd / √n (sd with
  ddof = 1). With fewer than 2 common seeds the interval is n/a. An interval that excludes 0 says
  the difference is more than seed noise (a t-interval assumes roughly normal differences).
- **Wins / losses / ties per metric** (``wins``, ``losses``, ``ties``): for each metric with a
  known direction, C's mean over the common seeds against B's mean over the same seeds (over each
  one's used seeds when none is common); better is a win, equal a tie.
- **Mean rank** (``mean_rank``, MR): per test metric with a known direction, the configurations
  with a usable trial are ranked on their mean (1 = best; ties share the average of the ranks they
  span, e.g. two configurations tied for 2nd both get 2.5), and MR is the mean of a
  configuration's ranks over the metrics. A configuration with a NaN mean in any metric gets no MR
  and is left out of the ranking. MR needs no baseline.

Inputs are the report's per-trial selection (each trial's selected epoch, ``used`` flag) and its
per-configuration table; paper rows (``source == "paper"``) get no statistics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ntkmtl.results.baseline import Baseline, resolve_baseline

CONFIDENCE = 0.95
COLUMNS = (
    "rel_delta_m_mean",
    "rel_delta_m_std",
    "rel_paired_seeds",
    "paired_diff_mean",
    "paired_diff_low",
    "paired_diff_high",
    "paired_n",
    "wins",
    "losses",
    "ties",
    "mean_rank",
)


def t_interval(differences: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) of the Student-t interval of the mean; low/high NaN with fewer than 2 values."""
    n = len(differences)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(np.mean(differences))
    if n < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * float(np.std(differences, ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def relative_delta_m(values: pd.DataFrame, reference: pd.DataFrame, metrics: list[tuple[str, bool]]) -> np.ndarray:
    """Δm % of each row of ``values`` against the same row of ``reference`` (test_<metric> columns)."""
    terms = []
    for name, higher in metrics:
        sign = -1.0 if higher else 1.0
        ref = reference[f"test_{name}"].to_numpy(dtype=float)
        terms.append(sign * (values[f"test_{name}"].to_numpy(dtype=float) - ref) / ref)
    return 100.0 * np.mean(terms, axis=0)


def _per_seed(trials: pd.DataFrame, config_id: str, columns: list[str]) -> pd.DataFrame:
    """The used trials of one configuration, one row per seed (a seed run in two sweeps: their mean)."""
    used = trials[trials["used"] & (trials["config_id"] == config_id)]
    return used.groupby("seed")[columns].mean()


def compare_with(
    trials: pd.DataFrame, config_id: str, baseline_id: str, metrics: list[tuple[str, bool]]
) -> dict[str, Any]:
    """The baseline statistics of one configuration (the module docstring's definitions)."""
    columns = ["test_delta_m"] + [f"test_{m}" for m, _ in metrics]
    mine, base = _per_seed(trials, config_id, columns), _per_seed(trials, baseline_id, columns)
    out: dict[str, Any] = dict.fromkeys(COLUMNS[:-1], math.nan)
    if mine.empty or base.empty:
        return out
    common = mine.index.intersection(base.index)
    if len(common):
        mine_c, base_c = mine.loc[common], base.loc[common]
    else:  # unpaired: every seed of C against B's mean over its seeds
        mine_c, base_c = mine, pd.DataFrame([base.mean()] * len(mine), index=mine.index)
    out["rel_paired_seeds"] = len(common)
    if metrics:
        rel = relative_delta_m(mine_c, base_c, metrics)
        out["rel_delta_m_mean"] = float(np.mean(rel))
        out["rel_delta_m_std"] = float(np.std(rel, ddof=1)) if len(rel) > 1 else math.nan
    diff = (mine.loc[common, "test_delta_m"] - base.loc[common, "test_delta_m"]).to_numpy(dtype=float)
    out["paired_n"] = len(common)
    out["paired_diff_mean"], out["paired_diff_low"], out["paired_diff_high"] = t_interval(diff)
    if not metrics:
        return out
    wins = losses = ties = 0
    for name, higher in metrics:
        a, b = float(mine_c[f"test_{name}"].mean()), float(base_c[f"test_{name}"].mean())
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        if a == b:
            ties += 1
        elif (a > b) == higher:
            wins += 1
        else:
            losses += 1
    out.update(wins=wins, losses=losses, ties=ties)
    return out


def mean_ranks(table: pd.DataFrame, metrics: list[tuple[str, bool]]) -> pd.Series:
    """MR per table row (NaN for paper rows, rows without a usable trial or with a NaN metric mean)."""
    result = pd.Series(math.nan, index=table.index)
    if not metrics:
        return result
    means = table[[f"test_{m}_mean" for m, _ in metrics]].astype(float)
    ranked = (table["source"] == "sweep") & (table["seeds"].fillna(0) > 0) & np.isfinite(means).all(axis=1)
    if not ranked.any():
        return result
    ranks = [
        stats.rankdata(
            -means.loc[ranked, f"test_{m}_mean"] if higher else means.loc[ranked, f"test_{m}_mean"], method="average"
        )
        for m, higher in metrics
    ]
    result.loc[ranked] = np.mean(ranks, axis=0)
    return result


def add_comparison(
    table: pd.DataFrame, trials: pd.DataFrame, metrics: list[tuple[str, bool | None]], spec: str | None
) -> tuple[pd.DataFrame, Baseline | None, str]:
    """The table with the comparison columns (NaN where they do not apply), the baseline, a note."""
    known = [(m, bool(h)) for m, h in metrics if h is not None]
    baseline, note = resolve_baseline(table, spec)
    table = table.copy()
    rows = [
        compare_with(trials, str(r["config_id"]), baseline.config_id, known)
        if baseline is not None and r["source"] == "sweep"
        else dict.fromkeys(COLUMNS[:-1], math.nan)
        for _, r in table.iterrows()
    ]
    for column in COLUMNS[:-1]:
        table[column] = [r[column] for r in rows]
    table["mean_rank"] = mean_ranks(table, known)
    if len(known) < len(metrics):
        unknown = ", ".join(m for m, h in metrics if h is None)
        note = "; ".join(filter(None, [note, f"metrics of unknown direction left out of the comparison: {unknown}"]))
    return table, baseline, note
