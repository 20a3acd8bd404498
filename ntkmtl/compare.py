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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

if TYPE_CHECKING:
    from ntkmtl.report import BenchmarkReport

CONFIDENCE = 0.95
COLUMNS = ("rel_delta_m_mean", "rel_delta_m_std", "rel_paired_seeds", "paired_diff_mean", "paired_diff_low",
           "paired_diff_high", "paired_n", "wins", "losses", "ties", "mean_rank")


class BaselineError(ValueError):
    """``--baseline`` names no configuration, or more than one."""


@dataclass(frozen=True)
class Baseline:
    """The configuration every other one is compared with."""

    config_id: str
    label: str  # "ls max_norm=0": method and hyperparameters, as in the table
    short: str  # column headings: the method alone when the table has one configuration of it


def _label(row: pd.Series) -> str:
    return f"{row['method']} {row['hyperparameters']}".strip()


def _matches(row: pd.Series, method: str, wanted: dict[str, str]) -> bool:
    """Whether a table row is ``method`` with every ``name=value`` of ``wanted``."""
    if row["method"] != method:
        return False
    for name, text in wanted.items():
        value = row.get(f"hp_{name}")
        if value is None or pd.isna(value):
            return False
        try:
            if not math.isclose(float(value), float(text), rel_tol=1e-9, abs_tol=1e-12):
                return False
        except ValueError:
            if str(value) != text:
                return False
    return True


def _baseline(measured: pd.DataFrame, row: pd.Series) -> Baseline:
    alone = int((measured["method"] == row["method"]).sum()) == 1
    return Baseline(str(row["config_id"]), _label(row), str(row["method"]) if alone else _label(row))


def resolve_baseline(table: pd.DataFrame, spec: str | None) -> tuple[Baseline | None, str]:
    """The baseline named by ``spec`` and a note for the report.

    ``spec`` is a config_id, a method name, or a method with hyperparameters as in the table
    (``"ntkmtl ntk_exp=0.5"``; unnamed hyperparameters may take any value, but the match must be
    unique); ``"none"`` turns comparisons off. Without ``spec`` the baseline is the sweep's ``ls``
    configuration when it has exactly one. Raises BaselineError for a spec that names no
    configuration or several."""
    measured = table[table["source"] == "sweep"]
    if spec is not None and spec.strip().lower() == "none":
        return None, "no baseline (--baseline none)"
    if spec is None:
        ls = measured[measured["method"] == "ls"]
        if len(ls) == 1:
            return _baseline(measured, ls.iloc[0]), ""
        if len(ls) > 1:
            return None, f"no baseline: {len(ls)} ls configurations; choose one with --baseline"
        return None, "no baseline: no ls configuration; choose one with --baseline"
    spec = spec.strip()
    exact = measured[measured["config_id"].astype(str) == spec]
    if len(exact) == 1:
        return _baseline(measured, exact.iloc[0]), ""
    method, _, rest = spec.partition(" ")
    wanted = {}
    for part in rest.replace(",", " ").split():
        name, sep, value = part.partition("=")
        if not sep:
            raise BaselineError(f"--baseline {spec!r}: {part!r} is not name=value (e.g. --baseline 'ntkmtl ntk_exp=0.5')")
        wanted[name] = value
    found = measured[[_matches(r, method, wanted) for _, r in measured.iterrows()]]
    valid = "; ".join(_label(r) for _, r in measured.iterrows())
    if found.empty:
        raise BaselineError(f"--baseline {spec!r} matches no configuration; configurations: {valid}")
    if len(found) > 1:
        raise BaselineError(f"--baseline {spec!r} matches {len(found)} configurations "
                            f"({'; '.join(_label(r) for _, r in found.iterrows())}): name its hyperparameters")
    return _baseline(measured, found.iloc[0]), ""


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


def compare_with(trials: pd.DataFrame, config_id: str, baseline_id: str,
                 metrics: list[tuple[str, bool]]) -> dict[str, Any]:
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
    ranks = [stats.rankdata(-means.loc[ranked, f"test_{m}_mean"] if higher else means.loc[ranked, f"test_{m}_mean"],
                            method="average") for m, higher in metrics]
    result.loc[ranked] = np.mean(ranks, axis=0)
    return result


def add_comparison(table: pd.DataFrame, trials: pd.DataFrame, metrics: list[tuple[str, bool | None]],
                   spec: str | None) -> tuple[pd.DataFrame, Baseline | None, str]:
    """The table with the comparison columns (NaN where they do not apply), the baseline, a note."""
    known = [(m, bool(h)) for m, h in metrics if h is not None]
    baseline, note = resolve_baseline(table, spec)
    table = table.copy()
    rows = [compare_with(trials, str(r["config_id"]), baseline.config_id, known)
            if baseline is not None and r["source"] == "sweep" else dict.fromkeys(COLUMNS[:-1], math.nan)
            for _, r in table.iterrows()]
    for column in COLUMNS[:-1]:
        table[column] = [r[column] for r in rows]
    table["mean_rank"] = mean_ranks(table, known)
    if len(known) < len(metrics):
        unknown = ", ".join(m for m, h in metrics if h is None)
        note = "; ".join(filter(None, [note, f"metrics of unknown direction left out of the comparison: {unknown}"]))
    return table, baseline, note


