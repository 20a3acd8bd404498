"""The comparison columns as text: cells, headings, which columns to show, the page's paragraph."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from ntkmtl.results.table import BenchmarkReport


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

        columns += [
            (f"Δm vs {base.short} %", mark(relative_text)),
            (f"test Δm − {base.short} (95 % CI)", mark(interval_text)),
            (f"W/L/T vs {base.short}", mark(record_text)),
        ]
    columns.append(("MR", rank_text))
    return shown_columns(report.table, columns)


def shown_columns(
    table: pd.DataFrame, columns: list[tuple[str, Callable[[pd.Series], str]]]
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
        text = (
            f"Comparison with the baseline **{base.label}** (`--baseline`): 'Δm vs {base.short}' is Δm with "
            "the baseline's test metrics in place of the single-task values, seed by seed over the seeds both "
            "used (mean ± std; * = no seed in common, against the baseline's mean over its seeds); "
            f"'test Δm − {base.short}' is the mean paired difference of test Δm over the common seeds with "
            "its 95 % Student-t interval (n/a with fewer than 2 common seeds; an interval without 0 is a "
            f"difference beyond seed noise); W/L/T counts the metrics whose mean is better / worse / equal "
            "than the baseline's over the same seeds. "
        )
    elif report.comparison_note:
        text = report.comparison_note[0].upper() + report.comparison_note[1:] + ". "
    return text + (
        "MR is the mean rank over the test metrics (1 = best; tied configurations share the average of their ranks)."
    )
