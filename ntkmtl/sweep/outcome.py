"""The end of a sweep's run: every ended trial's final status, then what the CLI shows.

When ``Tuner.fit`` returns, a trial whose callback never ran (the driver was killed between its
end and the callback) still reads ``running``: ``finalize_statuses`` gives it its final status
from Ray's result (``export.final_status``). ``sweep_outcome`` then reads the rows back into the
final table (``summary.py``, the report's own table), the search's judged samples, and the
counts the CLI's last lines and exit status come from. A write error while Ray ran
(``storefiles.stop_reasons``) raises ``SweepError`` with one line instead: the sweep stopped
resumably.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ntkmtl.sweep import storefiles
from ntkmtl.sweep.config_types import SweepConfig
from ntkmtl.sweep.export import FINAL_STATUSES, ParquetExporter, read_results
from ntkmtl.sweep.identity import SweepError
from ntkmtl.sweep.past_trials import judged_samples
from ntkmtl.sweep.plan import TrialSpec, hparam_kinds
from ntkmtl.sweep.search import format_search
from ntkmtl.sweep.summary import format_summary, summarize


@dataclass
class SweepOutcome:
    """What a finished sweep returns to the CLI: the results table and counts."""

    experiment_path: str
    output: str
    trials: int
    rows: int
    errored: int
    unfinished: int
    wall_seconds: float
    table: str
    search: str = ""  # per searched method: samples judged, the best one (ntkmtl.sweep.search)


def sweep_outcome(
    cfg: SweepConfig, grid, specs: list[TrialSpec], experiment_path: str, start: float, baseline: str | None
) -> SweepOutcome:
    """Finalise the statuses of Ray's ``grid`` (a ResultGrid) and sum the sweep up; ``start``:
    the driver's ``time.monotonic()`` at its start, ``baseline`` the final table's comparison."""
    try:
        unfinished = 0 if storefiles.stop_reasons else finalize_statuses(cfg, grid, specs)
    except OSError as error:
        storefiles.stop_reasons.append(
            f"output {cfg.output}: cannot write the final statuses: {storefiles.describe(error)}"
        )
    if storefiles.stop_reasons:
        raise SweepError(
            f"{storefiles.stop_reasons[0]}; the sweep stopped with its state saved: fix that, then "
            "continue with --resume (no row is lost)"
        )
    has_rows = any(Path(cfg.output).expanduser().glob("*.parquet"))
    df = read_results(cfg.output) if has_rows else None
    wall = time.monotonic() - start
    table = format_summary(summarize(df, baseline), wall) if df is not None else "no results"
    errored = sum(1 for i in range(len(grid)) if grid[i].error is not None)  # ResultGrid: __getitem__, no __iter__
    search = format_search(judged_samples(cfg), cfg.early_stopping.mode) if cfg.search else ""
    return SweepOutcome(
        experiment_path=experiment_path,
        output=cfg.output,
        trials=len(grid),
        rows=0 if df is None else len(df),
        errored=errored,
        unfinished=unfinished,
        wall_seconds=wall,
        table=table,
        search=search,
    )


def finalize_statuses(cfg: SweepConfig, grid, specs: list[TrialSpec]) -> int:
    """Give every ended trial's file its final status (a driver killed between a trial's end and
    its callback leaves ``running``); return how many trials are unfinished (an interrupted sweep)."""
    exporter = ParquetExporter(cfg.output, cfg.name, cfg.benchmark, hparam_kinds(specs, cfg))
    unfinished = 0
    for result in grid:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id")
        status = exporter.status(trial_id) if trial_id is not None else None
        if status in FINAL_STATUSES:
            continue
        if trial_id is not None and status is not None and (result.error is not None or metrics.get("done")):
            exporter.finish(trial_id, "error" if result.error is not None else "complete")
        elif result.error is None:
            unfinished += 1
    return unfinished
