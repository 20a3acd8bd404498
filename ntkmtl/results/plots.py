"""The report's PNG plots (matplotlib, Agg backend, fixed pixel sizes).

- Δm vs ntk_exp: test Δm at each trial's selected epoch, mean ± sample std over seeds, one line
  per method (and other hyperparameters) that has ``ntk_exp`` a grid; the samples of a search
  (rows with a ``search`` value, ``ntkmtl.sweep.search``) as points, each with its seeds' values
  and mean ± std, never joined by a line; configurations without ntk_exp as dashed lines.
- Validation Δm learning curves: per configuration, mean over the used trials at each epoch,
  shaded ± sample std (epochs reached by fewer seeds average fewer trials).
- NTKMTL task weights: the ``weight_<task>`` columns over epochs (mean over seeds), one panel per
  configuration of a method whose name starts with ``ntkmtl``.
- Time per epoch relative to LS (paper Fig. 1): per method, the median ``epoch_seconds`` of each
  used trial (robust to a slow first epoch), averaged over the method's trials, divided by LS's.

Every plot uses only the trials the table uses (``select.py``). A plot with nothing to
show (no ntk_exp, no LS, no weight columns) is not written. Legends and panel titles name a
configuration by its method and only the hyperparameters that take more than one value among
that method's configurations (``labels.varying_labels``): "ntkmtl ntk_exp=0.5", not "ntkmtl eps=1e-08,
max_norm=1, n=1, ntk_exp=0.5". Epoch axes have integer ticks only, also for single-epoch series
(which get error bars, as a band needs two epochs).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ntkmtl.results.labels import varying_labels  # noqa: E402

if TYPE_CHECKING:
    from ntkmtl.results.table import BenchmarkReport

DPI = 100
FIGSIZE = (8.0, 5.0)  # inches: 800 × 500 pixels
PANEL = (5.0, 3.5)  # inches per panel of the task-weight figure: 500 × 350 pixels each
PANELS_PER_ROW = 3
MAX_LEGEND_TASKS = 12
COLORS = [f"C{i}" for i in range(10)]


def weight_figure_pixels(n_panels: int) -> tuple[int, int]:
    """(width, height) in pixels of the task-weight figure with ``n_panels`` configurations."""
    cols = min(PANELS_PER_ROW, n_panels)
    rows = math.ceil(n_panels / PANELS_PER_ROW)
    return int(PANEL[0] * cols * DPI), int(PANEL[1] * rows * DPI)


def _finish_line_plot(fig, ax, ylabel: str, title: str, path: Path) -> Path:
    """Label, legend and grid a one-axes line plot, then save it."""
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Save at the figure's exact size (no tight bounding box, so the pixel size is known)."""
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return path


def _integer_epochs(ax, epochs) -> None:
    """Integer epoch ticks; a single epoch gets one tick in a ±0.5 window (not 0.945 … 1.050)."""
    epochs = sorted({int(e) for e in epochs})
    if not epochs:
        return
    if len(epochs) <= 10:
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(epochs) == 1:
        ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)


def _used_rows(report: "BenchmarkReport") -> pd.DataFrame:
    """Every epoch row of the trials the table uses."""
    used = report.trials.loc[report.trials["used"], ["sweep", "trial_id"]]
    return report.rows.merge(used, on=["sweep", "trial_id"])


def plot_delta_m_vs_ntk_exp(report: "BenchmarkReport", path: Path) -> Path | None:
    """Test Δm (mean ± std over seeds) against ntk_exp: grids as lines, a search's samples as points."""
    table = report.table[(report.table["source"] == "sweep") & (report.table["seeds"] > 0)]
    if "hp_ntk_exp" not in table.columns or table["hp_ntk_exp"].isna().all():
        return None
    fig, ax = plt.subplots(figsize=FIGSIZE)
    with_exp = table[table["hp_ntk_exp"].notna()].copy()
    lines = varying_labels(report.table, report.hp_columns, leave_out=("hp_ntk_exp",))
    with_exp["line"] = [lines[str(c)] for c in with_exp["config_id"]]
    searched = _searched_configs(report)
    with_exp["searched"] = with_exp["config_id"].isin(searched)
    colors = iter(COLORS * 10)
    for (line, is_search), group in with_exp.groupby(["line", "searched"], sort=True):
        group = group.sort_values("hp_ntk_exp")
        color = next(colors)
        style: dict[str, Any] = {"marker": "o", "capsize": 4, "label": line}  # a grid: a line through its points
        if is_search:
            seeds = report.trials[report.trials["used"] & report.trials["config_id"].isin(group["config_id"])]
            ax.scatter(
                seeds["hp_ntk_exp"],
                seeds["test_delta_m"],
                s=28,
                facecolors="none",
                edgecolors=color,
                linewidths=1,
                zorder=3,
            )  # hollow: visible on the error bar
            style = {"fmt": "o", "capsize": 3, "label": f"{line} (search: {len(group)} samples; seeds as circles)"}
        ax.errorbar(
            group["hp_ntk_exp"],
            group["test_delta_m_mean"],
            yerr=group["test_delta_m_std"].fillna(0.0),
            color=color,
            **style,
        )
    for _, r in table[table["hp_ntk_exp"].isna()].iterrows():
        ax.axhline(
            r["test_delta_m_mean"],
            linestyle="--",
            linewidth=1,
            color="gray" if r["method"] == "ls" else next(colors),
            label=lines[str(r["config_id"])],
        )
    ax.set_xlabel("ntk_exp")
    return _finish_line_plot(
        fig, ax, "test Δm % (lower is better)", f"{report.benchmark}: test Δm vs ntk_exp (mean ± std over seeds)", path
    )


