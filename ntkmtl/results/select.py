"""Which epoch of each trial is reported, and which trials enter the means.

- Epoch selection, no test-set peeking: each trial's epoch is the one with the best validation
  value of ``--select-by`` (default ``val_delta_m``, lower is better; another ``val_<metric>``
  takes its direction from the benchmark's metric declaration). Ties go to the earliest epoch.
  The test metrics reported are the ones of that epoch.
- Statuses (a trial's status is the one on its last epoch's row, ``schema.STATUSES``):
  ``completed`` and ``stopped_early`` trials are used (``exclude_stopped`` leaves the latter out);
  ``running`` trials are left out unless ``include_running``; ``diverged`` and ``errored`` trials
  are never used, only counted; a trial without any finite selection value is left out and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ntkmtl.results.errors import ReportError
from ntkmtl.results.schema import DELTA_M


@dataclass(frozen=True)
class Selection:
    """How each trial's epoch is chosen: the validation column and whether lower is better."""

    column: str = "val_delta_m"
    lower_is_better: bool = True
    include_running: bool = False
    exclude_stopped: bool = False

    @property
    def label(self) -> str:
        return f"{self.column} ({'lowest' if self.lower_is_better else 'highest'})"


def declared_metrics(benchmark: str) -> dict[str, bool]:
    """{metric name: higher_is_better} from the benchmark's declaration, {} when it can't be read.

    Benchmarks are built with default options, which loads no data. One that cannot be built that
    way (a required data option, an import failing on this machine) gives {}: its metrics are then
    taken from the Parquet columns, with unknown directions (never marked best)."""
    from ntkmtl.benchmarks import BENCHMARKS, benchmark_class

    if benchmark not in BENCHMARKS:
        raise ReportError(
            f"unknown benchmark {benchmark!r} in the results; valid benchmarks: {', '.join(sorted(BENCHMARKS))}"
        )
    try:
        metrics = benchmark_class(benchmark)().metrics
        return {m.name: bool(m.higher_is_better) for m in metrics}
    except Exception:  # any failure to build the declaration falls back to the columns, see docstring
        return {}


def metric_directions(
    benchmark: str, columns: list[str], declared: dict[str, bool] | None = None
) -> list[tuple[str, bool | None]]:
    """The benchmark's metrics present in the data, as (name, higher_is_better or None).

    A metric is reported when both ``val_<m>`` and ``test_<m>`` columns exist; declaration order
    first, then any other metric in column order."""
    declared = declared_metrics(benchmark) if declared is None else declared
    present = [
        c[len("test_") :]
        for c in columns
        if c.startswith("test_") and c != f"test_{DELTA_M}" and f"val_{c[len('test_') :]}" in columns
    ]
    ordered = [m for m in declared if m in present] + [m for m in present if m not in declared]
    return [(m, declared.get(m)) for m in ordered]


def make_selection(
    column: str,
    mode: str | None,
    metrics: list[tuple[str, bool | None]],
    columns: list[str],
    benchmark: str,
    include_running: bool = False,
    exclude_stopped: bool = False,
) -> Selection:
    """Check ``--select-by`` against the benchmark's columns and find its direction."""
    if not column.startswith("val_"):
        raise ReportError(
            f"--select-by {column!r} is not a validation column (val_…): selecting epochs on "
            f"train or test values would peek; e.g. --select-by val_{DELTA_M}"
        )
    if column not in columns:
        valid = ", ".join(c for c in columns if c.startswith("val_")) or "none"
        raise ReportError(f"--select-by {column!r}: no such column for benchmark {benchmark!r}; valid: {valid}")
    if mode is not None:
        lower = mode == "min"
    elif column == f"val_{DELTA_M}":
        lower = True
    else:
        higher = dict(metrics).get(column[len("val_") :])
        if higher is None:
            raise ReportError(
                f"--select-by {column!r}: the direction of this metric is unknown for benchmark "
                f"{benchmark!r}; add --select-mode min or --select-mode max"
            )
        lower = not higher
    return Selection(column, lower, include_running, exclude_stopped)


def select_epochs(rows: pd.DataFrame, selection: Selection, value_columns: list[str]) -> pd.DataFrame:
    """One row per trial: status, epochs run, the selected epoch, the values there, used or why not."""
    hp_columns = [c for c in rows.columns if c.startswith("hp_")]
    out = []
    for (_, _), trial in rows.groupby(["sweep", "trial_id"], sort=False):
        trial = trial.sort_values("epoch", kind="stable")
        last = trial.iloc[-1]
        status = str(last["status"])
        scores = trial[selection.column].to_numpy(dtype=float)
        finite = np.isfinite(scores)
        record = {c: last[c] for c in ("sweep", "trial_id", "config_id", "benchmark", "method", *hp_columns, "seed")}
        record.update(status=status, epochs_run=int(trial["epoch"].max()), selected_epoch=pd.NA)
        if finite.any():
            ranked = np.where(finite, scores if selection.lower_is_better else -scores, np.inf)
            chosen = trial.iloc[int(np.argmin(ranked))]  # argmin: the earliest epoch among ties
            record["selected_epoch"] = int(chosen["epoch"])
            record.update({c: chosen[c] for c in value_columns})
        else:
            record.update({c: np.nan for c in value_columns})
        record["used"], record["excluded_because"] = _use_trial(status, bool(finite.any()), selection)
        out.append(record)
    trials = pd.DataFrame(out)
    trials["selected_epoch"] = trials["selected_epoch"].astype("Int64")
    return trials


def _use_trial(status: str, has_value: bool, selection: Selection) -> tuple[bool, str]:
    """Whether a trial enters the means, and if not, why (the status rules of the module docstring)."""
    if status in ("diverged", "errored"):
        return False, status
    if status == "running" and not selection.include_running:
        return False, "running"
    if status == "stopped_early" and selection.exclude_stopped:
        return False, "stopped_early"
    if not has_value:
        return False, f"no finite {selection.column}"
    return True, ""
