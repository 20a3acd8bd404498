"""The per-configuration table of a benchmark: mean ± std over seeds, comparison, order, best marks.

- Mean ± std over the seeds used, std = sample standard deviation (ddof = 1; blank with one seed).
  A NaN test value at the selected epoch makes the mean NaN: it is shown, never skipped.
- Rows sorted by test Δm (lower is better, configurations without a usable trial last); the best
  mean of every column is marked (``best_in``). Δm is lower is better; a metric's direction comes
  from the benchmark (``select.metric_directions``).
- ``paper`` appends the paper's published Δm (docs/REFERENCE_FACTS.md §1) as comparison rows,
  which are never marked best.
- ``baseline`` (default: the sweep's ``ls`` configuration) adds the comparison columns of
  ``stats.py``: Δm against that configuration, the paired difference of test Δm with its 95 %
  t-interval, wins/losses per metric and the mean rank (MR) over the metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ntkmtl.results import stats
from ntkmtl.results.baseline import Baseline, BaselineError
from ntkmtl.results.errors import ReportError
from ntkmtl.results.labels import hp_text
from ntkmtl.results.schema import DELTA_M, IDENTITY_COLUMNS, STATUSES
from ntkmtl.results.select import Selection, make_selection, metric_directions, select_epochs

# The NTKMTL paper's headline test Δm% (mean, std or None), docs/REFERENCE_FACTS.md §1, for --paper.
PAPER_DELTA_M: dict[str, dict[str, tuple[float, float | None]]] = {
    "nyuv2": {
        "ntkmtl": (-6.99, 0.38),
        "ntkmtl_sr": (-5.35, None),
        "fairgrad": (-4.66, None),
        "famo": (-4.10, None),
        "nashmtl": (-4.04, None),
        "ls": (5.59, None),
    },
    "cityscapes": {"ntkmtl": (1.92, 0.30), "ntkmtl_sr": (3.84, None), "fairgrad": (5.18, None), "ls": (22.60, None)},
    "celeba": {
        "ntkmtl": (-0.77, 0.37),
        "ntkmtl_sr": (0.23, None),
        "fairgrad": (0.37, None),
        "famo": (1.21, None),
        "ls": (4.15, None),
    },
    "qm9": {
        "ntkmtl": (56.7, None),
        "ntkmtl_sr": (30.7, None),
        "fairgrad": (57.0, None),
        "famo": (38.9, None),
        "nashmtl": (72.9, None),
        "ls": (179.8, None),
    },
}


@dataclass
class BenchmarkReport:
    """Everything reported for one benchmark: the per-trial selection and the per-config table."""

    benchmark: str
    selection: Selection
    metrics: list[tuple[str, bool | None]]  # (metric name, higher_is_better or None = unknown)
    rows: pd.DataFrame  # the benchmark's Parquet rows (every epoch)
    trials: pd.DataFrame  # one row per trial: status, selected epoch, values there, used or not
    table: pd.DataFrame  # one row per config_id (+ paper rows), sorted, with best_in
    hp_columns: list[str] = field(default_factory=list)
    baseline: Baseline | None = None  # what the comparison columns compare with
    comparison_note: str = ""  # why there is no baseline, metrics left out of the comparison

    @property
    def sweeps(self) -> list[str]:
        return sorted(self.rows["sweep"].astype(str).unique())


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and sample std (ddof=1) of the seeds; NaN propagates; std NaN with fewer than 2 seeds."""
    mean = float(np.mean(values)) if len(values) else math.nan
    std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return mean, std


def config_table(trials: pd.DataFrame, metric_names: list[str], hp_columns: list[str]) -> pd.DataFrame:
    """One row per config_id: seeds used, trial counts by status, mean ± std of every column."""
    value_columns = [f"test_{DELTA_M}", f"val_{DELTA_M}"] + [f"test_{m}" for m in metric_names]
    records = []
    for config_id, group in trials.groupby("config_id", sort=False):
        used = group[group["used"]].sort_values("seed", kind="stable")
        first = group.iloc[0]
        record: dict[str, Any] = {
            "source": "sweep",
            "method": first["method"],
            "config_id": config_id,
            "hyperparameters": hp_text(first, hp_columns),
        }
        record.update({c: first[c] for c in hp_columns})
        record["seeds"] = len(used)
        record["trials"] = len(group)
        for status in STATUSES:
            record[status] = int((group["status"] == status).sum())
        record["no_valid_epoch"] = int(group["excluded_because"].str.startswith("no finite").sum())
        record["selected_epochs"] = ";".join(str(e) for e in used["selected_epoch"])
        for c in value_columns:
            record[f"{c}_mean"], record[f"{c}_std"] = _mean_std(used[c].to_numpy(dtype=float))
        records.append(record)
    return pd.DataFrame(records)


