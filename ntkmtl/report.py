"""``python -m ntkmtl.report RESULTS [--out DIR] [--select-by val_delta_m] [--paper] [--wandb]``

Paper-style tables, plots and W&B logging from a sweep's Parquet results. This module only parses
the arguments; ``ntkmtl.results`` does the work (``pipeline.run``) and docs/REPORT.md states the
rules: epoch selection without test-set peeking, which trials enter the means, the statistics.
The CLI hands the results layer the sweep's reader (``ntkmtl.sweep.export.read_results``) and its
W&B key check, so the results package never imports the sweep.
"""

from __future__ import annotations

import argparse
import sys

from ntkmtl.results.errors import ReportError
from ntkmtl.results.pipeline import ReportOptions, run
from ntkmtl.results.schema import DELTA_M
from ntkmtl.sweep.export import read_results
from ntkmtl.sweep.wandb import api_key_present


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ntkmtl.report",
        description="Paper-style tables (mean ± std over seeds), plots and W&B logging from a sweep's Parquet "
        "results. Rules for epoch selection and partial sweeps: docs/REPORT.md.",
    )
    parser.add_argument("results", help="Parquet file or directory written by a sweep (one or many sweeps)")
    parser.add_argument("--out", help="output directory (default: reports/<name of RESULTS>)")
    parser.add_argument(
        "--select-by",
        default=f"val_{DELTA_M}",
        help="validation column that picks each trial's epoch (default: val_delta_m, lowest)",
    )
    parser.add_argument(
        "--select-mode",
        choices=("min", "max"),
        help="direction of --select-by (default: from the benchmark's metric declaration)",
    )
    parser.add_argument("--benchmark", action="append", help="report only this benchmark (repeatable)")
    parser.add_argument("--include-running", action="store_true", help="use running trials too (flagged)")
    parser.add_argument("--exclude-stopped", action="store_true", help="leave out trials stopped early")
    parser.add_argument("--paper", action="store_true", help="add the paper's published Δm as comparison rows")
    parser.add_argument(
        "--baseline",
        metavar="CONFIG",
        help="configuration to compare with: a method ('ls'), a method with hyperparameters "
        "('ntkmtl ntk_exp=0.5'), a config_id, or 'none' (default: the sweep's ls)",
    )
    parser.add_argument("--no-plots", action="store_true", help="write the tables only")
    parser.add_argument("--wandb", action="store_true", help="log tables and plots to a W&B run in the sweep's group")
    parser.add_argument("--wandb-project", default="ntkmtl", help="W&B project (default: ntkmtl)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(ReportOptions(**vars(args)), read=read_results, api_key_present=api_key_present)
    except ReportError as err:
        print(f"ntkmtl.report: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
