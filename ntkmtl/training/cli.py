"""``python -m ntkmtl.train``: one trial from the command line (no Ray), one summary line per epoch.

Only argument parsing and printing live here; the options are the declared ``TRAIN_SETTINGS``
(ntkmtl/training/settings.py) and every value goes through ``ntkmtl.options.parse_value``, the
reader the sweep config's YAML and ``--set`` use too (``--lr 1e-3``, ``--hp ntk_exp=.5``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ntkmtl.benchmarks import BENCHMARKS
from ntkmtl.methods import describe_methods
from ntkmtl.options import parse_value
from ntkmtl.training.settings import SEED, TRAIN_SETTINGS, TrialConfig
from ntkmtl.training.trial import Trial


def parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    """``["key=value", …]`` → dict, or ValueError naming the malformed item."""
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} {item!r} is not of the form key=value")
        result[key.strip().replace("-", "_")] = parse_value(value)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ntkmtl.train",
        description="Train one method on one benchmark with one seed (no Ray); one summary line per epoch.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="methods and their hyperparameters (set with --hp key=value):\n\n" + describe_methods(),
    )
    parser.add_argument("--benchmark", required=True, help=f"one of {', '.join(BENCHMARKS)}")
    parser.add_argument("--method", default="ls", help="weighting method (default: ls; see below)")
    parser.add_argument("--ntk-exp", default=None, metavar="VALUE", help="shortcut for --hp ntk_exp=VALUE")
    parser.add_argument(
        "--hp", action="append", default=[], metavar="KEY=VALUE", help="method hyperparameter (repeatable)"
    )
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="benchmark data option (repeatable), e.g. train_size=3000",
    )
    for spec in (SEED,) + TRAIN_SETTINGS:  # the declared settings, read by the one value parser
        shown = "the benchmark's" if spec.default is None else repr(spec.default)
        parser.add_argument(
            f"--{spec.name.replace('_', '-')}",
            default=None,
            metavar="VALUE",
            help=f"{spec.help}; {spec.valid_range()} (default: {shown})",
        )
    parser.add_argument("--checkpoint-dir", default=None, help="save a checkpoint here after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    parser.add_argument("--output", default=None, help="append every epoch record to this JSON-lines file")
    parser.add_argument("--no-progress", action="store_true", help="no per-epoch progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> TrialConfig:
    hparams = parse_assignments(args.hp, "--hp")
    if args.ntk_exp is not None:
        hparams["ntk_exp"] = parse_value(args.ntk_exp)
    settings = {
        spec.name: parse_value(getattr(args, spec.name))
        for spec in (SEED,) + TRAIN_SETTINGS
        if getattr(args, spec.name) is not None
    }
    return TrialConfig(
        benchmark=args.benchmark,
        method=args.method,
        hparams=hparams,
        data=parse_assignments(args.data, "--data"),
        **settings,
    )


def summary_line(record: dict[str, Any], epochs: int) -> str:
    """One line per epoch: status, total train loss, val/test Δm, learning rate, time."""
    train = sum(v for k, v in record.items() if k.startswith("train_loss_"))
    return (
        f"epoch {record['epoch']}/{epochs} {record['status']:<9} | train loss {train:.4g} | "
        f"val Δm {record['val_delta_m']:+.2f}% | test Δm {record['test_delta_m']:+.2f}% | "
        f"lr {record['lr']:.3g} | {record['epoch_seconds']:.2f} s ({record['samples_per_second']:.0f} samples/s)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run one trial from the command line; exit 0 when completed, 1 when diverged, 2 on bad input."""
    args = build_parser().parse_args(argv)
    status = None
    try:
        if args.resume and not args.checkpoint_dir:
            raise ValueError("--resume needs --checkpoint-dir (where the checkpoint is)")
        trial = Trial(config_from_args(args))
        if args.checkpoint_dir:  # fail before training, not after the first epoch
            Path(args.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        if args.resume:
            trial.load_checkpoint(args.checkpoint_dir)
        output = open(args.output, "a") if args.output else None
        try:
            for record in trial.run(progress=not args.no_progress):
                status = record["status"]
                print(summary_line(record, trial.epochs), flush=True)
                if output is not None:
                    output.write(json.dumps(record) + "\n")
                    output.flush()
                if args.checkpoint_dir:
                    trial.save_checkpoint(args.checkpoint_dir)
        finally:
            if output is not None:
                output.close()
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if status == "diverged":
        print("the training loss became non-finite: trial diverged", file=sys.stderr)
        return 1
    return 0
