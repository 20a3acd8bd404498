"""``python -m ntkmtl.tune CONFIG``: run a seed × hyperparameter × method sweep on Ray Tune.

The config is validated completely (keys, methods, hyperparameters, data, storage, W&B) before
Ray is imported; an invalid config prints one line naming the key and the bad value and exits
with status 2. ``--dry-run`` prints the plan and starts nothing. See ``ntkmtl/sweep/config.py``
for the YAML layout and ``tune_configs/`` for examples.
"""

from __future__ import annotations

import argparse
import sys

from ntkmtl.benchmarks import describe_benchmarks
from ntkmtl.methods import describe_methods
from ntkmtl.sweep import interrupt


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ntkmtl.tune",
        description=(
            "Run every (method, hyperparameters, seed) trial of a sweep config on Ray Tune: early "
            "stopping, retries, resume, and one Parquet row per trial and epoch."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  python -m ntkmtl.tune tune_configs/quickstart.yaml\n"
            "  python -m ntkmtl.tune tune_configs/qm9_paper.yaml --dry-run --set data.root=/data/qm9\n"
            "  python -m ntkmtl.tune tune_configs/qm9_paper.yaml --resume --address auto\n\n"
            "methods and their hyperparameters (grid them under methods.<name> in the config):\n\n"
            + describe_methods()
            + "\n\nbenchmarks and their data options (set them under data: in the config):\n\n"
            + describe_benchmarks()
            + "\n\nEvery default computes what the reference code computes; docs/DEVIATIONS.md lists the options "
            "that choose ntkmtl's alternatives."
        ),
    )
    parser.add_argument("config", help="sweep config (YAML), e.g. tune_configs/quickstart.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the trial table and start nothing")
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument(
        "--resume", action="store_true", help="continue an interrupted sweep (or extension) from its storage"
    )
    runs.add_argument(
        "--extend",
        action="store_true",
        help="after the config grew (seeds, methods, values, samples): run only the trials with no "
        "finished trial in the sweep's output yet; with --dry-run, list what runs and what is reused",
    )
    parser.add_argument(
        "--address", default=None, help="an existing Ray cluster: auto or ray://HOST:PORT (default: start Ray here)"
    )
    parser.add_argument(
        "--baseline",
        metavar="CONFIG",
        help="configuration the final table compares with, as in ntkmtl.report (default: the sweep's ls)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (YAML syntax), e.g. --set train.epochs=3 --set seeds=[0]",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _run(build_parser().parse_args(argv))
    finally:
        interrupt.disarm()  # SIGTERM as it was before the sweep (main may run inside a larger program)


def _run(args: argparse.Namespace) -> int:
    """Validate, plan and run (or --dry-run, --extend) the sweep ``args`` name; the exit status."""
    from ntkmtl.sweep.config import check_benchmark_data, load_config
    from ntkmtl.sweep.plan import build_plan, dry_run_table, local_resources

    try:
        cfg = load_config(args.config, args.overrides, check_data=False)
        specs = build_plan(cfg)
        if args.baseline and args.baseline.split()[0] not in {m.name for m in cfg.methods if m.ranges}:
            from ntkmtl.results.baseline import check_baseline

            check_baseline([(s.config_id, s.method, s.hparams) for s in specs], args.baseline)
        extension = None
        if args.extend:
            from ntkmtl.sweep.extend import extension_table, plan_extension

            extension = plan_extension(cfg)
            if args.dry_run or not (extension.run or extension.sampled_trials):
                print(extension_table(cfg, extension))
                if not args.dry_run:
                    print(f"nothing to run: every trial of the config has a finished trial in {cfg.output}")
                return 0
        if args.dry_run:
            cpus, gpus = local_resources()
            print(dry_run_table(cfg, specs, cpus, gpus))
            from ntkmtl.sweep.output_dir import check_output

            for check in (check_benchmark_data, lambda cfg: check_output(cfg.output)):
                try:
                    check(cfg)
                except ValueError as error:  # the plan is still worth seeing (costs) before the data exists
                    print(f"\nwarning: a real run would stop here: {error}")
            return 0
        check_benchmark_data(cfg)
        interrupt.arm()  # SIGTERM stops like Ctrl-C: state saved, exit 143, continue with --resume
        from ntkmtl.sweep.ray_logs import quiet_for_cli
        from ntkmtl.sweep.tune import run_sweep

        quiet_for_cli()  # no Tuner.restore hint, no traceback for an already deleted checkpoint
        outcome = run_sweep(cfg, resume=args.resume, address=args.address, baseline=args.baseline, extension=extension)
    except ValueError as error:  # ConfigError, StorageError, SweepError, DataError, ExtendError
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: continue with --resume", file=sys.stderr)
        return interrupt.exit_code()
    print()
    print(outcome.table)
    if outcome.search:
        print(outcome.search)
    with_rows, running = trial_counts(outcome.output)
    not_started = max(0, outcome.unfinished - running)  # unfinished trials that never reported an epoch
    waiting = f"; {not_started} trial(s) not started yet" if not_started else ""
    if extension is not None:
        print(
            f"{outcome.rows} rows in {outcome.output}: this extension ran {outcome.trials - not_started} trials and "
            f"reused {len(extension.reused)}{waiting} (read with ntkmtl.sweep.export.read_results)"
        )
    else:
        print(
            f"{outcome.rows} rows from {with_rows} trials in {outcome.output}{waiting} "
            "(read with ntkmtl.sweep.export.read_results)"
        )
    print(f"Ray experiment: {outcome.experiment_path}")
    if outcome.unfinished:
        started = f"{outcome.unfinished - not_started} trial(s) unfinished" if outcome.unfinished > not_started else ""
        parts = " and ".join(p for p in (started, f"{not_started} not started" if not_started else "") if p)
        print(f"interrupted: {parts}; continue with --resume", file=sys.stderr)
        return interrupt.exit_code()
    if outcome.errored:
        print(
            f"{outcome.errored} trial(s) errored; see the Ray experiment directory for their tracebacks",
            file=sys.stderr,
        )
        return 1
    return 0


def trial_counts(output: str) -> tuple[int, int]:
    """(trials with rows, of them still ``running``) in the output: the counts the summary shows."""
    from pathlib import Path

    if not any(Path(output).expanduser().glob("*.parquet")):
        return 0, 0
    from ntkmtl.sweep.export import read_results

    df = read_results(output)
    return df["trial_id"].nunique(), df.loc[df["status"] == "running", "trial_id"].nunique()


if __name__ == "__main__":
    sys.exit(main())
