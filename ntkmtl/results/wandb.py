"""Logging a report to Weights & Biases: every table and plot, one run in the sweep's group."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ntkmtl.results.errors import ReportError
from ntkmtl.results.table import BenchmarkReport
from ntkmtl.results.write import csv_table


def wandb_or_error(api_key_present: Callable[[], bool]):
    """The wandb module, checked before any work: importable, and online mode has an API key
    (``api_key_present``: the sweep's own check, WANDB_API_KEY or netrc, passed in by the CLI)."""
    try:
        import wandb
    except ImportError as err:
        raise ReportError("--wandb needs the wandb package: pip install wandb") from err
    mode = os.environ.get("WANDB_MODE", "online").lower()
    if mode not in ("offline", "disabled", "dryrun") and not api_key_present():
        raise ReportError(
            "--wandb in online mode needs an API key: set WANDB_API_KEY or run `wandb login`, "
            "or set WANDB_MODE=offline to log locally"
        )
    return wandb


def log_to_wandb(
    wandb: Any, reports: list[BenchmarkReport], written: dict[str, list[Path]], out: Path, project: str
) -> str:
    """Log every table (wandb.Table) and plot (wandb.Image) to one run in the sweep's W&B group.

    The group is the sweep's name (the sweep logs its trials there), or the names joined by '+'
    when the results hold several sweeps. Returns the run's local directory."""
    sweeps = sorted({s for r in reports for s in r.sweeps})
    group = "+".join(sweeps)
    run = wandb.init(
        project=project,
        group=group,
        name=f"report-{group}",
        job_type="report",
        dir=str(out),
        config={
            "select_by": reports[0].selection.column,
            "sweeps": sweeps,
            "benchmarks": [r.benchmark for r in reports],
        },
    )
    try:
        for report in reports:
            frame = csv_table(report).astype(object)
            frame = frame.where(frame.notna(), None)  # W&B tables take None, not pandas' NA
            payload: dict[str, Any] = {f"{report.benchmark}/table": wandb.Table(dataframe=frame)}
            for path in written[report.benchmark]:
                if path.suffix == ".png":
                    payload[f"{report.benchmark}/{path.stem[len(report.benchmark) + 1 :]}"] = wandb.Image(str(path))
            run.log(payload)
        return str(Path(run.dir).parent)
    finally:
        run.finish()
