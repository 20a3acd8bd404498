"""Results reports: paper-style tables, plots and W&B logging from a sweep's Parquet data set.

    python -m ntkmtl.report RESULTS [--out DIR] [--select-by val_delta_m] [--paper] [--wandb]

RESULTS is what ``ntkmtl.sweep.export`` wrote (one row per trial × epoch, docs/DESIGN.md
"Sweep → Parquet"), for one or many sweeps. For each benchmark the report writes a Markdown and a
CSV table with one row per method × hyperparameters (``config_id``), a per-trial CSV and PNG plots.

The rules (docs/REPORT.md says the same for users):

- Epoch selection, no test-set peeking: each trial's epoch is the one with the best validation
  value of ``--select-by`` (default ``val_delta_m``, lower is better; another ``val_<metric>``
  takes its direction from the benchmark's metric declaration). Ties go to the earliest epoch.
  The test metrics reported are the ones of that epoch.
- Statuses (a trial's status is the one on its last epoch's row): ``completed`` and
  ``stopped_early`` trials are used (stopped-early ones are counted and flagged in the notes;
  ``--exclude-stopped`` leaves them out); ``running`` trials are left out unless
  ``--include-running``; ``diverged`` and ``errored`` trials are never used, only counted; a trial
  without any finite selection value is left out and counted in the notes.
- Mean ± std over the seeds used, std = sample standard deviation (ddof = 1; blank with one seed).
  A NaN test value at the selected epoch makes the mean NaN: it is shown, never skipped.
- Rows sorted by test Δm (lower is better, configurations without a usable trial last); the best
  mean of every column is marked (bold in Markdown, listed in the CSV's ``best_in``). Δm is lower
  is better; a metric's direction comes from the benchmark (see ``metric_directions``).
- ``--paper`` appends the paper's published Δm (docs/REFERENCE_FACTS.md §1) as comparison rows,
  which are never marked best.
- ``--baseline CONFIG`` (default: the sweep's ``ls`` configuration) adds Δm against that
  configuration, the paired difference of test Δm with its 95 % t-interval, wins/losses per metric
  and the mean rank (MR) over the metrics: definitions in ``ntkmtl.compare``.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ntkmtl import compare

STATUSES = ("completed", "stopped_early", "running", "diverged", "errored")
IDENTITY_COLUMNS = ("sweep", "trial_id", "config_id", "benchmark", "method", "seed", "epoch", "status")
DELTA_M = "delta_m"

# The NTKMTL paper's headline test Δm% (mean, std or None), docs/REFERENCE_FACTS.md §1, for --paper.
PAPER_DELTA_M: dict[str, dict[str, tuple[float, float | None]]] = {
    "nyuv2": {"ntkmtl": (-6.99, 0.38), "ntkmtl_sr": (-5.35, None), "fairgrad": (-4.66, None),
              "famo": (-4.10, None), "nashmtl": (-4.04, None), "ls": (5.59, None)},
    "cityscapes": {"ntkmtl": (1.92, 0.30), "ntkmtl_sr": (3.84, None), "fairgrad": (5.18, None),
                   "ls": (22.60, None)},
    "celeba": {"ntkmtl": (-0.77, 0.37), "ntkmtl_sr": (0.23, None), "fairgrad": (0.37, None),
               "famo": (1.21, None), "ls": (4.15, None)},
    "qm9": {"ntkmtl": (56.7, None), "ntkmtl_sr": (30.7, None), "fairgrad": (57.0, None),
            "famo": (38.9, None), "nashmtl": (72.9, None), "ls": (179.8, None)},
}


class ReportError(ValueError):
    """Bad input to the report (path, data set, option); the CLI prints it as one line, exit 2."""


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
    baseline: compare.Baseline | None = None  # what the comparison columns compare with
    comparison_note: str = ""  # why there is no baseline, metrics left out of the comparison

    @property
    def sweeps(self) -> list[str]:
        return sorted(self.rows["sweep"].astype(str).unique())


# ----------------------------------------------------------------------------- reading

def read_parquet_files(path: str) -> pd.DataFrame:
    """Every ``*.parquet`` file at ``path`` (a file, or a directory searched recursively; names
    starting with ``.`` or ``_`` are skipped as temporary). Used when the sweep's reader is absent."""
    root = Path(path)
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*.parquet") if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )
    if not files:
        raise ReportError(f"no .parquet files under {path!r}; give the Parquet file or directory a sweep wrote")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def load_results(path: str) -> pd.DataFrame:
    """The rows of one or many sweeps, checked for the identity columns and valid statuses.

    Reads with ``ntkmtl.sweep.export.read_results`` when it exists (it knows the data set's layout
    and storage URIs), otherwise with pandas from local Parquet files."""
    if "://" not in path and not any(ch in path for ch in "*?[") and not os.path.exists(path):
        raise ReportError(f"results path {path!r} does not exist; give the Parquet file or directory a sweep wrote")
    try:
        from ntkmtl.sweep.export import read_results
    except ImportError:
        read_results = read_parquet_files
    try:
        df = read_results(path)
    except ReportError:
        raise
    except (OSError, ValueError, ImportError) as err:
        raise ReportError(f"cannot read results {path!r}: {err}") from err
    if df is None or len(df) == 0:
        raise ReportError(f"results {path!r} hold no rows: has the sweep finished any epoch yet?")
    missing = [c for c in IDENTITY_COLUMNS if c not in df.columns]
    if missing:
        raise ReportError(f"results {path!r} lack the column(s) {', '.join(missing)}; expected the sweep schema "
                          f"(docs/DESIGN.md): {', '.join(IDENTITY_COLUMNS)}, val_*, test_*, …")
    bad = sorted(set(df["status"].astype(str)) - set(STATUSES))
    if bad:
        raise ReportError(f"results {path!r}: unknown trial status {bad[0]!r}; valid statuses: {', '.join(STATUSES)}")
    # Exactly-once is the exporter's job; dropping repeated (trial, epoch) rows here is a cheap guard.
    df = df.drop_duplicates(subset=["sweep", "trial_id", "epoch"], keep="last")
    return df.sort_values(["benchmark", "sweep", "trial_id", "epoch"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- metrics

def declared_metrics(benchmark: str) -> dict[str, bool]:
    """{metric name: higher_is_better} from the benchmark's declaration, {} when it can't be read.

    Benchmarks are built with default options, which loads no data. One that cannot be built that
    way (a required data option, an import failing on this machine) gives {}: its metrics are then
    taken from the Parquet columns, with unknown directions (never marked best)."""
    from ntkmtl.benchmarks import BENCHMARKS, benchmark_class

    if benchmark not in BENCHMARKS:
        raise ReportError(f"unknown benchmark {benchmark!r} in the results; valid benchmarks: {', '.join(sorted(BENCHMARKS))}")
    try:
        metrics = benchmark_class(benchmark)().metrics
        return {m.name: bool(m.higher_is_better) for m in metrics}
    except Exception:  # any failure to build the declaration falls back to the columns, see docstring
        return {}


def metric_directions(benchmark: str, columns: list[str], declared: dict[str, bool] | None = None) -> list[tuple[str, bool | None]]:
    """The benchmark's metrics present in the data, as (name, higher_is_better or None).

    A metric is reported when both ``val_<m>`` and ``test_<m>`` columns exist; declaration order
    first, then any other metric in column order."""
    declared = declared_metrics(benchmark) if declared is None else declared
    present = [c[len("test_"):] for c in columns
               if c.startswith("test_") and c != f"test_{DELTA_M}" and f"val_{c[len('test_'):]}" in columns]
    ordered = [m for m in declared if m in present] + [m for m in present if m not in declared]
    return [(m, declared.get(m)) for m in ordered]


def make_selection(column: str, mode: str | None, metrics: list[tuple[str, bool | None]], columns: list[str],
                   benchmark: str, include_running: bool = False, exclude_stopped: bool = False) -> Selection:
    """Check ``--select-by`` against the benchmark's columns and find its direction."""
    if not column.startswith("val_"):
        raise ReportError(f"--select-by {column!r} is not a validation column (val_…): selecting epochs on "
                          f"train or test values would peek; e.g. --select-by val_{DELTA_M}")
    if column not in columns:
        valid = ", ".join(c for c in columns if c.startswith("val_")) or "none"
        raise ReportError(f"--select-by {column!r}: no such column for benchmark {benchmark!r}; valid: {valid}")
    if mode is not None:
        lower = mode == "min"
    elif column == f"val_{DELTA_M}":
        lower = True
    else:
        higher = dict(metrics).get(column[len("val_"):])
        if higher is None:
            raise ReportError(f"--select-by {column!r}: the direction of this metric is unknown for benchmark "
                              f"{benchmark!r}; add --select-mode min or --select-mode max")
        lower = not higher
    return Selection(column, lower, include_running, exclude_stopped)


# ----------------------------------------------------------------------------- selection

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


# ----------------------------------------------------------------------------- table

def hp_text(record: pd.Series | dict, hp_columns: list[str]) -> str:
    """'ntk_exp=0.5, n_chunks=4': the config's non-null hyperparameters, by name."""
    parts = []
    for c in sorted(hp_columns):
        value = record[c]
        if pd.isna(value):
            continue
        text = f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)
        parts.append(f"{c[len('hp_'):]}={text}")
    return ", ".join(parts)


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
        record: dict[str, Any] = {"source": "sweep", "method": first["method"], "config_id": config_id,
                                  "hyperparameters": hp_text(first, hp_columns)}
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
    table = table.sort_values([f"test_{DELTA_M}_mean", "method", "hyperparameters"], na_position="last",
                              kind="stable").reset_index(drop=True)
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
        record = {"source": "paper", "method": method, "config_id": "", "hyperparameters": "",
                  f"test_{DELTA_M}_mean": mean, f"test_{DELTA_M}_std": math.nan if std is None else std}
        record.update({c: np.nan for c in hp_columns})
        records.append(record)
    return pd.DataFrame(records)


def build_benchmark_report(rows: pd.DataFrame, benchmark: str, select_by: str = f"val_{DELTA_M}",
                           select_mode: str | None = None, include_running: bool = False,
                           exclude_stopped: bool = False, paper: bool = False,
                           declared: dict[str, bool] | None = None, baseline: str | None = None) -> BenchmarkReport:
    """Select every trial's epoch and build the sorted per-config table of one benchmark.

    ``baseline`` names the configuration the comparison columns compare with (``ntkmtl.compare``;
    None: the sweep's ``ls``, "none": no comparison). ``declared`` ({metric: higher_is_better})
    overrides the benchmark's own declaration (tests)."""
    for needed in (f"val_{DELTA_M}", f"test_{DELTA_M}"):
        if needed not in rows.columns:
            raise ReportError(f"benchmark {benchmark!r}: the results have no {needed!r} column; expected the sweep schema (docs/DESIGN.md)")
    rows = rows[rows["benchmark"] == benchmark]
    # Columns of other benchmarks (all null here) are dropped; the Δm and selection columns stay.
    keep = {f"val_{DELTA_M}", f"test_{DELTA_M}", select_by, *IDENTITY_COLUMNS}
    rows = rows[[c for c in rows.columns if c in keep or rows[c].notna().any()]]
    columns = list(rows.columns)
    metrics = metric_directions(benchmark, columns, declared)
    selection = make_selection(select_by, select_mode, metrics, columns, benchmark, include_running, exclude_stopped)
    hp_columns = sorted(c for c in columns if c.startswith("hp_"))
    value_columns = list(dict.fromkeys([selection.column, f"val_{DELTA_M}", f"test_{DELTA_M}"]
                                       + [f"{s}_{m}" for m, _ in metrics for s in ("val", "test")]))
    trials = select_epochs(rows, selection, value_columns)
    table = config_table(trials, [m for m, _ in metrics], hp_columns)
    if paper:
        table = pd.concat([table, paper_rows(benchmark, hp_columns)], ignore_index=True)
        counts = ["seeds", "trials", *STATUSES, "no_valid_epoch"]
        table[counts] = table[counts].astype("Int64")  # paper rows have none: keep the counts integers
    try:
        table, chosen, note = compare.add_comparison(table, trials, metrics, baseline)
    except compare.BaselineError as err:
        raise ReportError(f"benchmark {benchmark!r}: {err}") from err
    table = sort_and_mark(table, metrics)
    return BenchmarkReport(benchmark, selection, metrics, rows, trials, table, hp_columns, chosen, note)


def build_reports(df: pd.DataFrame, benchmarks: list[str] | None = None, **options: Any) -> list[BenchmarkReport]:
    """One BenchmarkReport per benchmark in the data (or the ones named), by name."""
    present = sorted(df["benchmark"].astype(str).unique())
    if benchmarks:
        unknown = [b for b in benchmarks if b not in present]
        if unknown:
            raise ReportError(f"--benchmark {unknown[0]!r}: not in the results; benchmarks present: {', '.join(present)}")
        present = [b for b in present if b in benchmarks]
    return [build_benchmark_report(df, b, **options) for b in present]


# ----------------------------------------------------------------------------- writing

def _decimals(values: pd.Series) -> int:
    """Decimals that give the column's largest value 4 significant digits (2 for Δm %)."""
    finite = values.astype(float)[np.isfinite(values.astype(float))]
    if finite.empty or finite.abs().max() == 0:
        return 4
    return int(min(6, max(0, 3 - math.floor(math.log10(finite.abs().max())))))


def _cell(mean: float, std: float, decimals: int, bold: bool) -> str:
    """'0.3830 ± 0.0021' (std left out when undefined), in bold when best."""
    if not np.isfinite(mean):
        return str(mean)
    text = f"{mean:.{decimals}f}" + (f" ± {std:.{decimals}f}" if np.isfinite(std) else "")
    return f"**{text}**" if bold else text


def _notes(record: pd.Series, selection: Selection) -> str:
    """The row's flags: trials not used or used with a caveat, counted by reason."""
    if record["source"] == "paper":
        return "published (NTKMTL paper)"
    notes = []
    if record["stopped_early"]:
        notes.append(f"{record['stopped_early']} stopped early" + (" (left out)" if selection.exclude_stopped else ""))
    if record["running"]:
        notes.append(f"{record['running']} running" + ("" if selection.include_running else " (left out)"))
    for status in ("diverged", "errored"):
        if record[status]:
            notes.append(f"{record[status]} {status} (left out)")
    if record["no_valid_epoch"]:
        notes.append(f"{record['no_valid_epoch']} without a finite {selection.column} (left out)")
    return "; ".join(notes)


def markdown_table(report: BenchmarkReport) -> str:
    """The per-config table in Markdown: mean ± std cells, best mean per column in bold."""
    table = report.table
    value_columns = [(f"test_{DELTA_M}", "test Δm %"), (f"val_{DELTA_M}", "val Δm %")] + \
                    [(f"test_{m}", m + ("" if h is None else (" ↑" if h else " ↓"))) for m, h in report.metrics]
    comparison = compare.headings(report)
    header = (["#", "method", "hyperparameters", "seeds"] + [label for _, label in value_columns]
              + [label for label, _ in comparison] + ["selected epochs", "notes"])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    decimals = {c: (2 if c.endswith(DELTA_M) else _decimals(table[f"{c}_mean"])) for c, _ in value_columns}
    rank = 0
    for _, record in table.iterrows():
        measured = record["source"] == "sweep"
        rank += measured
        best = set(str(record["best_in"]).split(";"))
        cells = [str(rank) if measured else "paper", str(record["method"]), str(record["hyperparameters"]),
                 f"{record['seeds']}/{record['trials']}" if measured else ""]
        for c, _ in value_columns:
            mean, std = record.get(f"{c}_mean", math.nan), record.get(f"{c}_std", math.nan)
            if pd.isna(mean) and (not measured or record["seeds"] == 0):
                cells.append("")
                continue
            cells.append(_cell(float(mean), float(std), decimals[c], c in best))
        for label, text in comparison:
            cell = text(record)
            cells.append(f"**{cell}**" if cell and label == "MR" and "mean_rank" in best else cell)
        cells += [str(record["selected_epochs"]) if measured else "", _notes(record, report.selection)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(report: BenchmarkReport, plots: dict[str, Path]) -> str:
    """The benchmark's Markdown page: what was selected how, the table, the plots."""
    counts = report.trials["status"].value_counts()
    status_text = ", ".join(f"{int(counts[s])} {s.replace('_', ' ')}" for s in STATUSES if s in counts)
    unknown = [m for m, h in report.metrics if h is None]
    lines = [
        f"# {report.benchmark}: results",
        "",
        f"Sweeps: {', '.join(report.sweeps)}. Trials: {len(report.trials)} ({status_text}); "
        f"{int(report.trials['used'].sum())} used.",
        "",
        f"Each trial's epoch is the one with the best validation value, {report.selection.label}; the test "
        "metrics are those of that epoch. Cells are mean ± sample std (ddof = 1) over the seeds used; "
        "the best mean of each column is in bold (↑ higher is better, ↓ lower is better; Δm: lower). "
        "Completed and stopped-early trials are used"
        + (" except stopped-early ones (--exclude-stopped)" if report.selection.exclude_stopped else "")
        + "; running trials are " + ("used (--include-running)" if report.selection.include_running else "left out")
        + "; diverged and errored trials are left out and counted in the notes. "
        "'seeds' = trials used / trials of the configuration.",
    ]
    lines += ["", compare.paragraph(report)]
    if unknown:
        lines += ["", f"Direction unknown (not marked, not compared, not ranked): {', '.join(unknown)}."]
    lines += ["", markdown_table(report), ""]
    for title, path in plots.items():
        lines += [f"![{title}]({path.name})", ""]
    return "\n".join(lines)


def csv_table(report: BenchmarkReport) -> pd.DataFrame:
    """The per-config table as written to CSV: identity, counts, *_mean / *_std, best_in."""
    first = ["source", "method", "hyperparameters", "config_id", *report.hp_columns, "seeds", "trials", *STATUSES,
             "no_valid_epoch", "selected_epochs"]
    values = [c for c in report.table.columns if c.endswith(("_mean", "_std")) and c not in compare.COLUMNS]
    values += [c for c in compare.COLUMNS if c in report.table.columns]
    columns = [c for c in first if c in report.table.columns] + values + ["best_in"]
    baseline = report.baseline.config_id if report.baseline is not None else ""
    return report.table[columns].assign(baseline=baseline)


def write_benchmark_report(report: BenchmarkReport, out: Path, make_plots: bool = True) -> list[Path]:
    """Write ``<benchmark>.md``, ``<benchmark>.csv``, ``<benchmark>_trials.csv`` and the plots."""
    out.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Path] = {}
    if make_plots:
        from ntkmtl import plots as plotting

        plots = plotting.benchmark_plots(report, out)
    name = report.benchmark
    written = [out / f"{name}.md", out / f"{name}.csv", out / f"{name}_trials.csv"]
    written[0].write_text(markdown_report(report, plots), encoding="utf-8")
    csv_table(report).to_csv(written[1], index=False)
    report.trials.to_csv(written[2], index=False)
    return written + list(plots.values())


# ----------------------------------------------------------------------------- W&B

def wandb_or_error():
    """The wandb module, checked before any work: importable, and online mode has an API key."""
    try:
        import wandb
    except ImportError as err:
        raise ReportError("--wandb needs the wandb package: pip install wandb") from err
    from ntkmtl.sweep.wandb import api_key_present  # the sweep's own check: WANDB_API_KEY or netrc

    mode = os.environ.get("WANDB_MODE", "online").lower()
    if mode not in ("offline", "disabled", "dryrun") and not api_key_present():
        raise ReportError("--wandb in online mode needs an API key: set WANDB_API_KEY or run `wandb login`, "
                          "or set WANDB_MODE=offline to log locally")
    return wandb


def log_to_wandb(wandb: Any, reports: list[BenchmarkReport], written: dict[str, list[Path]], out: Path,
                 project: str) -> str:
    """Log every table (wandb.Table) and plot (wandb.Image) to one run in the sweep's W&B group.

    The group is the sweep's name (the sweep logs its trials there), or the names joined by '+'
    when the results hold several sweeps. Returns the run's local directory."""
    sweeps = sorted({s for r in reports for s in r.sweeps})
    group = "+".join(sweeps)
    run = wandb.init(project=project, group=group, name=f"report-{group}", job_type="report", dir=str(out),
                     config={"select_by": reports[0].selection.column, "sweeps": sweeps,
                             "benchmarks": [r.benchmark for r in reports]})
    try:
        for report in reports:
            frame = csv_table(report).astype(object)
            frame = frame.where(frame.notna(), None)  # W&B tables take None, not pandas' NA
            payload: dict[str, Any] = {f"{report.benchmark}/table": wandb.Table(dataframe=frame)}
            for path in written[report.benchmark]:
                if path.suffix == ".png":
                    payload[f"{report.benchmark}/{path.stem[len(report.benchmark) + 1:]}"] = wandb.Image(str(path))
            run.log(payload)
        return str(Path(run.dir).parent)
    finally:
        run.finish()


# ----------------------------------------------------------------------------- CLI

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ntkmtl.report",
        description="Paper-style tables (mean ± std over seeds), plots and W&B logging from a sweep's Parquet "
                    "results. Rules for epoch selection and partial sweeps: docs/REPORT.md.",
    )
    parser.add_argument("results", help="Parquet file or directory written by a sweep (one or many sweeps)")
    parser.add_argument("--out", help="output directory (default: reports/<name of RESULTS>)")
    parser.add_argument("--select-by", default=f"val_{DELTA_M}",
                        help="validation column that picks each trial's epoch (default: val_delta_m, lowest)")
    parser.add_argument("--select-mode", choices=("min", "max"),
                        help="direction of --select-by (default: from the benchmark's metric declaration)")
    parser.add_argument("--benchmark", action="append", help="report only this benchmark (repeatable)")
    parser.add_argument("--include-running", action="store_true", help="use running trials too (flagged)")
    parser.add_argument("--exclude-stopped", action="store_true", help="leave out trials stopped early")
    parser.add_argument("--paper", action="store_true", help="add the paper's published Δm as comparison rows")
    parser.add_argument("--baseline", metavar="CONFIG",
                        help="configuration to compare with: a method ('ls'), a method with hyperparameters "
                             "('ntkmtl ntk_exp=0.5'), a config_id, or 'none' (default: the sweep's ls)")
    parser.add_argument("--no-plots", action="store_true", help="write the tables only")
    parser.add_argument("--wandb", action="store_true", help="log tables and plots to a W&B run in the sweep's group")
    parser.add_argument("--wandb-project", default="ntkmtl", help="W&B project (default: ntkmtl)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, echo: Callable[[str], None] = print) -> dict[str, list[Path]]:
    """The whole report for parsed arguments; returns the files written per benchmark."""
    wandb = wandb_or_error() if args.wandb else None
    df = load_results(args.results)
    reports = build_reports(df, args.benchmark, select_by=args.select_by, select_mode=args.select_mode,
                            include_running=args.include_running, exclude_stopped=args.exclude_stopped,
                            paper=args.paper, baseline=args.baseline)
    out = Path(args.out) if args.out else Path("reports") / (Path(args.results.rstrip("/")).stem or "results")
    written = {}
    for report in reports:
        written[report.benchmark] = write_benchmark_report(report, out, make_plots=not args.no_plots)
        best = report.table[report.table["source"] == "sweep"].iloc[0]
        verdict = (f"best test Δm {best[f'test_{DELTA_M}_mean']:.2f} % by {best['method']} {best['hyperparameters']}".rstrip()
                   if best["seeds"] else "no usable trial yet")
        echo(f"{report.benchmark}: {len(report.trials)} trials, {int(report.trials['used'].sum())} used; {verdict}")
        for path in written[report.benchmark]:
            echo(f"  wrote {path}")
    if wandb is not None:
        echo(f"W&B run: {log_to_wandb(wandb, reports, written, out, args.wandb_project)}")
    return written


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except ReportError as err:
        print(f"ntkmtl.report: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
