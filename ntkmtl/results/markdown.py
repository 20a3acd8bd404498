"""The benchmark's Markdown page: how epochs were selected, trial counts, the table, the plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ntkmtl.results import compare_text
from ntkmtl.results.schema import DELTA_M, STATUSES
from ntkmtl.results.select import Selection
from ntkmtl.results.table import BenchmarkReport


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
    value_columns = [(f"test_{DELTA_M}", "test Δm %"), (f"val_{DELTA_M}", "val Δm %")] + [
        (f"test_{m}", m + ("" if h is None else (" ↑" if h else " ↓"))) for m, h in report.metrics
    ]
    comparison = compare_text.headings(report)
    header = (
        ["#", "method", "hyperparameters", "seeds"]
        + [label for _, label in value_columns]
        + [label for label, _ in comparison]
        + ["selected epochs", "notes"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    decimals = {c: (2 if c.endswith(DELTA_M) else _decimals(table[f"{c}_mean"])) for c, _ in value_columns}
    rank = 0
    for _, record in table.iterrows():
        measured = record["source"] == "sweep"
        rank += measured
        best = set(str(record["best_in"]).split(";"))
        cells = [
            str(rank) if measured else "paper",
            str(record["method"]),
            str(record["hyperparameters"]),
            f"{record['seeds']}/{record['trials']}" if measured else "",
        ]
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
        + "; running trials are "
        + ("used (--include-running)" if report.selection.include_running else "left out")
        + "; diverged and errored trials are left out and counted in the notes. "
        "'seeds' = trials used / trials of the configuration.",
    ]
    lines += ["", compare_text.paragraph(report)]
    if unknown:
        lines += ["", f"Direction unknown (not marked, not compared, not ranked): {', '.join(unknown)}."]
    lines += ["", markdown_table(report), ""]
    for title, path in plots.items():
        lines += [f"![{title}]({path.name})", ""]
    return "\n".join(lines)