# ----------------------------------------------------------------------------- text

def relative_text(row: pd.Series, decimals: int = 2) -> str:
    """'-20.83 ± 19.09' (mean ± std over paired seeds), '14.29*' when unpaired, '' when none."""
    mean, std = row.get("rel_delta_m_mean", math.nan), row.get("rel_delta_m_std", math.nan)
    if pd.isna(mean):
        return ""
    text = f"{mean:.{decimals}f}" + (f" ± {std:.{decimals}f}" if pd.notna(std) else "")
    return text + ("*" if row.get("rel_paired_seeds") == 0 else "")


def interval_text(row: pd.Series, decimals: int = 2) -> str:
    """'-4.33 [-8.13, -0.54]' (mean paired difference, 95 % t-interval), 'n/a' without the pairs for it."""
    mean = row.get("paired_diff_mean", math.nan)
    if pd.isna(mean):
        return "n/a" if row.get("source") == "sweep" and pd.notna(row.get("paired_n")) else ""
    low, high = row.get("paired_diff_low", math.nan), row.get("paired_diff_high", math.nan)
    if pd.isna(low):
        return f"{mean:.{decimals}f} [n/a]"
    return f"{mean:.{decimals}f} [{low:.{decimals}f}, {high:.{decimals}f}]"


def record_text(row: pd.Series) -> str:
    """'2/0/0': metrics won / lost / tied against the baseline."""
    if pd.isna(row.get("wins", math.nan)):
        return ""
    return f"{int(row['wins'])}/{int(row['losses'])}/{int(row['ties'])}"


def rank_text(row: pd.Series) -> str:
    value = row.get("mean_rank", math.nan)
    return "" if pd.isna(value) else f"{value:.2f}"


def headings(report: BenchmarkReport) -> list[tuple[str, Callable[[pd.Series], str]]]:
    """The comparison columns (heading, cell text): against the baseline when there is one, then MR."""
    columns: list[tuple[str, Callable[[pd.Series], str]]] = []
    base = report.baseline
    if base is not None:
        def mark(text: Callable[[pd.Series], str]) -> Callable[[pd.Series], str]:
            return lambda r: "baseline" if r["config_id"] == base.config_id else text(r)

        columns += [(f"Δm vs {base.short} %", mark(relative_text)),
                    (f"test Δm − {base.short} (95 % CI)", mark(interval_text)),
                    (f"W/L/T vs {base.short}", mark(record_text))]
    columns.append(("MR", rank_text))
    return shown_columns(report.table, columns)


def shown_columns(table: pd.DataFrame, columns: list[tuple[str, Callable[[pd.Series], str]]]
                  ) -> list[tuple[str, Callable[[pd.Series], str]]]:
    """The columns with a value to show in some row (no metric with a known direction: no Δm
    vs the baseline, no W/L/T, no MR)."""
    cells = {title: [text(r) for _, r in table.iterrows()] for title, text in columns}
    return [(t, f) for t, f in columns if any(c not in ("", "baseline") for c in cells[t])]


def paragraph(report: BenchmarkReport) -> str:
    """What the comparison columns mean, for the Markdown page."""
    base = report.baseline
    text = ""
    if base is not None:
        text = (f"Comparison with the baseline **{base.label}** (`--baseline`): 'Δm vs {base.short}' is Δm with "
                "the baseline's test metrics in place of the single-task values, seed by seed over the seeds both "
                "used (mean ± std; * = no seed in common, against the baseline's mean over its seeds); "
                f"'test Δm − {base.short}' is the mean paired difference of test Δm over the common seeds with "
                "its 95 % Student-t interval (n/a with fewer than 2 common seeds; an interval without 0 is a "
                f"difference beyond seed noise); W/L/T counts the metrics whose mean is better / worse / equal "
                "than the baseline's over the same seeds. ")
    elif report.comparison_note:
        text = report.comparison_note[0].upper() + report.comparison_note[1:] + ". "
    return text + ("MR is the mean rank over the test metrics (1 = best; tied configurations share the average "
                   "of their ranks).")


def check_baseline(configs: list[tuple[str, str, dict[str, Any]]], spec: str | None) -> None:
    """Raise BaselineError when ``spec`` names no configuration, or several, of a sweep's plan
    (``configs``: config_id, method, complete hyperparameters), before the sweep starts."""
    from ntkmtl.report import hp_text

    records = [{"source": "sweep", "config_id": cid, "method": method, **{f"hp_{k}": v for k, v in hparams.items()}}
               for cid, method, hparams in dict((c[0], c) for c in configs).values()]
    table = pd.DataFrame(records)
    hp_columns = [c for c in table.columns if c.startswith("hp_")]
    table["hyperparameters"] = [hp_text(r, hp_columns) for _, r in table.iterrows()]
    resolve_baseline(table, spec)