def _searched_configs(report: "BenchmarkReport") -> set[str]:
    """The config_ids sampled by a search (their rows carry a ``search`` value)."""
    if "search" not in report.rows.columns:
        return set()
    return set(report.rows.loc[report.rows["search"].notna(), "config_id"].astype(str))


def plot_val_curves(report: "BenchmarkReport", path: Path) -> Path | None:
    """Validation Δm per epoch, mean over seeds with a shaded ± std band, per configuration."""
    rows = _used_rows(report)
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=FIGSIZE)
    measured = report.table[report.table["source"] == "sweep"]
    labels = varying_labels(report.table, report.hp_columns)
    for _, config in measured.iterrows():
        curve = rows[rows["config_id"] == config["config_id"]].groupby("epoch")["val_delta_m"]
        mean, std = curve.mean(), curve.std(ddof=1).fillna(0.0)
        if mean.empty:
            continue
        label = labels[str(config["config_id"])]
        if len(mean) == 1:  # one epoch: a band needs two, so an error bar
            ax.errorbar(mean.index, mean.values, yerr=std.values, marker="o", markersize=4, capsize=4, label=label)
            continue
        (line,) = ax.plot(mean.index, mean.values, marker="o", markersize=3, label=label)
        ax.fill_between(mean.index, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("epoch")
    _integer_epochs(ax, rows["epoch"])
    return _finish_line_plot(
        fig, ax, "validation Δm % (lower is better)", f"{report.benchmark}: validation Δm (mean ± std over seeds)", path
    )


def plot_task_weights(report: "BenchmarkReport", path: Path) -> Path | None:
    """NTKMTL's task weights over epochs: one panel per ntkmtl* configuration, one line per task."""
    rows = _used_rows(report)
    weight_columns = [c for c in rows.columns if c.startswith("weight_")]
    rows = rows[rows["method"].astype(str).str.startswith("ntkmtl")]
    configs = [
        c
        for c in report.table.loc[report.table["source"] == "sweep", "config_id"]
        if not rows.loc[rows["config_id"] == c, weight_columns].isna().all().all()
    ]
    if not weight_columns or not configs:
        return None
    cols = min(PANELS_PER_ROW, len(configs))
    n_rows = math.ceil(len(configs) / PANELS_PER_ROW)
    width, height = weight_figure_pixels(len(configs))
    fig, axes = plt.subplots(n_rows, cols, figsize=(width / DPI, height / DPI), squeeze=False)
    labels = varying_labels(report.table, report.hp_columns)
    for ax, config_id in zip(axes.flat, configs):
        mean = rows[rows["config_id"] == config_id].groupby("epoch")[weight_columns].mean().dropna(axis=1, how="all")
        for column in mean.columns:
            ax.plot(mean.index, mean[column], marker="o", markersize=3, label=column[len("weight_") :])
        values = mean.to_numpy(dtype=float)
        if np.all(values > 0) and values.max() / values.min() > 50:
            ax.set_yscale("log")
        ax.set_title(labels[str(config_id)], fontsize="medium")
        ax.set_xlabel("epoch")
        _integer_epochs(ax, mean.index)
        ax.set_ylabel("task weight")
        ax.grid(alpha=0.3)
        if len(mean.columns) <= MAX_LEGEND_TASKS:
            ax.legend(fontsize="x-small")
    for ax in list(axes.flat)[len(configs) :]:
        ax.set_visible(False)
    fig.suptitle(f"{report.benchmark}: task weights (mean over seeds)")
    fig.tight_layout()
    return _save(fig, path)


def epoch_time_ratios(report: "BenchmarkReport") -> pd.Series:
    """Per method: mean over used trials of the trial's median epoch_seconds, divided by LS's.

    Empty when the data has no epoch times or no used LS trial."""
    rows = _used_rows(report)
    if "epoch_seconds" not in rows.columns:
        return pd.Series(dtype=float)
    per_trial = rows.groupby(["method", "sweep", "trial_id"])["epoch_seconds"].median()
    per_method = per_trial.groupby("method").mean().dropna()
    if "ls" not in per_method.index or not per_method["ls"] > 0:
        return pd.Series(dtype=float)
    return (per_method / per_method["ls"]).sort_values()


def plot_time_vs_ls(report: "BenchmarkReport", path: Path) -> Path | None:
    """Bar chart of epoch time relative to LS (paper Fig. 1)."""
    ratios = epoch_time_ratios(report)
    if ratios.empty:
        return None
    fig, ax = plt.subplots(figsize=FIGSIZE)
    bars = ax.bar(ratios.index, ratios.values, color=["gray" if m == "ls" else "C0" for m in ratios.index])
    ax.bar_label(bars, labels=[f"{r:.2f}×" for r in ratios.values])
    ax.axhline(1.0, linestyle="--", color="gray", linewidth=1)
    ax.set_ylabel("time per epoch / LS")
    ax.set_title(f"{report.benchmark}: time per epoch relative to LS (median epoch per trial, mean over trials)")
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    return _save(fig, path)


PLOTS = {
    "delta_m_vs_ntk_exp": plot_delta_m_vs_ntk_exp,
    "val_curves": plot_val_curves,
    "task_weights": plot_task_weights,
    "time_vs_ls": plot_time_vs_ls,
}


def benchmark_plots(report: "BenchmarkReport", out: Path) -> dict[str, Path]:
    """Write every plot that has something to show as ``<out>/<benchmark>_<plot>.png``."""
    written = {}
    for name, plot in PLOTS.items():
        path = plot(report, out / f"{report.benchmark}_{name}.png")
        if path is not None:
            written[name] = path
    return written