def sort_and_mark(table: pd.DataFrame, metrics: list[tuple[str, bool | None]]) -> pd.DataFrame:
    """Sort by test Δm (NaN last, then method, hyperparameters) and fill ``best_in`` per row."""
    table = table.sort_values(
        [f"test_{DELTA_M}_mean", "method", "hyperparameters"], na_position="last", kind="stable"
    ).reset_index(drop=True)
    directions = [(f"test_{DELTA_M}", False), (f"val_{DELTA_M}", False)] + [(f"test_{m}", h) for m, h in metrics]
    values = [(f"{c}_mean", c, h) for c, h in directions] + [("mean_rank", "mean_rank", False)] * ("mean_rank" in table)
    best_in: list[list[str]] = [[] for _ in range(len(table))]
    measured = table["source"] == "sweep"
    for value, column, higher in values:
        if higher is None:
            continue
        means = table.loc[measured, value].astype(float)
        if not np.isfinite(means).any():
            continue
        best = means.max() if higher else means.min()
        for i in means.index[means == best]:
            best_in[i].append(column)
    table["best_in"] = [";".join(b) for b in best_in]
    return table


def paper_rows(benchmark: str, hp_columns: list[str]) -> pd.DataFrame:
    """The paper's published test Δm for this benchmark as table rows (docs/REFERENCE_FACTS.md §1)."""
    records = []
    for method, (mean, std) in PAPER_DELTA_M.get(benchmark, {}).items():
        record = {
            "source": "paper",
            "method": method,
            "config_id": "",
            "hyperparameters": "",
            f"test_{DELTA_M}_mean": mean,
            f"test_{DELTA_M}_std": math.nan if std is None else std,
        }
        record.update({c: np.nan for c in hp_columns})
        records.append(record)
    return pd.DataFrame(records)


def build_benchmark_report(
    rows: pd.DataFrame,
    benchmark: str,
    select_by: str = f"val_{DELTA_M}",
    select_mode: str | None = None,
    include_running: bool = False,
    exclude_stopped: bool = False,
    paper: bool = False,
    declared: dict[str, bool] | None = None,
    baseline: str | None = None,
) -> BenchmarkReport:
    """Select every trial's epoch and build the sorted per-config table of one benchmark.

    ``baseline`` names the configuration the comparison columns compare with (``stats.py``;
    None: the sweep's ``ls``, "none": no comparison). ``declared`` ({metric: higher_is_better})
    overrides the benchmark's own declaration (tests)."""
    for needed in (f"val_{DELTA_M}", f"test_{DELTA_M}"):
        if needed not in rows.columns:
            raise ReportError(
                f"benchmark {benchmark!r}: the results have no {needed!r} column; expected the sweep schema (docs/SWEEP.md)"
            )
    rows = rows[rows["benchmark"] == benchmark]
    # Columns of other benchmarks (all null here) are dropped; the Δm and selection columns stay.
    keep = {f"val_{DELTA_M}", f"test_{DELTA_M}", select_by, *IDENTITY_COLUMNS}
    rows = rows[[c for c in rows.columns if c in keep or rows[c].notna().any()]]
    columns = list(rows.columns)
    metrics = metric_directions(benchmark, columns, declared)
    selection = make_selection(select_by, select_mode, metrics, columns, benchmark, include_running, exclude_stopped)
    hp_columns = sorted(c for c in columns if c.startswith("hp_"))
    value_columns = list(
        dict.fromkeys(
            [selection.column, f"val_{DELTA_M}", f"test_{DELTA_M}"]
            + [f"{s}_{m}" for m, _ in metrics for s in ("val", "test")]
        )
    )
    trials = select_epochs(rows, selection, value_columns)
    table = config_table(trials, [m for m, _ in metrics], hp_columns)
    if paper:
        table = pd.concat([table, paper_rows(benchmark, hp_columns)], ignore_index=True)
        counts = ["seeds", "trials", *STATUSES, "no_valid_epoch"]
        table[counts] = table[counts].astype("Int64")  # paper rows have none: keep the counts integers
    try:
        table, chosen, note = stats.add_comparison(table, trials, metrics, baseline)
    except BaselineError as err:
        raise ReportError(f"benchmark {benchmark!r}: {err}") from err
    table = sort_and_mark(table, metrics)
    return BenchmarkReport(benchmark, selection, metrics, rows, trials, table, hp_columns, chosen, note)


def build_reports(df: pd.DataFrame, benchmarks: list[str] | None = None, **options: Any) -> list[BenchmarkReport]:
    """One BenchmarkReport per benchmark in the data (or the ones named), by name."""
    present = sorted(df["benchmark"].astype(str).unique())
    if benchmarks:
        unknown = [b for b in benchmarks if b not in present]
        if unknown:
            raise ReportError(
                f"--benchmark {unknown[0]!r}: not in the results; benchmarks present: {', '.join(present)}"
            )
        present = [b for b in present if b in benchmarks]
    return [build_benchmark_report(df, b, **options) for b in present]
