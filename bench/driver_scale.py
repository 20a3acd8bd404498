"""Driver cost per reported result at N trials: ntkmtl's sweep driver against plain Ray Tune.

    python bench/driver_scale.py                          # N = 100, 300, 1000; 4 epochs each
    python bench/driver_scale.py --trials 100 --epochs 2  # shorter
    python bench/driver_scale.py --smoke                  # N = 8, seconds (the test runs this)
    python bench/driver_scale.py --trials 300 --only none # one side alone in its own Ray session

Both drivers run the same trivial trainable: it reports one synthetic epoch record per epoch at
once with a tiny checkpoint (restored after a pause, as the real trainable does), as wide as a
QM9 trial's (11 tasks: train losses, val/test MAEs, Δm, weights, lr, timings), with
the early-stopping metric equal across configurations (early stopping judges every rung, stops none).
ntkmtl's side is ``ntkmtl.sweep.tune.run_sweep`` itself — Parquet callback (one file per trial,
rewritten each epoch), the progress reporter, the final summary — on a grid of N/2
configurations × 2 seeds, once without early stopping and once with seed-aware ASHA (whose
pauses at every rung are Ray's pause: the trial's actor stops and restarts from its checkpoint); plain Ray Tune's side is ``tune.Tuner`` with the same trainable and
grid, FIFO, no callbacks, actors reused as ntkmtl does. The figure is the driver process's CPU seconds (all its threads,
``time.process_time``) per reported result, so other load on the machine does not inflate it.
The target: ntkmtl ≤ 1.1× plain Ray Tune per result, and flat in N (no path whose cost per
result grows with the number of trials or epochs).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIDES = ("plain", "none", "seed_asha")  # Ray Tune alone; ntkmtl without early stopping; ntkmtl with seed-aware ASHA
QM9_TASKS = ("mu", "alpha", "homo", "lumo", "r2", "zpve", "U0", "U", "H", "G", "Cv")


def synthetic_trial(config: dict) -> None:
    """Reports ``epochs`` QM9-wide records at once. The early-stopping metric (val Δm) is the same for
    every configuration, so seed-aware ASHA pauses and judges every rung but stops no trial, and
    both drivers handle the same N × epochs results."""
    from ray import tune

    spec, epochs = config["trial"], config["sweep"]["train"]["epochs"]
    level = float(spec["hparams"].get("max_norm", 0.0)) + 0.01 * spec["seed"]
    start = 1
    checkpoint = tune.get_checkpoint()  # a paused seed resumes where it stopped, as run_trial does
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            start = int((Path(directory) / "epoch").read_text()) + 1
    for epoch in range(start, epochs + 1):
        record: dict = {"epoch": epoch, "status": "completed" if epoch == epochs else "running"}
        for i, task in enumerate(QM9_TASKS):
            record[f"train_loss_{task}"] = level + 1.0 / epoch + i
            record[f"val_mae_{task}"] = level + 2.0 / epoch + i
            record[f"test_mae_{task}"] = level + 2.1 / epoch + i
            record[f"weight_{task}"] = 1.0
        record.update(
            val_delta_m=10.0 / epoch,
            test_delta_m=100 * level + 11.0 / epoch,
            lr=1e-3,
            epoch_seconds=0.0,
            samples_per_second=0.0,
            node_id="bench",
        )
        with tempfile.TemporaryDirectory(prefix="scale-ckpt-") as directory:
            (Path(directory) / "epoch").write_text(str(epoch))
            tune.report(record, checkpoint=tune.Checkpoint.from_directory(directory))


def sweep_config(root: Path, n_trials: int, epochs: int, early_stopping: str = "seed_asha"):
    from ntkmtl.sweep.config import parse_config

    raw = {
        "name": f"scale{n_trials}-{early_stopping}",
        "benchmark": "toy",
        "seeds": [0, 1],
        "train": {"epochs": epochs},
        "methods": {"ls": {"max_norm": [round(0.001 * i, 3) for i in range(n_trials // 2)]}},
        "early_stopping": {"type": "seed_asha", "grace_period": 1, "reduction_factor": 2}
        if early_stopping == "seed_asha"
        else {"type": "none"},
        "storage": str(root / "ray"),
        "output": str(root / f"out-{early_stopping}"),  # one sweep per directory
    }
    return parse_config(raw, source="bench/driver_scale.py")


def run_ntkmtl(n_trials: int, epochs: int, root: Path, early_stopping: str = "seed_asha") -> tuple[float, int]:
    from ntkmtl.sweep.export import read_results
    from ntkmtl.sweep.tune import run_sweep

    cfg = sweep_config(root, n_trials, epochs, early_stopping)
    start = time.process_time()  # after the imports: both sides are timed from a loaded driver
    run_sweep(cfg, verbose=1, trainable=synthetic_trial)
    cpu = time.process_time() - start
    return cpu, len(read_results(cfg.output).query("sweep == @cfg.name"))


def run_plain(n_trials: int, epochs: int, root: Path) -> tuple[float, int]:
    from ray import tune

    from ntkmtl.sweep.plan import build_plan

    cfg = sweep_config(root, n_trials, epochs)
    specs = [s.to_dict() for s in build_plan(cfg)]
    tuner = tune.Tuner(
        tune.with_resources(synthetic_trial, {"cpu": 1}),
        param_space={"sweep": {"train": {"epochs": epochs}}, "trial": tune.grid_search(specs)},
        tune_config=tune.TuneConfig(reuse_actors=True),  # as ntkmtl's driver
        run_config=tune.RunConfig(
            name=f"plain{n_trials}",
            storage_path=str(root / "plain"),
            verbose=1,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),  # as ntkmtl's
    )
    start = time.process_time()
    grid = tuner.fit()
    cpu = time.process_time() - start
    return cpu, sum(int((r.metrics or {}).get("training_iteration", 0)) for r in grid)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--smoke", action="store_true", help="N = 8, 2 epochs: every code path in seconds")
    parser.add_argument(
        "--only",
        choices=SIDES,
        help="run this side alone (its own Ray session, no other run before it) and print its cost per result",
    )
    args = parser.parse_args(argv)
    trials, epochs = ([8], 2) if args.smoke else (args.trials, args.epochs)
    if any(n < 2 or n % 2 for n in trials):
        parser.error("--trials: each N must be an even number ≥ 2 (N/2 configurations × 2 seeds)")
    import ray

    import ntkmtl.sweep.tune  # noqa: F401  (torch, pandas, pyarrow: loaded once, before any timing)

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    rows = []
    try:
        for n in trials:
            with tempfile.TemporaryDirectory(prefix="ntkmtl-scale-") as tmp:
                root, row = Path(tmp), [n]
                for side in [args.only] if args.only else SIDES:
                    wall = time.monotonic()
                    cpu, results = run_plain(n, epochs, root) if side == "plain" else run_ntkmtl(n, epochs, root, side)
                    row.append((cpu, results, time.monotonic() - wall))
            rows.append(row)
            print(f"N={n}: done", file=sys.stderr, flush=True)
    finally:
        ray.shutdown()
    if args.only:
        for n, (cpu, results, wall) in rows:
            print(f"N={n} {args.only}: {1000 * cpu / max(results, 1):.2f} ms/result ({results} results, {wall:.0f} s)")
        return
    print(
        f"\nDriver CPU time per reported result, {epochs} epochs per trial "
        "(ms/result; results; wall seconds of the whole run)\n"
    )
    print(
        "| N trials | Ray Tune alone | ntkmtl, no early stopping | ntkmtl, seed-aware ASHA "
        "| ntkmtl (none) / Ray Tune | ntkmtl (seed_asha) / Ray Tune |"
    )
    print("|---|---|---|---|---|---|")
    for n, *runs in rows:
        per = [1000 * cpu / max(results, 1) for cpu, results, _ in runs]
        cells = [f"{p:.2f} ({r} results, {w:.0f} s)" for p, (_, r, w) in zip(per, runs)]
        print(f"| {n} | {' | '.join(cells)} | {per[1] / per[0]:.2f} | {per[2] / per[0]:.2f} |")


if __name__ == "__main__":
    main()
